/**
 * How often record `id` fails in the retry tests: 0 .. tiers transient failures (then it succeeds),
 * `Infinity` (it fails on every tier and ends in the DLQ), or `permanent` (DLQ at once).
 */
export function failurePlan(id: number, tiers: number): number | 'permanent' {
  if (id % 53 === 29) return 'permanent'
  if (id % 47 === 11) return Number.POSITIVE_INFINITY
  if (id % 10 === 3) return 1
  if (id % 10 === 7) return Math.min(2, tiers)
  if (id % 31 === 5) return tiers
  return 0
}

/** Does record `id` end in the DLQ? */
export function deadLettered(id: number, tiers: number): boolean {
  const plan = failurePlan(id, tiers)
  return plan === 'permanent' || plan > tiers
}

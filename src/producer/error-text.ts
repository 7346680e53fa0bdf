/** How the producer's error messages describe a failure the client reported. */

/** The error's message; for an error that wraps others (the client's retries), with the last one's. */
export function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const nested = (error as { errors?: unknown }).errors
  const last = Array.isArray(nested) && nested.length > 0 ? (nested.at(-1) as unknown) : undefined
  return last instanceof Error && last !== error ? `${error.message} (last: ${describe(last)})` : error.message
}

const PRODUCE_FAILED_TIMES = /^produce failed (\d+) times\.$/

/** Attempts a failed produce request made: the client wraps a retried request's errors as "produce failed N times.". */
export function attemptsOf(error: unknown, depth = 0): number {
  if (depth > 6 || !(error instanceof Error)) return 1
  const times = PRODUCE_FAILED_TIMES.exec(error.message)
  let most = times ? Number(times[1]) : 1
  const nested = (error as { errors?: unknown }).errors
  if (Array.isArray(nested)) for (const child of nested) most = Math.max(most, attemptsOf(child, depth + 1))
  return most
}

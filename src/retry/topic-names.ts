/**
 * The topics of one origin topic's retry flow, named in one place: the tier topics
 * (`<topic>.retry.<delay>`, one fixed delay each), the release topic per-key ordering uses to hand a
 * parked record back for handling (`<topic>.retry.release`), the compacted topic of parked keys
 * (`<topic>.retry.parked`) and the DLQ (the consumer's rule: `dlqTopic` or `<topic>.dlq`).
 */
import { parseDurationMs } from '../config/env-parsers.ts'
import { ConfigError } from '../errors/kafkit-error.ts'
import { checkTopicName } from '../topology/topic-naming.ts'

export interface RetryTierTopic {
  /** 1-based, in the order configured. */
  tier: number
  delayMs: number
  topic: string
}

export interface RetryFlowTopics {
  origin: string
  tiers: RetryTierTopic[]
  /** Per-key ordering: parked records released for handling. */
  release: string
  /** Per-key ordering: the compacted state of parked keys and records. */
  parked: string
  dlq: string
}

const UNITS: [string, number][] = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
  ['ms', 1]
]

/** `300000` → `5m`, `5400000` → `1h30m`, `250` → `250ms`: compact, lower-case, no dots. */
export function formatDelay(delayMs: number): string {
  if (delayMs === 0) return '0ms'
  let rest = delayMs
  let text = ''
  for (const [unit, size] of UNITS) {
    const count = Math.floor(rest / size)
    if (count > 0) text += `${count}${unit}`
    rest -= count * size
  }
  return text
}

/** A tier delay in milliseconds: a number as is, a text such as `250ms`, `30s`, `5m`, `1h`. */
export function tierDelayMs(delay: number | string, tier: number): number {
  let ms: number
  try {
    ms = typeof delay === 'number' ? delay : parseDurationMs(delay)
  } catch (error) {
    throw new ConfigError(`retry.tiers[${tier - 1}] ${JSON.stringify(delay)}: ${(error as Error).message}`, {
      details: { key: `retry.tiers.${tier - 1}`, value: delay }
    })
  }
  if (!Number.isSafeInteger(ms) || ms < 1) {
    throw new ConfigError(`retry.tiers[${tier - 1}] must be at least 1 ms, got ${JSON.stringify(delay)}`, {
      details: { key: `retry.tiers.${tier - 1}`, value: delay }
    })
  }
  return ms
}

export function retryFlowTopics(origin: string, tiers: readonly number[], dlqTopic?: string): RetryFlowTopics {
  const names: RetryFlowTopics = {
    origin,
    tiers: tiers.map((delayMs, i) => ({ tier: i + 1, delayMs, topic: `${origin}.retry.${formatDelay(delayMs)}` })),
    release: `${origin}.retry.release`,
    parked: `${origin}.retry.parked`,
    dlq: dlqTopic ?? `${origin}.dlq`
  }
  const seen = new Set<string>([origin])
  for (const topic of [...names.tiers.map(t => t.topic), names.release, names.parked, names.dlq]) {
    const check = checkTopicName(topic)
    if (!check.legal) throw new ConfigError(check.problems[0] ?? `illegal topic name ${topic}`)
    if (seen.has(topic)) {
      throw new ConfigError(`retry: two retry tiers (or a tier and another topic) would share topic ${topic}`, {
        details: { key: 'retry.tiers', topic }
      })
    }
    seen.add(topic)
  }
  return names
}

/**
 * The topics of one origin topic's retry flow: the tier topics and the DLQ as topology names them
 * (`retryTopicNames`: `<topic>.retry.<delay>`, `<topic>.dlq` or the consumer's `dlqTopic`), plus the two
 * topics of per-key ordering: the release topic that hands a parked record back for handling
 * (`<topic>.retry.release`) and the compacted topic of parked keys (`<topic>.retry.parked`).
 */
import { ConfigError } from '../errors/kafkit-error.ts'
import { checkTopicName } from '../topology/topic-naming.ts'
import { retryTopicNames, type RetryTier } from '../topology/retry-topics.ts'

export type RetryTierTopic = RetryTier

export interface RetryFlowTopics {
  origin: string
  /** Tier 1 first. */
  tiers: RetryTierTopic[]
  /** Per-key ordering: parked records released for handling. */
  release: string
  /** Per-key ordering: the compacted state of parked keys and records. */
  parked: string
  dlq: string
}

export function retryFlowTopics(
  origin: string,
  tiers: readonly number[],
  naming: { retryTopic?: string | undefined; dlqTopic?: string | undefined } = {}
): RetryFlowTopics {
  const names = retryTopicNames(origin, {
    tiers,
    ...(naming.retryTopic === undefined ? {} : { retryTopic: naming.retryTopic }),
    ...(naming.dlqTopic === undefined ? {} : { dlqTopic: naming.dlqTopic })
  })
  const flow: RetryFlowTopics = {
    origin,
    tiers: names.tiers,
    release: `${origin}.retry.release`,
    parked: `${origin}.retry.parked`,
    dlq: names.dlq
  }
  const taken = new Set([origin, names.dlq, ...names.tiers.map(t => t.topic)])
  for (const topic of [flow.release, flow.parked]) {
    const check = checkTopicName(topic)
    if (!check.legal) throw new ConfigError(check.problems[0] ?? `illegal topic name ${topic}`)
    if (taken.has(topic)) {
      throw new ConfigError(
        `retry: topic ${topic} would serve two roles; name the tiers differently (retry.topicTemplate)`,
        {
          details: { key: 'retry.topicTemplate', topic }
        }
      )
    }
  }
  return flow
}

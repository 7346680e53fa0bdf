/**
 * The partition counts of the topics the producer writes to: loaded at a topic's first message
 * (retried for about maxBlockMs, so a topic that does not exist fails then, not at the delivery
 * timeout) and refreshed in the background once older than `metadataMaxAgeMs`, so partitions added
 * to a topic get used. It also notes whether the cluster has more than one broker.
 */
import { isRetriable } from '../kafka/errors.ts'
import { describe } from './error-text.ts'
import { ProduceError } from './errors.ts'
import type { ProducerConfig } from './options.ts'

export interface TopicInfo {
  partitions: number
  /** When (performance.now()) the count is old enough to be refreshed. */
  refreshAt: number
  refreshing: boolean
}

/** The client's metadata call, as far as this part uses it. */
export interface MetadataClient {
  metadata(options: {
    topics: string[]
    autocreateTopics?: boolean
    retries?: number
    forceUpdate?: boolean
  }): Promise<{ brokers: { size: number }; topics: Map<string, { partitionsCount: number }> }>
}

export interface TopicHooks {
  /** Loading `topic` failed: the records waiting for it fail with `failure` (its cause: the client's error). */
  loadFailed(topic: string, failure: ProduceError): void
  /** A load ended, either way: records waiting for it can go on. */
  loadEnded(topic: string): void
}

export class TopicMetadata {
  /** The cluster has more than one broker (so a partition's leader can move). */
  severalBrokers = false
  readonly #client: MetadataClient
  readonly #config: Readonly<Pick<ProducerConfig, 'autocreateTopics' | 'metadataMaxAgeMs'>>
  readonly #retries: number
  readonly #hooks: TopicHooks
  readonly #now: () => number
  readonly #topics = new Map<string, TopicInfo>()
  readonly #loading = new Set<string>()

  constructor(
    client: MetadataClient,
    config: Readonly<Pick<ProducerConfig, 'autocreateTopics' | 'metadataMaxAgeMs'>>,
    retries: number,
    hooks: TopicHooks,
    now: () => number = () => performance.now()
  ) {
    this.#client = client
    this.#config = config
    this.#retries = retries
    this.#hooks = hooks
    this.#now = now
  }

  /** What is known of `topic`; undefined until its first load succeeded. */
  get(topic: string): TopicInfo | undefined {
    return this.#topics.get(topic)
  }

  /** Loads `topic`'s partition count, unless a load of it is under way. */
  load(topic: string): void {
    if (this.#loading.has(topic)) return
    this.#loading.add(topic)
    this.#client
      // Retried for about maxBlockMs (a topic that does not exist fails then, not at the delivery timeout).
      .metadata({ topics: [topic], autocreateTopics: this.#config.autocreateTopics, retries: this.#retries })
      .then(metadata => {
        if (metadata.brokers.size > 1) this.severalBrokers = true
        const info = metadata.topics.get(topic)
        if (info === undefined || info.partitionsCount < 1)
          throw new ProduceError(`topic ${topic} has no partitions in the metadata`)
        this.#topics.set(topic, {
          partitions: info.partitionsCount,
          refreshAt: this.#now() + this.#config.metadataMaxAgeMs,
          refreshing: false
        })
      })
      .catch((error: unknown) => {
        const failure = new ProduceError(`could not read the partitions of topic ${topic}: ${describe(error)}`, {
          cause: error,
          retryable: isRetriable(error),
          details: { topic }
        })
        this.#hooks.loadFailed(topic, failure)
      })
      .finally(() => {
        this.#loading.delete(topic)
        this.#hooks.loadEnded(topic)
      })
  }

  /** Reads `topic`'s partition count again in the background (a failure keeps the old count). */
  refresh(topic: string, info: TopicInfo): void {
    if (info.refreshing) return
    info.refreshing = true
    this.#client
      .metadata({ topics: [topic], forceUpdate: true })
      .then(
        metadata => {
          const count = metadata.topics.get(topic)?.partitionsCount
          if (count !== undefined && count > 0) info.partitions = count
        },
        () => undefined
      )
      .finally(() => {
        info.refreshing = false
        info.refreshAt = this.#now() + this.#config.metadataMaxAgeMs
      })
  }
}

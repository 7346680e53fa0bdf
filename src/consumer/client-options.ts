/**
 * What the consumer asks of the Kafka client: the group consumer's options (auto-commit off, the group
 * protocol's timeouts and assignor) and the record stream's (from the committed offsets, the fetch
 * sizes and isolation level).
 */
import {
  FetchIsolationLevels,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  type ClientConsumerOptions,
  type ConsumeOptions
} from '../kafka/client.ts'
import { toClientOptions } from '../kafka/connection.ts'
import type { ConsumerConfig } from './options.ts'

type Bytes = Buffer

export function clientOptions(config: ConsumerConfig): ClientConsumerOptions<Bytes, Bytes, Bytes, Bytes> {
  const base = {
    ...toClientOptions(config),
    groupId: config.groupId,
    autocommit: false,
    ...(config.groupInstanceId === undefined ? {} : { groupInstanceId: config.groupInstanceId })
  }
  if (config.groupProtocol === 'consumer') {
    // The client validates rebalanceTimeout >= sessionTimeout for both protocols (its default session is 60 s).
    return {
      ...base,
      groupProtocol: 'consumer',
      rebalanceTimeout: config.rebalanceTimeoutMs,
      ...({ sessionTimeout: Math.min(config.sessionTimeoutMs, config.rebalanceTimeoutMs) } as object)
    }
  }
  return {
    ...base,
    groupProtocol: 'classic',
    sessionTimeout: config.sessionTimeoutMs,
    rebalanceTimeout: config.rebalanceTimeoutMs,
    heartbeatInterval: config.heartbeatIntervalMs,
    protocols: [{ name: config.assignor, version: 1 }]
  }
}

export function isolationLevel(config: Pick<ConsumerConfig, 'isolationLevel'>): number {
  return config.isolationLevel === 'read_committed'
    ? FetchIsolationLevels.READ_COMMITTED
    : FetchIsolationLevels.READ_UNCOMMITTED
}

/** What the client's stream is asked for (the first one and any after a restart). */
export function streamOptions(
  config: Pick<
    ConsumerConfig,
    | 'topics'
    | 'startOffset'
    | 'minBytes'
    | 'maxBytes'
    | 'maxBytesPerPartition'
    | 'maxWaitMs'
    | 'maxPollRecords'
    | 'isolationLevel'
  >
): ConsumeOptions<Bytes, Bytes, Bytes, Bytes> {
  return {
    topics: [...config.topics],
    mode: MessagesStreamModes.COMMITTED,
    fallbackMode:
      config.startOffset === 'earliest' ? MessagesStreamFallbackModes.EARLIEST : MessagesStreamFallbackModes.LATEST,
    autocommit: false,
    minBytes: config.minBytes,
    maxBytes: config.maxBytes,
    maxBytesPerPartition: config.maxBytesPerPartition,
    maxWaitTime: config.maxWaitMs,
    highWaterMark: config.maxPollRecords,
    isolationLevel: isolationLevel(config)
  }
}

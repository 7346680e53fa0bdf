/**
 * The consumer runtime: `Consumer` (groups, offsets, ordering and concurrency, backpressure, handling,
 * dead-letters, breaker, lifecycle, metrics and lag), its options and errors. Guide: docs/consumer.md.
 */
export {
  Consumer,
  REPLAY_GROUP_HEADER,
  type ConsumerInit,
  type ConsumerEvents,
  type ConsumerHealth,
  type HandlerSource,
  type FailureRoute,
  type SettledOutcome
} from './consumer.ts'
export { consumerOptions, type ConsumerOptions, type ConsumerConfig } from './options.ts'
export { ConsumerStateError, PartitionRevokedError, ConsumerStoppedError } from './errors.ts'
export { OffsetTracker } from './offset-tracker.ts'
export { PartitionQueue, type OrderingMode } from './partition-queue.ts'
export { DecodeFailure, decodeRecord } from './decode.ts'
export type { ConsumerMetrics, PartitionLag, PartitionMetrics } from './metrics.ts'

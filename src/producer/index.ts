/**
 * The producer part: `Producer` (batching, backpressure, partitioners, retries, breaker, DLQ,
 * transactions, metrics), its options and errors. Guide: docs/producer.md.
 */
export { Producer, type ProducerInit, type ProducerEvents } from './producer.ts'
export { ProducerTransaction, type TransactionState } from './transaction.ts'
export {
  producerOptions,
  producerProfiles,
  type ProducerOptions,
  type ProducerConfig,
  type ProducerProfile
} from './options.ts'
export {
  CircuitOpenError,
  ProduceError,
  MessageTooLargeError,
  SerializationError,
  InvalidPartitionError,
  BufferFullError,
  SendTimeoutError,
  ProducerClosedError,
  TransactionError,
  TransactionAbortedError,
  TransactionStateError
} from './errors.ts'
export { murmur2, toPositive, keyPartition } from './murmur2.ts'
export { type PartitionerFunction, type PartitionerName } from './partitioners.ts'
export { type ProducerMetrics } from './metrics.ts'
export type { SendResult, SendOutcome, SendOptions, CloseReport, CloseOptions, FailedMessage } from './types.ts'

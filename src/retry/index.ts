/**
 * Delayed retry tiers and per-key ordered retries: `RetryingConsumer`, its options, the retry headers
 * and the per-key ordering state. Guide: docs/retries.md.
 */
export { RetryingConsumer, type RetryingConsumerInit, type RetryingConsumerMetrics } from './retrying-consumer.ts'
export { retryOptions, type RetryOptions, type RetryConfig } from './options.ts'
export {
  RetryHeader,
  RETRY_HEADER_PREFIX,
  RETRY_FORMAT_VERSION,
  readRetryHeaders,
  type RetryInfo
} from './retry-headers.ts'
export { retryFlowTopics, type RetryFlowTopics } from './topic-names.ts'

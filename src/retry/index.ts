/**
 * Delayed retry tiers and per-key ordered retries (the consumer's `retry` option): the flow, its options, the retry headers
 * and the per-key ordering state. Guide: docs/retries.md.
 */
export { RetryFlow, type RetryFlowInit, type RetryMetrics } from './retry-flow.ts'
export { retryOptions, type RetryOptions, type RetryConfig } from './options.ts'
export {
  RetryHeader,
  RETRY_HEADER_PREFIX,
  RETRY_FORMAT_VERSION,
  readRetryHeaders,
  type RetryInfo
} from './retry-headers.ts'
export { retryFlowTopics, type RetryFlowTopics } from './topic-names.ts'

/**
 * `kafkit/redis`: Redis integrations of Kafkit (peer dependency `ioredis`). `RedisProcessedIdStore`
 * keeps the idempotent consumer's processed ids (`idempotentConsumer({ store })` in `kafkit`) in Redis,
 * shared by every worker. Guide: docs/handling.md.
 */
export { RedisProcessedIdStore, type RedisProcessedIdStoreInit } from './processed-id-store.ts'
export {
  redisProcessedIdStoreOptions,
  type RedisProcessedIdStoreOptions,
  type RedisProcessedIdStoreConfig
} from './options.ts'
export type { ClaimResult, ProcessedIdStore } from '../handling/processed-id-store.ts'

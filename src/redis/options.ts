/**
 * The options of `RedisProcessedIdStore`, one schema validated at construction and documented in
 * docs/options.md. The client (or its url) is passed beside them; this module does not load ioredis.
 */
import { z } from 'zod'
import { defineOptions } from '../config/define-options.ts'
import { duration } from '../config/duration.ts'

const SEVEN_DAYS_MS = 7 * 24 * 60 * 60 * 1000

export const redisProcessedIdStoreOptions = defineOptions({
  component: 'redis processed-id store',
  schema: z.strictObject({
    keyPrefix: z
      .string()
      .default('kafkit:processed:')
      .describe('Prefix of every key; a key is `<keyPrefix><scope>:<id>` (`:` and `%` in the scope escaped).'),
    ttl: duration(1)
      .default(SEVEN_DAYS_MS)
      .describe(
        'How long a processed id is remembered (default 7 days): a redelivery within it is skipped, after it the id is claimable again. Keep it longer than a message can take to come back (retention, replays).'
      ),
    timeout: duration(1)
      .default(2000)
      .describe(
        'Longest a claim, complete or release waits for Redis, connecting included; then it fails with KAFKIT_STORE_UNAVAILABLE (transient). With `url` it is also the connect and command timeout of the client the store creates.'
      )
  })
})

export type RedisProcessedIdStoreOptions = z.input<typeof redisProcessedIdStoreOptions.schema>
export type RedisProcessedIdStoreConfig = z.output<typeof redisProcessedIdStoreOptions.schema>

/**
 * The options of delayed retries (`retry` beside a consumer's own options): the tiers, per-key
 * ordering, and in-place retries at each tier. One schema gives the type, the defaults, the validation
 * and the docs/options.md table. No environment variables: the consumer's `KAFKA_CONSUMER_` prefix
 * rejects names it does not know, and the tiers are part of the topology, set in code.
 */
import { z } from 'zod'
import { defineOptions } from '../config/define-options.ts'

export const retryOptions = defineOptions({
  component: 'retry',
  schema: z.strictObject({
    tiers: z
      .array(z.union([z.number().int().min(1), z.string().min(1)]))
      .min(1)
      .default([300_000, 600_000, 1_200_000, 2_400_000])
      .describe(
        'Delays of the retry tiers, in order: milliseconds or durations such as `250ms`, `30s`, `5m`, `1h`. Each tier is a topic `<topic>.retry.<delay>`. Default: 5m, 10m, 20m, 40m.'
      ),
    topicTemplate: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Names of the tier topics: a template with `{topic}`, `{delay}` (compact, e.g. `5m`), `{delayMs}` and `{tier}` (1-based). Default `{topic}.retry.{delay}`.'
      ),
    perKeyOrdering: z
      .boolean()
      .default(false)
      .describe(
        'While a key has a record waiting in retry, later records with the same key are parked (in a compacted topic `<topic>.retry.parked`) and released in order once it succeeds or is dead-lettered. Records without a key are never parked.'
      ),
    maxRetriesPerTier: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        "In-place retries at each tier before the record moves on to the next tier (waiting the consumer's retryBackoff between them, like the origin's; the origin keeps the consumer's maxRetries)."
      )
  })
})

export type RetryOptions = z.input<typeof retryOptions.schema>
export type RetryConfig = z.output<typeof retryOptions.schema>

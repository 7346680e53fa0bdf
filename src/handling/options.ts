/**
 * The data options of message handling, one schema per component (the executor, the consumer circuit
 * breaker, the dead-letter writer), validated once at construction and documented in docs/options.md.
 * Functions (handlers, classifiers, clocks) are passed beside them, not through the schema. These
 * components take no environment variables of their own: `KAFKA_CONSUMER_MAX_RETRIES` and
 * `KAFKA_CONSUMER_DLQ_TOPIC` belong to the consumer's options, which pass them on.
 */
import { z } from 'zod'
import { duration } from '../config/duration.ts'
import { defineOptions } from '../config/define-options.ts'

export const handlerExecutorOptions = defineOptions({
  component: 'handler executor',
  schema: z.strictObject({
    maxRetries: z
      .number()
      .int()
      .min(0)
      .default(3)
      .describe('In-place retries of a transient failure before the message is dead-lettered (0: none).'),
    retryBackoff: z
      .strictObject({
        baseMs: duration(0).default(100).describe('Cap of the first retry delay.'),
        maxMs: duration(0).default(10_000).describe('Largest retry delay.'),
        jitter: z
          .enum(['full', 'none'])
          .default('full')
          .describe('`full`: uniform in [0, cap] (spreads retries of many workers); `none`: exactly the cap.')
      })
      .prefault({})
      .describe('Exponential backoff between in-place retries: cap = min(maxMs, baseMs * 2^(retry-1)).'),
    batchFailure: z
      .enum(['split', 'dead-letter'])
      .default('split')
      .describe(
        'A batch that still fails after its retries (or fails permanently): `split` re-runs it one message at a time so only the bad ones are dead-lettered; `dead-letter` dead-letters the whole batch.'
      )
  })
})

export type HandlerExecutorOptions = z.input<typeof handlerExecutorOptions.schema>

export const consumerBreakerOptions = defineOptions({
  component: 'consumer circuit breaker',
  schema: z.strictObject({
    threshold: z
      .number()
      .int()
      .min(1)
      .default(3)
      .describe(
        'Consecutive transient failures that open it. At most maxRetries + 1, so an outage opens it before any message exhausts its retries.'
      ),
    cooldownMs: duration(0).default(30_000).describe('How long it stays open before one probe attempt.')
  })
})

export type ConsumerBreakerConfig = z.input<typeof consumerBreakerOptions.schema>

export const deadLetterOptions = defineOptions({
  component: 'dead-letter writer',
  schema: z.strictObject({
    topic: z.string().min(1).describe('The DLQ topic (the consumer passes KAFKA_CONSUMER_DLQ_TOPIC). Required.'),
    maxErrorMessageLength: z
      .number()
      .int()
      .min(16)
      .default(1024)
      .describe('The error message header is cut to this many characters.'),
    maxStackLength: z
      .number()
      .int()
      .min(0)
      .default(4096)
      .describe('The error stack header is cut to this many characters (0: no stack header).'),
    acks: z
      .union([z.literal(-1), z.literal(1)])
      .default(-1)
      .describe('Acknowledgement the DLQ write waits for: -1 all in-sync replicas, 1 the leader.'),
    maxWriteAttempts: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe(
        'Give up after this many failed writes (KAFKIT_DLQ_WRITE_FAILED). Absent: retry until acknowledged or aborted, since the offset must not be committed before.'
      ),
    writeBackoff: z
      .strictObject({
        baseMs: duration(0).default(200).describe('Cap of the first delay after a failed write.'),
        maxMs: duration(0).default(30_000).describe('Largest delay between writes.')
      })
      .prefault({})
      .describe('Backoff (full jitter) between failed DLQ writes.')
  })
})

export type DeadLetterWriterOptions = z.input<typeof deadLetterOptions.schema>

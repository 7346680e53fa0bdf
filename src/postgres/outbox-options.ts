/**
 * The options of `OutboxRelay`: one schema gives the type, defaults, `KAFKA_OUTBOX_*` variables and the
 * docs/options.md table. The database, the Kafka connection and a borrowed producer are passed beside
 * them (see OutboxRelayInit).
 */
import { z } from 'zod'
import { defineOptions } from '../config/define-options.ts'
import { duration } from '../config/duration.ts'
import { envDuration, envInteger, envString } from '../config/env-parsers.ts'

export const outboxRelayOptions = defineOptions({
  component: 'outbox relay',
  envPrefix: 'KAFKA_OUTBOX_',
  env: {
    table: envString('KAFKA_OUTBOX_TABLE'),
    batchSize: envInteger('KAFKA_OUTBOX_BATCH_SIZE'),
    pollIntervalMs: envDuration('KAFKA_OUTBOX_POLL_INTERVAL'),
    leaderCheckIntervalMs: envDuration('KAFKA_OUTBOX_LEADER_CHECK_INTERVAL'),
    retentionMs: envDuration('KAFKA_OUTBOX_RETENTION')
  },
  schema: z.strictObject({
    table: z
      .string()
      .min(1)
      .default('kafkit_outbox')
      .describe('The outbox table (`schema.table` allowed); its dead letters go to `<table>_dead_letters`.'),
    batchSize: z.number().int().min(1).max(10_000).default(1000).describe('Rows read, published and marked per round.'),
    pollIntervalMs: duration(10)
      .default(1000)
      .describe(
        'How often the relay looks for rows when no NOTIFY woke it (a fallback: inserts notify the relay at commit).'
      ),
    leaderCheckIntervalMs: duration(10)
      .default(1000)
      .describe(
        'How often a standby relay tries to take the leader lock; a relay that dies is replaced within about this long.'
      ),
    retentionMs: duration(0)
      .default(0)
      .describe(
        'How long published rows are kept (`published_at` set) before they are deleted; 0 deletes them as soon as Kafka acknowledged them.'
      ),
    cleanupIntervalMs: duration(100)
      .default(60_000)
      .describe('How often published rows older than `retentionMs` are deleted (when `retentionMs` is above 0).'),
    retryBackoffMs: duration(1)
      .default(200)
      .describe(
        'The first wait after the database or Kafka failed; it doubles on each failure in a row up to `maxRetryBackoffMs`.'
      ),
    maxRetryBackoffMs: duration(1)
      .default(10_000)
      .describe('The longest wait between attempts while the database or Kafka is down.')
  })
})

export type OutboxRelayOptions = z.input<typeof outboxRelayOptions.schema>
export type OutboxRelayConfig = z.output<typeof outboxRelayOptions.schema>

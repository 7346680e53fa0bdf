/**
 * The options of `ClickHouseWriter`, one schema validated at construction and documented in
 * docs/options.md. The client is passed beside them; `CLICKHOUSE_URL` is read only by
 * `ClickHouseWriter.connect` callers (the log-pipeline example), not here.
 */
import { z } from 'zod'
import { duration } from '../config/duration.ts'
import { defineOptions } from '../config/define-options.ts'

export const clickHouseWriterOptions = defineOptions({
  component: 'clickhouse writer',
  schema: z.strictObject({
    table: z
      .string()
      .regex(/^[^.]+(\.[^.]+)?$/, 'table or database.table')
      .describe('Target table, optionally `database.table`. Required.'),
    deduplication: z
      .enum(['auto', 'token', 'off'])
      .default('auto')
      .describe(
        '`token`: every insert carries `insert_deduplication_token` = table/topic/partition/offset range, so a retried batch is dropped by the server (fails at the first write on a server without it); `auto`: a token where the server supports it, none otherwise; `off`: never (rely on ReplacingMergeTree and FINAL).'
      ),
    insertTimeoutMs: duration(1)
      .default(30_000)
      .describe('Abort an insert that has not answered within this time (it then counts as a transient failure).')
  })
})

export type ClickHouseWriterOptions = z.input<typeof clickHouseWriterOptions.schema>
export type ClickHouseWriterConfig = z.output<typeof clickHouseWriterOptions.schema>

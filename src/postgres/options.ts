/**
 * The options of `PostgresWriter`, one schema validated at construction and documented in
 * docs/options.md. The database handle and functions are passed beside them. `DATABASE_URL` is read
 * only by `PostgresWriter.connect`, not here, so a sink built on a borrowed pool never looks at it.
 */
import { z } from 'zod'
import { defineOptions } from '../config/define-options.ts'

const identifier = z.string().min(1).max(63).describe('a column name')

export const postgresWriterOptions = defineOptions({
  component: 'postgres writer',
  schema: z
    .strictObject({
      table: z
        .string()
        .regex(/^[^.]+(\.[^.]+)?$/, 'table or schema.table')
        .describe('Target table, optionally schema-qualified (`audit.logs`). Required.'),
      columns: z.array(identifier).min(1).describe('The columns written, in the order of the row objects. Required.'),
      key: z
        .array(identifier)
        .min(1)
        .optional()
        .describe(
          'Columns of a unique constraint (for the logs table: `["log_id"]`); rows whose key exists are skipped (`ON CONFLICT DO NOTHING`). Required for `idempotent`.'
        ),
      version: identifier
        .optional()
        .describe(
          'A version column: on a key conflict the row with the higher version wins (upsert) instead of the first one.'
        ),
      delivery: z
        .enum(['idempotent', 'exactly-once', 'at-least-once'])
        .default('idempotent')
        .describe(
          '`idempotent`: rows keyed by `key`, redeliveries skipped; `exactly-once`: rows and consumed offsets in one transaction (offsets table), no key needed; `at-least-once`: plain inserts, a redelivered batch is stored twice (a control, not for production).'
        ),
      offsetsTable: z
        .string()
        .regex(/^[^.]+(\.[^.]+)?$/, 'table or schema.table')
        .default('kafkit_offsets')
        .describe('Where `exactly-once` stores the next offset per group, topic and partition (created when missing).'),
      bulk: z
        .enum(['auto', 'insert', 'copy'])
        .default('auto')
        .describe(
          '`insert`: multi-row INSERT; `copy`: COPY into a temporary staging table, then INSERT ... SELECT; `auto`: COPY from `copyMinRows` rows on (measured in bench/sink), INSERT below.'
        ),
      copyMinRows: z
        .number()
        .int()
        .min(1)
        .default(250)
        .describe(
          'Batches of at least this many rows take the COPY path when `bulk` is `auto` (bench/sink/write-paths.ts: INSERT wins below ~100-200 rows, COPY above).'
        ),
      maxParameters: z
        .number()
        .int()
        .min(1)
        .max(65_535)
        .default(30_000)
        .describe('Bind parameters per INSERT statement (PostgreSQL allows 65535); larger batches are split.')
    })
    .superRefine((options, context) => {
      const known = new Set(options.columns)
      for (const [index, column] of (options.key ?? []).entries()) {
        if (!known.has(column)) {
          context.addIssue({
            code: 'custom',
            path: ['key', index],
            message: `one of the columns (${options.columns.join(', ')})`
          })
        }
      }
      if (options.version !== undefined && !known.has(options.version)) {
        context.addIssue({
          code: 'custom',
          path: ['version'],
          message: `one of the columns (${options.columns.join(', ')})`
        })
      }
      if (options.version !== undefined && options.key === undefined) {
        context.addIssue({ code: 'custom', path: ['version'], message: 'nothing unless `key` is set too' })
      }
      if (options.delivery === 'idempotent' && options.key === undefined) {
        context.addIssue({
          code: 'custom',
          path: ['key'],
          message: 'the columns of a unique constraint when delivery is idempotent (or use delivery exactly-once)'
        })
      }
    })
})

export type PostgresWriterOptions = z.input<typeof postgresWriterOptions.schema>
export type PostgresWriterConfig = z.output<typeof postgresWriterOptions.schema>

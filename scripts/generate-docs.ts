/**
 * Regenerates the tables in docs/ that derive from code (error codes, option tables) between
 * `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` markers. Unit tests fail when a committed
 * page differs from what this script would write, so run `npm run docs` after changing a schema.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { errorCodes } from '../src/errors/codes.ts'
import { headersTable } from '../src/message/wire-format.ts'
import { postgresWriterOptions } from '../src/postgres/options.ts'
import { stageOptions } from '../src/stage/options.ts'
import { outboxRelayOptions } from '../src/postgres/outbox-options.ts'
import { postgresProcessedIdStoreOptions } from '../src/postgres/processed-id-store.ts'
import { redisProcessedIdStoreOptions } from '../src/redis/options.ts'
import { clickHouseWriterOptions } from '../src/clickhouse/options.ts'
import { sinkOptions } from '../src/sink/options.ts'
import { producerOptions } from '../src/producer/options.ts'
import { consumerOptions } from '../src/consumer/options.ts'
import { retryOptions } from '../src/retry/options.ts'

export function errorsTable(): string {
  const rows = Object.entries(errorCodes).map(([code, meaning]) => `| \`${code}\` | ${meaning} |`)
  return ['| Code | Meaning |', '| --- | --- |', ...rows].join('\n')
}

export const generated: Record<string, { file: string; render: () => string }> = {
  errors: { file: 'docs/errors.md', render: errorsTable },
  headers: { file: 'docs/headers.md', render: headersTable },
  sink: { file: 'docs/options.md', render: () => sinkOptions.table() },
  'postgres-writer': { file: 'docs/options.md', render: () => postgresWriterOptions.table() },
  'clickhouse-writer': { file: 'docs/options.md', render: () => clickHouseWriterOptions.table() },
  stage: { file: 'docs/options.md', render: () => stageOptions.table() },
  'outbox-relay': { file: 'docs/options.md', render: () => outboxRelayOptions.table() },
  'postgres-processed-id-store': { file: 'docs/options.md', render: () => postgresProcessedIdStoreOptions.table() },
  'redis-processed-id-store': { file: 'docs/options.md', render: () => redisProcessedIdStoreOptions.table() },
  producer: { file: 'docs/options.md', render: () => producerOptions.table() },
  consumer: { file: 'docs/options.md', render: () => consumerOptions.table() },
  retry: { file: 'docs/options.md', render: () => retryOptions.table() }
}

export function replaceSection(text: string, name: string, body: string): string {
  const start = `<!-- generated:${name} -->`
  const end = `<!-- /generated:${name} -->`
  const from = text.indexOf(start)
  const to = text.indexOf(end)
  if (from < 0 || to < from) throw new Error(`markers for ${name} are missing`)
  return `${text.slice(0, from + start.length)}\n${body}\n${text.slice(to)}`
}

if (import.meta.main) {
  for (const [name, { file, render }] of Object.entries(generated)) {
    const text = await readFile(file, 'utf8')
    await writeFile(file, replaceSection(text, name, render()))
    process.stdout.write(`updated ${file} (${name})\n`)
  }
}

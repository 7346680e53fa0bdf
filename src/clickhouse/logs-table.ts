/**
 * The log pipeline's recommended ClickHouse `logs` table: ReplacingMergeTree versioned by insert
 * time, partitioned by month, with `log_id` in the sorting key so that a redelivered log event
 * collapses into one row (at merge time, or at once for reads `FINAL`). The DDL is built for the
 * connected server: where it lacks DateTime64, LowCardinality, now64() or TTL, the nearest older
 * form is used and the change is reported in `adaptations`, never silently. Where the server
 * deduplicates non-replicated inserts, the table keeps a deduplication window so a retried batch
 * with the same `insert_deduplication_token` is dropped on arrival.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { detectCapabilities, type ClickHouseCapabilities } from './capabilities.ts'
import { quoteClickHouseName } from './names.ts'

export interface LogsTableOptions {
  /** `table` or `database.table`; default `logs`. */
  table?: string
  /** Days before rows expire (TTL), where the server has TTL; 0 disables. Default 90. */
  ttlDays?: number
  /** Inserted blocks remembered for deduplication by token (non-replicated tables, 20.10+). Default 1000. */
  deduplicationWindow?: number
  /** Skip detection (tests, or a known server). */
  capabilities?: ClickHouseCapabilities
  signal?: AbortSignal
}

export interface LogsTable {
  table: string
  ddl: string
  capabilities: ClickHouseCapabilities
  /** What differs from the recommended schema on this server, and why. */
  adaptations: string[]
}

/** The `CREATE TABLE IF NOT EXISTS` statement of the logs table for a server with `capabilities`. */
export function logsTableDdl(
  capabilities: ClickHouseCapabilities,
  options: Omit<LogsTableOptions, 'capabilities' | 'signal'> = {}
): { ddl: string; adaptations: string[] } {
  const table = options.table ?? 'logs'
  const ttlDays = options.ttlDays ?? 90
  const adaptations: string[] = []
  const v = `ClickHouse ${capabilities.version}`
  let timestamp = "DateTime64(3, 'UTC')"
  if (!capabilities.dateTime64) {
    timestamp = "DateTime('UTC')"
    adaptations.push(`timestamp is DateTime('UTC') (whole seconds): ${v} has no DateTime64`)
  }
  let low = 'LowCardinality(String)'
  if (capabilities.lowCardinality !== 'stable') {
    low = 'String'
    adaptations.push(`service, environment and level are String: ${v} has no stable LowCardinality`)
  }
  let version = 'DateTime64(3) DEFAULT now64()'
  if (!capabilities.now64 || !capabilities.dateTime64) {
    version = 'DateTime DEFAULT now()'
    adaptations.push(`_inserted_at is DateTime DEFAULT now() (seconds): ${v} has no now64()/DateTime64`)
  }
  let ttl = ''
  if (ttlDays > 0) {
    if (capabilities.ttl) ttl = `\nTTL timestamp + INTERVAL ${ttlDays} DAY`
    else adaptations.push(`no TTL (${ttlDays} days): ${v} has no table TTL; drop old monthly partitions instead`)
  }
  const settings: string[] = []
  if (capabilities.nonReplicatedDeduplication && capabilities.insertDeduplicationToken) {
    settings.push(`non_replicated_deduplication_window = ${options.deduplicationWindow ?? 1000}`)
  } else {
    adaptations.push(
      `no insert deduplication: ${v} ${capabilities.insertDeduplicationToken ? 'deduplicates only Replicated tables' : 'has no insert_deduplication_token'}; a retried batch is stored again and collapsed by ReplacingMergeTree (read with FINAL)`
    )
  }
  const ddl = `CREATE TABLE IF NOT EXISTS ${quoteClickHouseName(table)} (
    log_id String,
    timestamp ${timestamp},
    service ${low},
    environment ${low},
    level ${low},
    message String,
    trace_id String DEFAULT '',
    user_id String DEFAULT '',
    request_id String DEFAULT '',
    stack_trace String DEFAULT '',
    _inserted_at ${version}
) ENGINE = ReplacingMergeTree(_inserted_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (service, environment, timestamp, log_id)${ttl}${settings.length > 0 ? `\nSETTINGS ${settings.join(', ')}` : ''}`
  return { ddl, adaptations }
}

/** Creates the logs table when missing, adapted to the server; returns what was adapted. */
export async function createLogsTable(client: ClickHouseClient, options: LogsTableOptions = {}): Promise<LogsTable> {
  const capabilities = options.capabilities ?? (await detectCapabilities(client, options.signal))
  const { ddl, adaptations } = logsTableDdl(capabilities, options)
  await client.command({ query: ddl, ...(options.signal ? { abort_signal: options.signal } : {}) })
  return { table: options.table ?? 'logs', ddl, capabilities, adaptations }
}

/**
 * What the connected ClickHouse server can do, asked at run time from its system tables rather than
 * assumed from the client's version: the sink and the `logs` table helper adapt to it and say what
 * they gave up (`missingFeatures`). Debian 12's `clickhouse-server` is 18.16.1 (2018), which lacks
 * DateTime64, `now64()`, table TTL, stable LowCardinality and insert deduplication tokens; current
 * servers have them all.
 */
import type { ClickHouseClient } from '@clickhouse/client'

export interface ClickHouseCapabilities {
  /** `SELECT version()`, e.g. `18.16.1`. */
  version: string
  major: number
  minor: number
  /** The `DateTime64(precision, tz)` type (sub-second timestamps); 20.1+. */
  dateTime64: boolean
  /** `now64()`; 20.1+. */
  now64: boolean
  /** `LowCardinality(T)`: `stable`, `experimental` (needs allow_experimental_low_cardinality_type) or `absent`. */
  lowCardinality: 'stable' | 'experimental' | 'absent'
  /** Table-level `TTL` (19.6+; no system table lists it, so this one is by version). */
  ttl: boolean
  /** The `insert_deduplication_token` setting (22.2+): a caller-chosen identity for an inserted block. */
  insertDeduplicationToken: boolean
  /** The MergeTree setting `non_replicated_deduplication_window`: insert deduplication without replication (20.10+). */
  nonReplicatedDeduplication: boolean
}

async function rows<T>(client: ClickHouseClient, query: string, signal?: AbortSignal): Promise<T[]> {
  const result = await client.query({ query, format: 'JSONEachRow', ...(signal ? { abort_signal: signal } : {}) })
  return result.json<T>()
}

export async function detectCapabilities(
  client: ClickHouseClient,
  signal?: AbortSignal
): Promise<ClickHouseCapabilities> {
  const [about] = await rows<{ version: string }>(client, 'SELECT version() AS version', signal)
  const version = about?.version ?? '0.0'
  const [major = 0, minor = 0] = version.split('.').map(Number)
  const types = new Set(
    (
      await rows<{ name: string }>(
        client,
        "SELECT name FROM system.data_type_families WHERE name IN ('DateTime64', 'LowCardinality')",
        signal
      )
    ).map(row => row.name)
  )
  const functions = new Set(
    (await rows<{ name: string }>(client, "SELECT name FROM system.functions WHERE name IN ('now64')", signal)).map(
      row => row.name
    )
  )
  const settings = new Map(
    (
      await rows<{ name: string; value: string }>(
        client,
        "SELECT name, value FROM system.settings WHERE name IN ('insert_deduplication_token', 'allow_experimental_low_cardinality_type')",
        signal
      )
    ).map(row => [row.name, row.value])
  )
  const mergeTree = new Set(
    (
      await rows<{ name: string }>(
        client,
        "SELECT name FROM system.merge_tree_settings WHERE name IN ('non_replicated_deduplication_window')",
        signal
      )
    ).map(row => row.name)
  )
  // LowCardinality became a stable type in 19.x; while the experimental switch exists and is off, it
  // cannot be used in a CREATE TABLE without changing a user setting.
  const experimentalSwitch = settings.get('allow_experimental_low_cardinality_type')
  const lowCardinality = !types.has('LowCardinality')
    ? 'absent'
    : experimentalSwitch === '0'
      ? 'experimental'
      : 'stable'
  return {
    version,
    major,
    minor,
    dateTime64: types.has('DateTime64'),
    now64: functions.has('now64'),
    lowCardinality,
    ttl: major > 19 || (major === 19 && minor >= 6),
    insertDeduplicationToken: settings.has('insert_deduplication_token'),
    nonReplicatedDeduplication: mergeTree.has('non_replicated_deduplication_window')
  }
}

/** One line per feature the server lacks, with what Kafkit does instead (for logs and docs). */
export function missingFeatures(capabilities: ClickHouseCapabilities): string[] {
  const lines: string[] = []
  const v = `ClickHouse ${capabilities.version}`
  if (!capabilities.dateTime64) lines.push(`${v} has no DateTime64: timestamps are stored as DateTime (whole seconds)`)
  if (!capabilities.now64) lines.push(`${v} has no now64(): the version column defaults to now() (seconds)`)
  if (capabilities.lowCardinality !== 'stable') {
    lines.push(`${v} has no stable LowCardinality: low-cardinality columns are plain String`)
  }
  if (!capabilities.ttl) lines.push(`${v} has no table TTL: old rows are not expired (drop partitions instead)`)
  if (!capabilities.insertDeduplicationToken) {
    lines.push(
      `${v} has no insert_deduplication_token: a retried batch is inserted again and deduplicated only by ReplacingMergeTree (read with FINAL)`
    )
  }
  if (!capabilities.nonReplicatedDeduplication) {
    lines.push(`${v} deduplicates inserted blocks only in Replicated tables (no non_replicated_deduplication_window)`)
  }
  return lines
}

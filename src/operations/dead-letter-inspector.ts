/**
 * Reading a dead-letter topic for people: every record with its parsed `kafkit-dlq-*` metadata,
 * filtered (error kind/class, time range, key, origin topic, consumer group, DLQ partition and offset
 * range) and counted per error. The `kafkit dlq`
 * commands print what this returns; records without Kafkit's headers are listed as foreign, never
 * dropped, so nothing in a DLQ is hidden from the person looking at it.
 */
import { parseDeadLetterHeaders, type DeadLetterInfo } from '../handling/dead-letter.ts'
import { readTopicSnapshot, type RawRecord, type TopicSnapshotOptions } from './topic-snapshot.ts'

export interface DeadLetterFilter {
  errorKind?: 'transient' | 'permanent'
  /** Matches the error class name exactly (e.g. `SyntaxError`, `PermanentError`). */
  errorClass?: string
  originTopic?: string
  key?: string
  /** Dead-lettered at or after. */
  since?: Date
  /** Dead-lettered before. */
  until?: Date
  /** Dead-lettered by this consumer group (header `kafkit-dlq-consumer-group`). */
  groupId?: string
  /** Only these DLQ partitions. */
  partitions?: readonly number[]
  /** DLQ offsets from this one (inclusive), in every partition read. */
  fromOffset?: bigint
  /** DLQ offsets up to this one (inclusive), in every partition read. */
  toOffset?: bigint
}

export interface DeadLetterEntry {
  partition: number
  offset: bigint
  key: Buffer | null
  value: Buffer | null
  headers: Map<string, Buffer>
  /** The headers in order, repeated names kept (what a replay sends back). */
  headerEntries: [string, Buffer][]
  /** Null for a record without Kafkit's dead-letter headers (written by another tool). */
  info: DeadLetterInfo | null
  /** Why `info` is null. */
  foreignReason?: string
}

export interface DeadLetterListing {
  entries: DeadLetterEntry[]
  /** Records read before filtering. */
  scanned: number
  /** `<kind> <class>: <count>` over the filtered entries, largest first. */
  countsByError: { kind: string; errorClass: string; count: number }[]
}

function toEntry(record: RawRecord): DeadLetterEntry {
  const headers = new Map<string, Buffer>()
  const headerEntries: [string, Buffer][] = []
  for (const [name, value] of record.headerEntries ?? record.headers) {
    headers.set(name.toString(), value)
    headerEntries.push([name.toString(), value])
  }
  const base = {
    partition: record.partition,
    offset: record.offset,
    key: record.key ?? null,
    value: record.value ?? null,
    headers,
    headerEntries
  }
  try {
    return { ...base, info: parseDeadLetterHeaders(headers) }
  } catch (error) {
    return { ...base, info: null, foreignReason: (error as Error).message }
  }
}

export function matchesFilter(entry: DeadLetterEntry, filter: DeadLetterFilter): boolean {
  const { info } = entry
  if (filter.key !== undefined && entry.key?.toString('utf8') !== filter.key) return false
  if (filter.partitions !== undefined && !filter.partitions.includes(entry.partition)) return false
  if (filter.fromOffset !== undefined && entry.offset < filter.fromOffset) return false
  if (filter.toOffset !== undefined && entry.offset > filter.toOffset) return false
  const needsInfo =
    filter.errorKind ??
    filter.errorClass ??
    filter.originTopic ??
    filter.since ??
    filter.until ??
    filter.groupId ??
    undefined
  if (needsInfo === undefined) return true
  if (!info) return false
  if (filter.groupId !== undefined && info.consumerGroup !== filter.groupId) return false
  if (filter.errorKind !== undefined && info.errorKind !== filter.errorKind) return false
  if (filter.errorClass !== undefined && info.errorClass !== filter.errorClass) return false
  if (filter.originTopic !== undefined && info.originTopic !== filter.originTopic) return false
  if (filter.since !== undefined && info.deadLetteredAt < filter.since) return false
  if (filter.until !== undefined && info.deadLetteredAt >= filter.until) return false
  return true
}

/** The part of the topic a filter can match: its partitions and offset range, so the rest is not read. */
export function snapshotScope(options: TopicSnapshotOptions, filter: DeadLetterFilter): TopicSnapshotOptions {
  const { partitions, fromOffset, toOffset } = filter
  const scope: TopicSnapshotOptions = { ...options }
  if (partitions !== undefined) scope.partitions = partitions
  if (fromOffset !== undefined) scope.from = fromOffset
  if (toOffset !== undefined) scope.until = toOffset + 1n
  return scope
}

export async function listDeadLetters(
  options: TopicSnapshotOptions & { filter?: DeadLetterFilter; onProgress?: (scanned: number) => void }
): Promise<DeadLetterListing> {
  const entries: DeadLetterEntry[] = []
  let scanned = 0
  for await (const record of readTopicSnapshot(snapshotScope(options, options.filter ?? {}))) {
    scanned++
    if (scanned % 1000 === 0) options.onProgress?.(scanned)
    const entry = toEntry(record)
    if (matchesFilter(entry, options.filter ?? {})) entries.push(entry)
  }
  const counts = new Map<string, { kind: string; errorClass: string; count: number }>()
  for (const { info } of entries) {
    const kind = info?.errorKind ?? 'foreign'
    const errorClass = info?.errorClass ?? '-'
    const key = `${kind}\u0000${errorClass}`
    const current = counts.get(key) ?? { kind, errorClass, count: 0 }
    current.count++
    counts.set(key, current)
  }
  return { entries, scanned, countsByError: [...counts.values()].sort((a, b) => b.count - a.count) }
}

/** One record by partition and offset, or undefined when the offset holds none (deleted, compacted). */
export async function showDeadLetter(
  options: TopicSnapshotOptions & { partition: number; offset: bigint }
): Promise<DeadLetterEntry | undefined> {
  for await (const record of readTopicSnapshot({
    ...options,
    partitions: [options.partition],
    from: new Map([[options.partition, options.offset]])
  })) {
    if (record.offset === options.offset) return toEntry(record)
    if (record.offset > options.offset) return undefined
  }
  return undefined
}

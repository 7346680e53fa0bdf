/**
 * The `kafkit-retry-*` headers a record carries on a retry tier (and on the release topic of per-key
 * ordering): where it came from, which delayed attempt it is, when it is due, since when it fails and
 * what the last error was. `retryHeaderEntries` builds them for the next hop, keeping the original
 * headers (minus earlier retry headers and a replay-group mark) in order; `readRetryHeaders` reads them
 * back. Values are UTF-8 text; times ISO 8601 in UTC; offsets decimal. docs/retries.md lists them.
 */
import { REPLAY_GROUP_HEADER, RETRY_FORMAT_VERSION, RETRY_HEADER_PREFIX, RetryHeader } from '../message/wire-format.ts'

export { RETRY_FORMAT_VERSION, RETRY_HEADER_PREFIX, RetryHeader }
import { errorClassOf, errorCodeOf, errorMessageOf, truncate } from '../handling/error-text.ts'
import type { ConsumedMessage } from '../handling/types.ts'

/** What a retry record's headers say. */
export interface RetryInfo {
  version: number
  attempt: number
  tier: number
  delayMs: number
  dueAt: Date
  originTopic: string
  originPartition: number
  originOffset: bigint
  originTimestamp: Date | undefined
  consumerGroup: string
  handlerAttempts: number
  firstFailureAt: Date | undefined
  lastFailureAt: Date | undefined
  errorClass: string | undefined
  errorCode: string | undefined
  errorMessage: string | undefined
  keyOrder: boolean
}

/** The next hop of a record: the tier it goes to and why. */
export interface RetryHop {
  attempt: number
  tier: number
  delayMs: number
  dueAt: Date
  consumerGroup: string
  origin: { topic: string; partition: number; offset: bigint; timestamp: Date | undefined }
  handlerAttempts: number
  firstFailureAt?: Date | undefined
  lastFailureAt?: Date | undefined
  error?: unknown
  keyOrder: boolean
}

const MAX_ERROR_MESSAGE = 1024

/** Headers that must not travel to the next hop: earlier retry headers, and a replay mark for the origin group. */
function carried(name: string): boolean {
  return !name.startsWith(RETRY_HEADER_PREFIX) && name !== REPLAY_GROUP_HEADER
}

/** The original headers of `message` (in order, repeats kept) followed by the retry headers of `hop`. */
export function retryHeaderEntries(
  message: Pick<ConsumedMessage<unknown>, 'headers' | 'headerEntries'>,
  hop: RetryHop
): [string, Buffer][] {
  const out: [string, Buffer][] = []
  for (const [name, value] of message.headerEntries ?? message.headers) if (carried(name)) out.push([name, value])
  const set = (name: string, value: string | undefined) => {
    if (value !== undefined) out.push([name, Buffer.from(value, 'utf8')])
  }
  set(RetryHeader.version, String(RETRY_FORMAT_VERSION))
  set(RetryHeader.attempt, String(hop.attempt))
  set(RetryHeader.tier, String(hop.tier))
  set(RetryHeader.delayMs, String(hop.delayMs))
  set(RetryHeader.dueAt, hop.dueAt.toISOString())
  set(RetryHeader.originTopic, hop.origin.topic)
  set(RetryHeader.originPartition, String(hop.origin.partition))
  set(RetryHeader.originOffset, hop.origin.offset.toString())
  const timestamp = hop.origin.timestamp
  set(
    RetryHeader.originTimestamp,
    timestamp && !Number.isNaN(timestamp.getTime()) ? timestamp.toISOString() : undefined
  )
  set(RetryHeader.consumerGroup, hop.consumerGroup)
  set(RetryHeader.handlerAttempts, String(hop.handlerAttempts))
  set(RetryHeader.firstFailureAt, hop.firstFailureAt?.toISOString())
  set(RetryHeader.lastFailureAt, hop.lastFailureAt?.toISOString())
  if (hop.error !== undefined) {
    set(RetryHeader.errorClass, errorClassOf(hop.error))
    set(RetryHeader.errorCode, errorCodeOf(hop.error))
    set(RetryHeader.errorMessage, truncate(errorMessageOf(hop.error), MAX_ERROR_MESSAGE))
  }
  if (hop.keyOrder) set(RetryHeader.keyOrder, '1')
  return out
}

/** The headers without Kafkit's retry headers, in order (what a dead-letter record of a retried record keeps). */
export function withoutRetryHeaders(entries: Iterable<readonly [string, Buffer]>): [string, Buffer][] {
  const out: [string, Buffer][] = []
  for (const [name, value] of entries) if (!name.startsWith(RETRY_HEADER_PREFIX)) out.push([name, value])
  return out
}

function texts(headers: ReadonlyMap<string, Buffer> | Iterable<readonly [string, Buffer]>): Map<string, string> {
  const out = new Map<string, string>()
  for (const [name, value] of headers) out.set(name, value.toString('utf8'))
  return out
}

const date = (value: string | undefined): Date | undefined => {
  if (value === undefined) return undefined
  const parsed = new Date(value)
  return Number.isNaN(parsed.getTime()) ? undefined : parsed
}

const whole = (value: string | undefined): number | undefined =>
  value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined

/**
 * Reads the retry headers; undefined when the record has none (or its origin is unreadable), so a
 * foreign record on a retry topic is handled as it is rather than guessed at.
 */
export function readRetryHeaders(
  headers: ReadonlyMap<string, Buffer> | Iterable<readonly [string, Buffer]>
): RetryInfo | undefined {
  const t = texts(headers)
  const originTopic = t.get(RetryHeader.originTopic)
  const originPartition = whole(t.get(RetryHeader.originPartition))
  const offsetText = t.get(RetryHeader.originOffset)
  if (originTopic === undefined || originPartition === undefined || !offsetText || !/^\d+$/.test(offsetText)) {
    return undefined
  }
  return {
    version: whole(t.get(RetryHeader.version)) ?? RETRY_FORMAT_VERSION,
    attempt: whole(t.get(RetryHeader.attempt)) ?? 0,
    tier: whole(t.get(RetryHeader.tier)) ?? 0,
    delayMs: whole(t.get(RetryHeader.delayMs)) ?? 0,
    dueAt: date(t.get(RetryHeader.dueAt)) ?? new Date(0),
    originTopic,
    originPartition,
    originOffset: BigInt(offsetText),
    originTimestamp: date(t.get(RetryHeader.originTimestamp)),
    consumerGroup: t.get(RetryHeader.consumerGroup) ?? '',
    handlerAttempts: whole(t.get(RetryHeader.handlerAttempts)) ?? 0,
    firstFailureAt: date(t.get(RetryHeader.firstFailureAt)),
    lastFailureAt: date(t.get(RetryHeader.lastFailureAt)),
    errorClass: t.get(RetryHeader.errorClass),
    errorCode: t.get(RetryHeader.errorCode),
    errorMessage: t.get(RetryHeader.errorMessage),
    keyOrder: t.get(RetryHeader.keyOrder) === '1'
  }
}

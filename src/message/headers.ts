/**
 * The standard headers: their wire names, and typed reading on the consumer side. Producers write
 * them through the message builder; consumers get them parsed as `message.meta`. Values are UTF-8.
 */
import { internAscii } from '../util/ascii-intern.ts'
import { StandardHeader } from './wire-format.ts'

export { StandardHeader }

export type StandardHeaderName = (typeof StandardHeader)[keyof typeof StandardHeader]

/** The standard headers of one message, typed; absent or unparsable values are `undefined`. */
export interface StandardHeaders {
  eventId?: string | undefined
  eventType?: string | undefined
  correlationId?: string | undefined
  conversationId?: string | undefined
  schemaVersion?: string | undefined
  source?: string | undefined
  /** From the RFC 3339 `timestamp` header. */
  timestamp?: Date | undefined
  /** From `retry-count`; 0 when absent. */
  retryCount: number
}

export type HeaderValue = string | Buffer

function text(value: HeaderValue): string {
  return typeof value === 'string' ? value : value.toString('utf8')
}

/** For values that repeat from message to message (an event type, a source): one string per value. */
function repeated(value: HeaderValue): string {
  return typeof value === 'string' ? value : (internAscii(value) ?? value.toString('utf8'))
}

const DIGIT_0 = 0x30

/** The digits at `from`..`from + count` of `bytes` as a number, or -1 when one is not a digit. */
function digits(bytes: Buffer, from: number, count: number): number {
  let n = 0
  for (let i = from; i < from + count; i++) {
    const d = (bytes[i] as number) - DIGIT_0
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n
}

/**
 * The `timestamp` header as milliseconds, NaN when it is not a date. Kafkit's producer writes
 * `toISOString()` (`2026-12-07T00:22:45.123Z`): that exact shape is read from the bytes; any other
 * RFC 3339 form goes through Date's parser.
 */
function timestampMs(value: HeaderValue): number {
  if (typeof value !== 'string' && value.length === 24) {
    const b = value
    if (
      b[4] === 0x2d &&
      b[7] === 0x2d &&
      b[10] === 0x54 &&
      b[13] === 0x3a &&
      b[16] === 0x3a &&
      b[19] === 0x2e &&
      b[23] === 0x5a
    ) {
      const year = digits(b, 0, 4)
      const month = digits(b, 5, 2)
      const day = digits(b, 8, 2)
      const hour = digits(b, 11, 2)
      const minute = digits(b, 14, 2)
      const second = digits(b, 17, 2)
      const ms = digits(b, 20, 3)
      if (
        year >= 100 &&
        month >= 1 &&
        month <= 12 &&
        day >= 1 &&
        day <= 31 &&
        hour >= 0 &&
        hour <= 23 &&
        minute >= 0 &&
        minute <= 59 &&
        second >= 0 &&
        second <= 59 &&
        ms >= 0
      ) {
        // Like Date's parser, Date.UTC rolls a day past the month's end over (February 30th: March 2nd).
        return Date.UTC(year, month - 1, day, hour, minute, second, ms)
      }
    }
  }
  return new Date(text(value)).getTime()
}

/**
 * Reads the standard headers from a record's headers: a Map as the client gives them, a plain object,
 * or the entries in wire order (the last of a repeated name wins, as in a Map built from them). One
 * pass over the headers, whatever else they hold.
 */
export function readStandardHeaders(
  headers: Map<string, HeaderValue> | Record<string, HeaderValue> | Iterable<readonly [string, HeaderValue]>
): StandardHeaders {
  // A Map iterates as its entries; a plain object has no iterator.
  const entries: Iterable<readonly [string, HeaderValue]> =
    Symbol.iterator in headers ? (headers as Iterable<readonly [string, HeaderValue]>) : Object.entries(headers)
  let eventId: string | undefined
  let eventType: string | undefined
  let correlationId: string | undefined
  let conversationId: string | undefined
  let schemaVersion: string | undefined
  let source: string | undefined
  let timestamp: HeaderValue | undefined
  let retryCount: HeaderValue | undefined
  for (const [name, value] of entries) {
    if (value === undefined) continue
    switch (name) {
      case StandardHeader.eventId:
        eventId = text(value)
        break
      case StandardHeader.eventType:
        eventType = repeated(value)
        break
      case StandardHeader.correlationId:
        correlationId = text(value)
        break
      case StandardHeader.conversationId:
        conversationId = text(value)
        break
      case StandardHeader.schemaVersion:
        schemaVersion = repeated(value)
        break
      case StandardHeader.source:
        source = repeated(value)
        break
      case StandardHeader.timestamp:
        timestamp = value
        break
      case StandardHeader.retryCount:
        retryCount = value
        break
    }
  }
  const ms = timestamp === undefined ? Number.NaN : timestampMs(timestamp)
  const retry = retryCount === undefined ? 0 : Number(text(retryCount))
  return {
    eventId,
    eventType,
    correlationId,
    conversationId,
    schemaVersion,
    source,
    timestamp: Number.isNaN(ms) ? undefined : new Date(ms),
    retryCount: Number.isInteger(retry) && retry >= 0 ? retry : 0
  }
}

/**
 * Seed 004's standard headers: their wire names, and typed reading on the consumer side. Producers write
 * them through the message builder; consumers get them parsed as `message.meta`. Values are UTF-8.
 */
export const StandardHeader = {
  eventId: 'event-id',
  eventType: 'event-type',
  correlationId: 'correlation-id',
  conversationId: 'conversation-id',
  schemaVersion: 'schema-version',
  source: 'source',
  timestamp: 'timestamp',
  retryCount: 'retry-count'
} as const

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

function text(value: HeaderValue | undefined): string | undefined {
  if (value === undefined) return undefined
  return typeof value === 'string' ? value : value.toString('utf8')
}

/** Reads the standard headers from a record's headers (a Map as the client gives them, or a plain object). */
export function readStandardHeaders(headers: Map<string, HeaderValue> | Record<string, HeaderValue>): StandardHeaders {
  const get = (name: string) => text(headers instanceof Map ? headers.get(name) : headers[name])
  const time = get(StandardHeader.timestamp)
  const date = time === undefined ? undefined : new Date(time)
  const retry = Number(get(StandardHeader.retryCount) ?? 0)
  return {
    eventId: get(StandardHeader.eventId),
    eventType: get(StandardHeader.eventType),
    correlationId: get(StandardHeader.correlationId),
    conversationId: get(StandardHeader.conversationId),
    schemaVersion: get(StandardHeader.schemaVersion),
    source: get(StandardHeader.source),
    timestamp: date && !Number.isNaN(date.getTime()) ? date : undefined,
    retryCount: Number.isInteger(retry) && retry >= 0 ? retry : 0
  }
}

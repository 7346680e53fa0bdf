/** Builds ConsumedMessages for handling tests the way the runtime does: raw bytes kept, headers parsed. */
import { readStandardHeaders } from '../../../src/message/headers.ts'
import type { ConsumedMessage } from '../../../src/handling/types.ts'

export interface MessageInit {
  topic?: string
  partition?: number
  offset?: bigint
  key?: string | null
  value?: unknown
  rawValue?: Buffer | null
  headers?: Record<string, string | Buffer>
  timestamp?: Date
}

export function consumed<V = unknown>(init: MessageInit = {}): ConsumedMessage<V> {
  const headers = new Map<string, Buffer>(
    Object.entries(init.headers ?? {}).map(([name, value]) => [
      name,
      Buffer.isBuffer(value) ? value : Buffer.from(value)
    ])
  )
  const value = init.value === undefined ? { hello: 'world' } : init.value
  const rawValue =
    init.rawValue !== undefined ? init.rawValue : value === null ? null : Buffer.from(JSON.stringify(value), 'utf8')
  const key = init.key === undefined ? 'key-1' : init.key
  return {
    topic: init.topic ?? 'orders',
    partition: init.partition ?? 0,
    offset: init.offset ?? 42n,
    timestamp: init.timestamp ?? new Date('2025-01-02T03:04:05.678Z'),
    key,
    value: value as V,
    headers,
    meta: readStandardHeaders(headers),
    raw: { key: key === null ? null : Buffer.from(key, 'utf8'), value: rawValue }
  }
}

/** A pino-shaped logger that keeps what it was given. */
export function captureLogger(): {
  lines: { level: string; fields: Record<string, unknown>; message: string }[]
  debug: (fields: object, message: string) => void
  info: (fields: object, message: string) => void
  warn: (fields: object, message: string) => void
  error: (fields: object, message: string) => void
} {
  const lines: { level: string; fields: Record<string, unknown>; message: string }[] = []
  const at = (level: string) => (fields: object, message: string) =>
    lines.push({ level, fields: fields as Record<string, unknown>, message })
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

export const context = (signal: AbortSignal = new AbortController().signal) => ({ signal, groupId: 'group-1' })

/** A batch handler's context; its deadLetter records the offsets it was given. */
export const batchContext = (deadLettered: bigint[] = []) => ({
  ...context(),
  deadLetter: (message: { offset: bigint }) => {
    deadLettered.push(message.offset)
    return Promise.resolve()
  }
})

/** Lets a one-line handler run its side effect and resolve: `m => resolved(seen.push(m))`. */
export const resolved = (_effect?: unknown): Promise<void> => Promise.resolve()

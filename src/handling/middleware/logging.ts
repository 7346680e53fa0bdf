/**
 * Logging middleware: one line per attempt with where the message came from, its standard headers
 * (event type and id, correlation id), the attempt and the duration; a failure is logged at warn with
 * the error's class, code, message and explicit kind. It never logs the value, the key or other
 * headers unless told to (they may carry personal data or secrets); values are cut to a bound.
 */
import { explicitKind } from '../errors.ts'
import { defaultLogger, type HandlingLogger } from '../logger.ts'
import type { ConsumedMessage, Middleware } from '../types.ts'

export interface LoggingMiddlewareOptions {
  logger?: HandlingLogger
  /** Level of the line for a successful attempt. Default `debug`. */
  successLevel?: 'debug' | 'info'
  /** Log the message key. Default false. */
  includeKey?: boolean
  /** Log the value, cut to this many characters of JSON. Default: not logged. */
  includeValue?: number
  /** Names of further headers to log (as UTF-8). Default none. */
  includeHeaders?: readonly string[]
}

function valuePreview(value: unknown, max: number): string {
  if (Buffer.isBuffer(value)) return `<${value.length} bytes>`
  let text: string
  try {
    text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(value)
  } catch {
    text = String(value)
  }
  return text.length > max ? `${text.slice(0, max)}…` : text
}

export function loggingMiddleware<V = unknown>(options: LoggingMiddlewareOptions = {}): Middleware<V> {
  const logger = options.logger ?? defaultLogger()
  const level = options.successLevel ?? 'debug'
  const fields = (message: ConsumedMessage<V>, groupId: string, attempt: number) => {
    const out: Record<string, unknown> = {
      groupId,
      topic: message.topic,
      partition: message.partition,
      offset: String(message.offset),
      attempt,
      eventType: message.meta.eventType,
      eventId: message.meta.eventId,
      correlationId: message.meta.correlationId
    }
    if (options.includeKey) out.key = message.key
    if (options.includeValue !== undefined) out.value = valuePreview(message.value, options.includeValue)
    if (options.includeHeaders?.length) {
      out.headers = Object.fromEntries(
        options.includeHeaders.map(name => [name, message.headers.get(name)?.toString()])
      )
    }
    return out
  }
  return next => async (message, context) => {
    const started = performance.now()
    try {
      await next(message, context)
    } catch (error) {
      logger.warn(
        {
          ...fields(message, context.groupId, context.attempt),
          durationMs: Math.round(performance.now() - started),
          kind: explicitKind(error),
          err:
            error instanceof Error
              ? { name: error.name, code: (error as { code?: unknown }).code, message: error.message }
              : String(error)
        },
        'handler failed'
      )
      throw error
    }
    logger[level](
      { ...fields(message, context.groupId, context.attempt), durationMs: Math.round(performance.now() - started) },
      'handled'
    )
  }
}

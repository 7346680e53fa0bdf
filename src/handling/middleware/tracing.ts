/**
 * Tracing hook: calls the user's `start` before the handler with the message's position and standard
 * headers (plus W3C `traceparent`/`tracestate` when present), optionally runs the handler inside
 * `around` (to make the span current, e.g. OpenTelemetry's `context.with`), and calls `end` with the
 * result. Hooks that throw are reported to `onHookError` and never fail the message.
 */
import type { StandardHeaders } from '../../message/headers.ts'
import type { HandlerContext, Middleware } from '../types.ts'

export interface TraceContext {
  groupId: string
  topic: string
  partition: number
  offset: bigint
  attempt: number
  /** The standard headers (event id and type, correlation id, ...). */
  headers: StandardHeaders
  traceparent: string | undefined
  tracestate: string | undefined
}

export interface TraceResult {
  durationMs: number
  /** Set when the attempt failed. */
  error?: unknown
}

export interface TracingHooks<S> {
  start(trace: TraceContext): S
  end(span: S, result: TraceResult): void
  /** Runs the handler with the span current. Default: just runs it. */
  around?: (span: S, run: () => Promise<void>) => Promise<void>
  onHookError?: (error: unknown) => void
}

export function tracingMiddleware<S, V = unknown>(hooks: TracingHooks<S>): Middleware<V> {
  const report = hooks.onHookError ?? (() => undefined)
  return next => async (message, context: HandlerContext) => {
    const trace: TraceContext = {
      groupId: context.groupId,
      topic: message.topic,
      partition: message.partition,
      offset: message.offset,
      attempt: context.attempt,
      headers: message.meta,
      traceparent: message.headers.get('traceparent')?.toString('utf8'),
      tracestate: message.headers.get('tracestate')?.toString('utf8')
    }
    let span: S | undefined
    let started = false
    try {
      span = hooks.start(trace)
      started = true
    } catch (error) {
      report(error)
    }
    const begin = performance.now()
    const end = (result: TraceResult) => {
      if (!started) return
      try {
        hooks.end(span as S, result)
      } catch (error) {
        report(error)
      }
    }
    const run = () => next(message, context)
    try {
      await (started && hooks.around ? hooks.around(span as S, run) : run())
    } catch (error) {
      end({ durationMs: performance.now() - begin, error })
      throw error
    }
    end({ durationMs: performance.now() - begin })
  }
}

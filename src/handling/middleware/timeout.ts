/**
 * Timeout middleware: after `ms` the handler's signal is aborted and the attempt fails with
 * `HandlerTimeoutError` (transient, so it is retried in place, then dead-lettered). A handler that
 * honours its signal settles at once; one that ignores it is waited for up to `graceMs` more, so the
 * retry rarely overlaps the attempt it replaces. A stop or revoke (the outer signal) still passes
 * through as an abort, not as a timeout.
 */
import { ConfigError } from '../../errors/kafkit-error.ts'
import { HandlerTimeoutError } from '../errors.ts'
import type { Middleware } from '../types.ts'

export interface TimeoutMiddlewareOptions {
  ms: number
  /** How long to wait for a handler that ignores the abort before failing the attempt. Default 1000. */
  graceMs?: number
}

export function timeoutMiddleware<V = unknown>(options: number | TimeoutMiddlewareOptions): Middleware<V> {
  const { ms, graceMs = 1000 } = typeof options === 'number' ? { ms: options } : options
  for (const [key, value] of [
    ['ms', ms],
    ['graceMs', graceMs]
  ] as const) {
    if (!Number.isFinite(value) || value < 0) {
      throw new ConfigError(
        `timeout middleware option \`${key}\`: got ${JSON.stringify(value)}, expected a number >= 0`,
        {
          details: { component: 'timeout middleware', key }
        }
      )
    }
  }
  return next => async (message, context) => {
    const controller = new AbortController()
    const signal = AbortSignal.any([context.signal, controller.signal])
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        const error = new HandlerTimeoutError(
          `handler for ${message.topic}/${message.partition}@${message.offset} did not finish within ${ms} ms`,
          { details: { timeoutMs: ms } }
        )
        controller.abort(error)
        reject(error)
      }, ms)
    })
    const running = next(message, { ...context, signal })
    try {
      await Promise.race([running, timedOut])
    } catch (error) {
      if (!controller.signal.aborted) throw error
      let grace: NodeJS.Timeout | undefined
      await Promise.race([
        running.catch(() => undefined),
        new Promise(resolve => {
          grace = setTimeout(resolve, graceMs)
        })
      ])
      clearTimeout(grace)
      throw controller.signal.reason
    } finally {
      clearTimeout(timer)
    }
  }
}

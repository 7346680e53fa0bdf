/**
 * Exponential backoff with jitter (AWS architecture blog's "full" and "equal" jitter): attempt n waits
 * a random time in [0, cap] (full) or [cap/2, cap] (equal), cap = min(max, base * 2^(n-1)). Jitter
 * spreads retries of many clients apart; equal jitter also gives a sequence of retries a least length.
 */
export interface BackoffOptions {
  baseMs: number
  maxMs: number
  /** `full` (default) picks uniformly in [0, cap], `equal` in [cap/2, cap]; `none` waits exactly the cap. */
  jitter?: 'full' | 'equal' | 'none'
  random?: () => number
}

/** Delay before retry number `attempt` (1 = the first retry). */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const cap = Math.min(options.maxMs, options.baseMs * 2 ** Math.max(0, attempt - 1))
  if (options.jitter === 'none') return cap
  const random = (options.random ?? Math.random)()
  if (options.jitter === 'equal') return Math.floor(cap / 2 + random * (cap / 2 + 1))
  return Math.floor(random * (cap + 1))
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error)
      return
    }
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal?.reason as Error)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

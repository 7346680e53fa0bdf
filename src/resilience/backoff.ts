/**
 * Exponential backoff with full jitter (AWS architecture blog's "full jitter"): attempt n waits a
 * random time in [0, min(max, base * 2^(n-1))]. Jitter spreads retries of many clients apart.
 */
export interface BackoffOptions {
  baseMs: number
  maxMs: number
  /** `full` (default) picks uniformly in [0, cap]; `none` waits exactly the cap (tests, docs). */
  jitter?: 'full' | 'none'
  random?: () => number
}

/** Delay before retry number `attempt` (1 = the first retry). */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const cap = Math.min(options.maxMs, options.baseMs * 2 ** Math.max(0, attempt - 1))
  if (options.jitter === 'none') return cap
  return Math.floor((options.random ?? Math.random)() * (cap + 1))
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

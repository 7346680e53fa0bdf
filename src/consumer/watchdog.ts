/**
 * The max poll interval: no handler call may run longer than `limitMs`. A call over the limit
 * fails with HandlerTimeoutError (transient, so the executor retries or dead-letters it) and its signal
 * aborts, so a stuck handler never holds its partition.
 *
 * It sits around every handler call, so it is built to cost next to nothing per call (a no-op handler
 * makes it visible): the running calls form a list in start order (linking and unlinking are a few
 * pointer writes, no hashing), and a call's start is the watchdog's tick count, not a clock reading.
 * One timer advances the tick every `limitMs / 10` (at least 50 ms, at most 5 s) and fails the calls
 * at the head of the list that are due; it stops at the first that is not, as every later one started
 * later. A call fails between `limitMs` and `limitMs` plus two ticks after it started, never earlier.
 * `watchdogMiddleware` puts it around the handler, innermost under the user's middleware.
 */
import type { HandlerContext, Middleware } from '../handling/types.ts'
import { HandlerTimeoutError } from '../handling/errors.ts'

/**
 * One running handler call and the context its handler gets: its start tick, its own signal (made only
 * when the handler asks for it, so handlers that never look at it cost nothing), its rejection.
 */
export class HandlerCall implements HandlerContext {
  prev: HandlerCall | undefined = undefined
  next: HandlerCall | undefined = undefined
  linked = false
  readonly startedTick: number
  readonly message: { topic: string; partition: number; offset: bigint }
  readonly groupId: string
  readonly attempt: number
  controller: AbortController | undefined = undefined
  readonly reject: (error: unknown) => void
  /** The signal of the context the call was made with. */
  readonly parent: AbortSignal
  /**
   * Whether the call's signal must follow `parent` by listening to it. A partition's own signal does
   * not need it: revoke and stop abort that partition's calls through `abortCalls`.
   */
  readonly listen: boolean

  constructor(
    message: { topic: string; partition: number; offset: bigint },
    context: HandlerContext,
    listen: boolean,
    reject: (error: unknown) => void,
    startedTick: number
  ) {
    this.message = message
    this.groupId = context.groupId
    this.attempt = context.attempt
    this.parent = context.signal
    this.listen = listen
    this.reject = reject
    this.startedTick = startedTick
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      const controller = new AbortController()
      this.controller = controller
      const parent = this.parent
      if (parent.aborted) controller.abort(parent.reason)
      else if (this.listen) parent.addEventListener('abort', () => controller.abort(parent.reason), { once: true })
    }
    return this.controller.signal
  }
}

export class CallWatchdog {
  readonly limitMs: number
  readonly tickMs: number
  /** Ticks after the one a call started in at which it is due: a whole `limitMs` of them, never early. */
  readonly #dueAfterTicks: number
  #tick = 0
  #head: HandlerCall | undefined
  #tail: HandlerCall | undefined
  #timer: NodeJS.Timeout | undefined
  /** The partitions' own signals: a call made with one of them needs no listener of its own. */
  readonly #partitionSignals = new WeakSet<AbortSignal>()
  /**
   * The call a runtime began for the handler call it is making right now, for the watchdog middleware
   * to hand on instead of beginning another (set around that synchronous call only).
   */
  direct: HandlerCall | undefined = undefined

  constructor(limitMs: number) {
    this.limitMs = limitMs
    this.tickMs = Math.min(Math.max(limitMs / 10, 50), 5000)
    this.#dueAfterTicks = Math.ceil(limitMs / this.tickMs) + 1
  }

  /** Starts timing calls (idempotent); the timer does not keep the process alive. */
  start(): void {
    if (this.#timer) return
    this.#timer = setInterval(() => this.#onTick(), this.tickMs)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** A new call starting now, linked at the tail. */
  begin(
    message: { topic: string; partition: number; offset: bigint },
    context: HandlerContext,
    listen: boolean,
    reject: (error: unknown) => void
  ): HandlerCall {
    const call = new HandlerCall(message, context, listen, reject, this.#tick)
    call.linked = true
    const tail = this.#tail
    if (tail === undefined) this.#head = call
    else {
      tail.next = call
      call.prev = tail
    }
    this.#tail = call
    return call
  }

  /** The call ended (or timed out): no longer watched. Idempotent. */
  end(call: HandlerCall): void {
    if (!call.linked) return
    call.linked = false
    const { prev, next } = call
    if (prev === undefined) this.#head = next
    else prev.next = next
    if (next === undefined) this.#tail = prev
    else next.prev = prev
    call.prev = undefined
    call.next = undefined
  }

  /** A partition's signal: when it aborts (revoke, stop), so do the calls made with it. */
  watchPartition(signal: AbortSignal): void {
    signal.addEventListener('abort', () => this.abortCalls(signal, signal.reason), { once: true })
    this.#partitionSignals.add(signal)
  }

  isPartitionSignal(signal: AbortSignal): boolean {
    return this.#partitionSignals.has(signal)
  }

  /** Aborts the signals of the running calls made with `signal` (a partition revoked or stopping). */
  abortCalls(signal: AbortSignal, reason: unknown): void {
    for (let call = this.#head; call !== undefined; call = call.next) {
      if (call.parent === signal) call.controller?.abort(reason)
    }
  }

  #onTick(): void {
    const tick = ++this.#tick
    let call = this.#head
    while (call !== undefined && tick - call.startedTick >= this.#dueAfterTicks) {
      const next = call.next
      const { topic, partition, offset } = call.message
      const error = new HandlerTimeoutError(
        `handler for ${topic}/${partition}@${offset} did not finish within maxPollIntervalMs (${this.limitMs} ms)`,
        { details: { timeoutMs: this.limitMs } }
      )
      this.end(call)
      call.controller?.abort(error)
      call.reject(error)
      call = next
    }
  }
}

/**
 * The max poll interval as a guard around every handler call, innermost. The call's signal is made on
 * first use and aborts with the partition's (revoke, stop).
 */
export function watchdogMiddleware<V>(calls: CallWatchdog): Middleware<V> {
  return next => (message, context) => {
    // The call the runtime began for this very message and is watching: the handler gets it as is.
    const direct = calls.direct
    if (direct !== undefined && direct.message === message && direct.parent === context.signal) {
      calls.direct = undefined
      return next(message, direct)
    }
    return new Promise<void>((resolve, reject) => {
      const call = calls.begin(message, context, !calls.isPartitionSignal(context.signal), reject)
      let running: Promise<void>
      try {
        // Promise.resolve: a handler from plain JavaScript may return nothing at all.
        running = Promise.resolve(next(message, call))
      } catch (error) {
        // A handler that throws before returning a promise: the call is over (and the executor's
        // rejection handling sees the throw), so it leaves the watchdog's list now.
        calls.end(call)
        throw error
      }
      running.then(
        () => {
          calls.end(call)
          resolve()
        },
        (error: unknown) => {
          calls.end(call)
          // Passed on as thrown: the classifier looks at whatever the handler threw, Error or not.
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
          reject(error)
        }
      )
    })
  }
}

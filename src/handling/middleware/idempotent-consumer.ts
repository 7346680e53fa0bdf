/**
 * Idempotent consumer: each event runs at most once per scope, even though Kafka
 * delivers at least once. The event id comes from the `event-id` header by default; before the handler
 * the middleware claims it in a ProcessedIdStore: an id already processed is skipped (and published as
 * `duplicate`), one claimed by another worker fails as transient (`KAFKIT_EVENT_IN_PROGRESS`, retried
 * until that worker finishes or its lease expires). After success, or a business refusal (whose
 * answer would not change), the id is completed; after any other failure it is released so the retry
 * may claim it. A message without an id is processed (default) or dead-lettered.
 *
 * The guarantee is as strong as the store: with the in-memory store it holds within one process; a
 * crash between the handler's effects and `complete` runs the handler again once the lease expires.
 */
import { positionOf, publishHandlerEvent } from '../diagnostics.ts'
import { explicitKind, PermanentError, TransientError } from '../errors.ts'
import type { ProcessedIdStore } from '../processed-id-store.ts'
import type { ConsumedMessage, HandlerContext, Middleware } from '../types.ts'

export interface IdempotentConsumerOptions<V = unknown> {
  store: ProcessedIdStore
  /** The event's id. Default: the `event-id` header. */
  key?: (message: ConsumedMessage<V>) => string | undefined
  /** The namespace of ids. Default: the consumer group. */
  scope?: (context: HandlerContext) => string
  /** How long a claim holds before another worker may take over. Default 5 minutes. */
  leaseMs?: number
  /** For a message without an id: `process` it anyway (default) or fail it as `permanent`. */
  onMissingKey?: 'process' | 'permanent'
}

export function idempotentConsumer<V = unknown>(options: IdempotentConsumerOptions<V>): Middleware<V> {
  const { store } = options
  const keyOf = options.key ?? ((message: ConsumedMessage<V>) => message.meta.eventId)
  const scopeOf = options.scope ?? ((context: HandlerContext) => context.groupId)
  const leaseMs = options.leaseMs ?? 5 * 60 * 1000
  const onMissing = options.onMissingKey ?? 'process'
  return next => async (message, context) => {
    const id = keyOf(message)
    if (id === undefined || id === '') {
      if (onMissing === 'permanent') {
        throw new PermanentError(
          `invalid message: ${message.topic}/${message.partition}@${message.offset} has no event id for the idempotent consumer`
        )
      }
      return next(message, context)
    }
    const scope = scopeOf(context)
    const claim = await store.claim(scope, id, leaseMs)
    if (claim === 'processed') {
      publishHandlerEvent(() => ({ type: 'duplicate', ...positionOf(message, context.groupId), id }))
      return
    }
    if (claim === 'in-progress') {
      throw new TransientError(
        `event ${id} is being processed by another worker`,
        { details: { id, scope } },
        'KAFKIT_EVENT_IN_PROGRESS'
      )
    }
    try {
      await next(message, context)
    } catch (error) {
      if (explicitKind(error) === 'business') await store.complete(scope, id)
      // A failed release only delays the retry until the lease expires; the handler's error matters more.
      else await store.release(scope, id).catch(() => undefined)
      throw error
    }
    await store.complete(scope, id)
  }
}

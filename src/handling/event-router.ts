/**
 * A typed router by event type: `router.on('todos.task.created', handler)`.
 * The type comes from the `event-type` header, else the CloudEvents binary-mode `ce_type`
 * header, else the `type` of a structured CloudEvent in the value; a custom extractor replaces that.
 * Middleware wraps at two levels: `use()` for every message the router gets (fallbacks included),
 * and per route. A route may declare a schema (anything with `parse`, e.g. zod): a value that does not
 * parse fails as `SchemaMismatchError` (permanent) and the handler gets the parsed value.
 *
 * Messages without a route: an event of a type nobody registered is skipped by default (logged at
 * debug, published as `unrouted`): a topic often carries several event types and a service handles the
 * ones it cares about, as event routers usually do. A message with no event type at all is malformed
 * for a router and is dead-lettered by default, so it ends somewhere visible. Both are configurable:
 * `'skip'`, `'business'` (logged and committed), `'dead-letter'`, or a handler of your own.
 */
import { ConfigError } from '../errors/kafkit-error.ts'
import { positionOf, publishHandlerEvent } from './diagnostics.ts'
import { BusinessError, PermanentError, SchemaMismatchError } from './errors.ts'
import { defaultLogger, type HandlingLogger } from './logger.ts'
import { compose, type ConsumedMessage, type HandlerContext, type MessageHandler, type Middleware } from './types.ts'

export type EventTypeExtractor = (message: ConsumedMessage<unknown>) => string | undefined

/** Anything that parses an unknown value into a T or throws (a zod schema fits). */
export interface RouteSchema<T> {
  parse(value: unknown): T
}

export type RouteFallback = 'skip' | 'business' | 'dead-letter' | MessageHandler<unknown>

export interface EventRouterOptions {
  /** How to read a message's event type. Default: `defaultEventType`. */
  eventType?: EventTypeExtractor
  /** For a type no route handles. Default `'skip'`. */
  fallback?: RouteFallback
  /** For a message without any event type. Default `'dead-letter'`. */
  missingType?: RouteFallback
  /** Router-level middleware, the first outermost; more can be added with `use()`. */
  middleware?: readonly Middleware<unknown>[]
  logger?: HandlingLogger
}

export interface RouteOptions<T> {
  /** Route-level middleware, inside the router's. */
  middleware?: readonly Middleware<T>[]
  schema?: RouteSchema<T>
}

/** The CloudEvents binary-mode header for the event type (Kafka protocol binding). */
export const CLOUDEVENTS_TYPE_HEADER = 'ce_type'

/** `event-type` header, else `ce_type` header, else a structured CloudEvent's `type` field. */
export function defaultEventType(message: ConsumedMessage<unknown>): string | undefined {
  if (message.meta.eventType) return message.meta.eventType
  const header = message.headers.get(CLOUDEVENTS_TYPE_HEADER)
  if (header && header.length > 0) return header.toString('utf8')
  const value = message.value as { type?: unknown; specversion?: unknown } | null | undefined
  if (typeof value === 'object' && value !== null && !Buffer.isBuffer(value)) {
    if (typeof value.type === 'string' && value.specversion !== undefined && value.type !== '') return value.type
  }
  return undefined
}

/** A schema error in one line: zod-style `issues` as `path: message`, else the error's message. */
function schemaProblems(error: unknown): string {
  const issues = (error as { issues?: unknown } | null)?.issues
  if (Array.isArray(issues)) {
    return issues
      .slice(0, 5)
      .map((issue: { path?: unknown[]; message?: unknown }) => {
        const path = Array.isArray(issue.path) && issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : ''
        return `${path}${String(issue.message)}`
      })
      .join('; ')
  }
  return error instanceof Error ? error.message : String(error)
}

export class EventRouter<Events extends object = Record<string, unknown>> {
  readonly #routes = new Map<string, MessageHandler<unknown>>()
  readonly #middleware: Middleware<unknown>[]
  readonly #eventType: EventTypeExtractor
  readonly #fallback: RouteFallback
  readonly #missingType: RouteFallback
  readonly #logger: HandlingLogger
  #composed: MessageHandler<unknown> | undefined

  constructor(options: EventRouterOptions = {}) {
    this.#middleware = [...(options.middleware ?? [])]
    this.#eventType = options.eventType ?? defaultEventType
    this.#fallback = EventRouter.#checkFallback('fallback', options.fallback ?? 'skip')
    this.#missingType = EventRouter.#checkFallback('missingType', options.missingType ?? 'dead-letter')
    this.#logger = options.logger ?? defaultLogger()
  }

  static #checkFallback(key: string, value: RouteFallback): RouteFallback {
    if (typeof value === 'function' || value === 'skip' || value === 'business' || value === 'dead-letter') return value
    throw new ConfigError(
      `event router option \`${key}\`: got ${JSON.stringify(value)}, expected "skip", "business", "dead-letter" or a handler`,
      { details: { component: 'event router', key } }
    )
  }

  /** The event types that have a route. */
  get types(): string[] {
    return [...this.#routes.keys()]
  }

  /** Registers the handler of one event type. */
  on<T extends keyof Events & string>(
    type: T,
    handler: MessageHandler<Events[T]>,
    options: RouteOptions<Events[T]> = {}
  ): this {
    this.#assertOpen()
    if (typeof type !== 'string' || type === '') {
      throw new ConfigError(`event router: an event type must be a non-empty string, got ${JSON.stringify(type)}`)
    }
    if (this.#routes.has(type)) {
      throw new ConfigError(`event router: event type ${JSON.stringify(type)} already has a handler`, {
        details: { component: 'event router', key: type }
      })
    }
    let route = options.middleware?.length ? compose(handler, options.middleware) : handler
    const { schema } = options
    if (schema) {
      const inner = route
      route = async (message, context) => {
        let value: Events[T]
        try {
          value = schema.parse(message.value)
        } catch (error) {
          throw new SchemaMismatchError(
            `schema mismatch: value of ${message.topic}/${message.partition}@${message.offset} is not a valid ${type}: ${schemaProblems(error)}`,
            { cause: error, details: { eventType: type } }
          )
        }
        await inner({ ...message, value }, context)
      }
    }
    this.#routes.set(type, route as MessageHandler<unknown>)
    return this
  }

  /** Adds router-level middleware (before `handler()` is taken). */
  use(...middleware: Middleware<unknown>[]): this {
    this.#assertOpen()
    this.#middleware.push(...middleware)
    return this
  }

  /** The composed handler for the executor; taking it seals the router. */
  handler(): MessageHandler<unknown> {
    this.#composed ??= compose((message, context) => this.#dispatch(message, context), this.#middleware)
    return this.#composed
  }

  #assertOpen(): void {
    if (this.#composed) {
      throw new ConfigError('event router: routes and middleware must be added before handler() is taken')
    }
  }

  #dispatch(message: ConsumedMessage<unknown>, context: HandlerContext): Promise<void> {
    const type = this.#eventType(message)
    const route = type === undefined ? undefined : this.#routes.get(type)
    if (route) return route(message, context)
    const fallback = type === undefined ? this.#missingType : this.#fallback
    if (typeof fallback === 'function') {
      publishHandlerEvent(() => ({ type: 'unrouted', ...positionOf(message, context.groupId), action: 'handler' }))
      return fallback(message, context)
    }
    publishHandlerEvent(() => ({
      type: 'unrouted',
      ...positionOf(message, context.groupId),
      eventType: type,
      action: fallback
    }))
    const where = `${message.topic}/${message.partition}@${message.offset}`
    const what =
      type === undefined ? `message ${where} has no event type` : `no handler for event type ${type} (${where})`
    const details = { eventType: type, topic: message.topic, partition: message.partition }
    switch (fallback) {
      case 'skip':
        this.#logger.debug({ ...details, offset: String(message.offset) }, `${what}: skipped`)
        return Promise.resolve()
      case 'business':
        return Promise.reject(new BusinessError(what, { details }, 'KAFKIT_EVENT_UNROUTABLE'))
      case 'dead-letter':
        return Promise.reject(new PermanentError(what, { details }, 'KAFKIT_EVENT_UNROUTABLE'))
    }
  }
}

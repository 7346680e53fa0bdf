/**
 * Error kinds (transient, permanent, business): a handler steers what happens to a failed message by
 * what it throws.
 * `TransientError` is retried in place with backoff, then dead-lettered; `PermanentError` is
 * dead-lettered at once; `BusinessError` is logged and committed (neither retried nor dead-lettered).
 * Errors of other classes are classified by `classifyError`: explicit kinds first (also found in the
 * `cause` chain), then Node's network error codes, then the built-in message lists; anything still
 * unknown counts as transient, so an unexpected failure is retried before it is dead-lettered and is
 * never silently committed. Users override the whole decision with their own classifier.
 */
import type { ErrorCode } from '../errors/codes.ts'
import { isKafkitError, KafkitError, type KafkitErrorOptions } from '../errors/kafkit-error.ts'

export const ErrorKind = { transient: 'transient', permanent: 'permanent', business: 'business' } as const
export type ErrorKind = (typeof ErrorKind)[keyof typeof ErrorKind]

const kinds: readonly string[] = Object.values(ErrorKind)

/** The base of the three kinds; `kind` is what the executor acts on. */
export class HandlerError extends KafkitError {
  readonly kind: ErrorKind

  constructor(kind: ErrorKind, code: ErrorCode, message: string, options: KafkitErrorOptions = {}) {
    super(code, message, { retryable: kind === 'transient', ...options })
    this.kind = kind
  }
}

export interface TransientErrorOptions extends KafkitErrorOptions {
  /** Wait at least this long before the next attempt (e.g. a downstream's Retry-After). */
  retryAfterMs?: number
}

/** A failure a later attempt may not meet: the message is retried in place, then dead-lettered. */
export class TransientError extends HandlerError {
  readonly retryAfterMs: number | undefined

  constructor(message: string, options: TransientErrorOptions = {}, code: ErrorCode = 'KAFKIT_HANDLER_TRANSIENT') {
    super('transient', code, message, options)
    this.retryAfterMs = options.retryAfterMs
  }
}

/** A failure no retry can fix: the message is dead-lettered at once. */
export class PermanentError extends HandlerError {
  constructor(message: string, options: KafkitErrorOptions = {}, code: ErrorCode = 'KAFKIT_HANDLER_PERMANENT') {
    super('permanent', code, message, options)
  }
}

/** A refusal by a business rule: logged and committed, neither retried nor dead-lettered. */
export class BusinessError extends HandlerError {
  constructor(message: string, options: KafkitErrorOptions = {}, code: ErrorCode = 'KAFKIT_HANDLER_BUSINESS') {
    super('business', code, message, options)
  }
}

/** A record whose key or value could not be deserialized; dead-lettered with its raw bytes. */
export class DeserializationError extends PermanentError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super(message, options, 'KAFKIT_DESERIALIZATION_FAILED')
  }
}

/** A value that does not match its route's schema. */
export class SchemaMismatchError extends PermanentError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super(message, options, 'KAFKIT_SCHEMA_MISMATCH')
  }
}

/** The timeout middleware's limit passed; the handler's signal was aborted. */
export class HandlerTimeoutError extends TransientError {
  constructor(message: string, options: TransientErrorOptions = {}) {
    super(message, options, 'KAFKIT_HANDLER_TIMEOUT')
  }
}

/** The explicit kind of an error thrown as one of the kinds (also across two copies of Kafkit), else undefined. */
export function explicitKind(error: unknown): ErrorKind | undefined {
  if (!isKafkitError(error)) return undefined
  const kind = (error as { kind?: unknown }).kind
  return typeof kind === 'string' && kinds.includes(kind) ? (kind as ErrorKind) : undefined
}

/** The built-in message lists, matched case-insensitively against the message of the error and its causes. */
export const transientMessagePatterns: readonly string[] = [
  'connection refused',
  'timeout',
  'timed out',
  'deadline exceeded',
  'network is unreachable',
  'broken pipe',
  'i/o timeout',
  'temporary failure',
  'connection reset',
  'socket hang up'
]

export const permanentMessagePatterns: readonly string[] = [
  'invalid message',
  'schema mismatch',
  'deserialization failed',
  'unknown topic'
]

/** Node's system error codes for the same situations as the transient message list. */
const transientSystemCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EAI_AGAIN',
  'ECONNABORTED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET'
])

/** Decides a kind; `undefined` hands the decision on (to the default classifier). */
export type ErrorClassifier = (error: unknown) => ErrorKind | undefined

export interface ErrorClassifierOptions {
  /** Extra substrings (lower case) meaning transient, added to the built-in list. */
  transientPatterns?: readonly string[]
  /** Extra substrings (lower case) meaning permanent, added to the built-in list. */
  permanentPatterns?: readonly string[]
  /** The kind of an error nothing recognises. Default `transient`: retried, then dead-lettered. */
  fallback?: ErrorKind
}

const MAX_CAUSE_DEPTH = 8

function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = []
  let current: unknown = error
  while (current !== undefined && current !== null && chain.length < MAX_CAUSE_DEPTH && !chain.includes(current)) {
    chain.push(current)
    current = typeof current === 'object' ? (current as { cause?: unknown }).cause : undefined
  }
  return chain
}

function messageOf(error: unknown): string {
  if (typeof error === 'string') return error
  if (typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string') {
    return (error as { message: string }).message
  }
  return ''
}

/**
 * Builds a classifier with the default rules, in this order, over the error and then its causes:
 * an explicit kind (TransientError, PermanentError, BusinessError and their subclasses); a Kafkit error
 * marked retryable; a Node network error code (ECONNREFUSED, ETIMEDOUT, ...) or a `TimeoutError`;
 * a `SyntaxError` (JSON.parse of a bad payload) as permanent; then the message lists, permanent ones
 * first (they describe the message, while words like "timeout" show up in many contexts); then `fallback`.
 */
export function createErrorClassifier(options: ErrorClassifierOptions = {}): (error: unknown) => ErrorKind {
  const transient = [...transientMessagePatterns, ...(options.transientPatterns ?? [])].map(p => p.toLowerCase())
  const permanent = [...permanentMessagePatterns, ...(options.permanentPatterns ?? [])].map(p => p.toLowerCase())
  const fallback = options.fallback ?? 'transient'
  return error => {
    const chain = causeChain(error)
    for (const item of chain) {
      const kind = explicitKind(item)
      if (kind) return kind
    }
    for (const item of chain) {
      if (isKafkitError(item) && item.retryable) return 'transient'
      const code = typeof item === 'object' && item !== null ? (item as { code?: unknown }).code : undefined
      if (typeof code === 'string' && transientSystemCodes.has(code)) return 'transient'
      if (item instanceof Error && item.name === 'TimeoutError') return 'transient'
      if (item instanceof SyntaxError) return 'permanent'
    }
    const text = chain.map(messageOf).join('\n').toLowerCase()
    if (permanent.some(p => text.includes(p))) return 'permanent'
    if (transient.some(p => text.includes(p))) return 'transient'
    return fallback
  }
}

/** The default classifier (the built-in message lists, unknown errors transient). */
export const classifyError: (error: unknown) => ErrorKind = createErrorClassifier()

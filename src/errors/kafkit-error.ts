/**
 * The one error base of Kafkit. Callers branch on `code` (stable, documented in docs/errors.md) and on
 * `retryable`, never on message text. A `Symbol.for` brand makes `isKafkitError` work across two copies
 * of the package in one process, where `instanceof` would not.
 */
import type { ErrorCode } from './codes.ts'

const brand = Symbol.for('kafkit.error')

export interface KafkitErrorOptions {
  cause?: unknown
  /** True when repeating the same operation later may succeed. */
  retryable?: boolean
  /** Structured facts about the failure (never secrets). */
  details?: Record<string, unknown>
}

export class KafkitError extends Error {
  readonly code: ErrorCode
  readonly retryable: boolean
  readonly details: Readonly<Record<string, unknown>>

  constructor(code: ErrorCode, message: string, options: KafkitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.retryable = options.retryable ?? false
    this.details = Object.freeze({ ...options.details })
    Object.defineProperty(this, brand, { value: true })
  }
}

export function isKafkitError(error: unknown): error is KafkitError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[brand] === true
}

/** Bad configuration: raised at construction, names the key path, the value and what is allowed. */
export class ConfigError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_CONFIG_INVALID', message, options)
  }
}

/** The local Kafka launcher could not do what was asked; the message always names the way out. */
export class LocalKafkaError extends KafkitError {}

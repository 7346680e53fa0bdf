/**
 * The producer's errors, one class per stable code (docs/errors.md). A caller branches on `code` and
 * `retryable`; `details` says which message and where (topic, partition, event id, attempts), never
 * its payload. `retryable` is true where sending the same message again later may succeed (a broker
 * outage, a full buffer, an open breaker), false where it cannot (too large, bad partition).
 */
import { KafkitError, type KafkitErrorOptions } from '../errors/kafkit-error.ts'

/** The breaker is open: the message was refused at once, nothing was sent. */
export class CircuitOpenError extends KafkitError {
  /** Milliseconds until the breaker lets one probe through. */
  readonly retryInMs: number

  constructor(message: string, retryInMs: number, options: KafkitErrorOptions = {}) {
    super('KAFKIT_CIRCUIT_OPEN', message, { retryable: true, ...options })
    this.retryInMs = retryInMs
  }
}

/**
 * The broker rejected the message or did not acknowledge it within the retries. `retryable` is true
 * when every error on the way was one Kafka calls retriable (the retries ran out), false for a
 * rejection that repeats (an unknown topic, an invalid record, an authorization failure).
 */
export class ProduceError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_PRODUCE_FAILED', message, options)
  }
}

export class MessageTooLargeError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_MESSAGE_TOO_LARGE', message, { retryable: false, ...options })
  }
}

export class SerializationError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_SERIALIZATION_FAILED', message, { retryable: false, ...options })
  }
}

export class InvalidPartitionError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_INVALID_PARTITION', message, { retryable: false, ...options })
  }
}

export class BufferFullError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_PRODUCER_BUFFER_FULL', message, { retryable: true, ...options })
  }
}

/** Not acknowledged in time. `details.inFlight` true: it had been sent and may still be written. */
export class SendTimeoutError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_SEND_TIMEOUT', message, { retryable: true, ...options })
  }
}

export class ProducerClosedError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_PRODUCER_CLOSED', message, { retryable: false, ...options })
  }
}

/** Commit failed; the transaction was aborted. `failures` lists the messages that failed in it. */
export class TransactionError extends KafkitError {
  readonly failures: readonly { message: unknown; error: Error }[]

  constructor(
    message: string,
    failures: readonly { message: unknown; error: Error }[] = [],
    options: KafkitErrorOptions = {}
  ) {
    super('KAFKIT_TRANSACTION_FAILED', message, options)
    this.failures = failures
  }
}

export class TransactionAbortedError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_TRANSACTION_ABORTED', message, { retryable: false, ...options })
  }
}

export class TransactionStateError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_TRANSACTION_STATE', message, { retryable: false, ...options })
  }
}

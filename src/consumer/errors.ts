/** The consumer runtime's own errors (handler failures are the error kinds of src/handling/errors.ts). */
import { KafkitError, type KafkitErrorOptions } from '../errors/kafkit-error.ts'

/** A lifecycle call that does not fit the consumer's state (e.g. start() twice). */
export class ConsumerStateError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_CONSUMER_STATE', message, { retryable: false, ...options })
  }
}

/** The reason a handler's signal aborts when its partition was revoked: the record goes to the next owner. */
export class PartitionRevokedError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_PARTITION_REVOKED', message, { retryable: true, ...options })
  }
}

/** The reason a handler's signal aborts when the consumer stops past its shutdown timeout. */
export class ConsumerStoppedError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_CONSUMER_STOPPED', message, { retryable: true, ...options })
  }
}

/** The client's record stream closed without an error while Kafkit was still reading it (see consumeStream). */
export class ConsumerStreamClosedError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_CONSUMER_STREAM_CLOSED', message, { retryable: true, ...options })
  }
}

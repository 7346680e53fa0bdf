/**
 * The errors of sinks and their database writers. `SinkWriteError.retryable` is what the runner's
 * circuit breaker acts on: an unreachable database (retryable) pauses the partitions and keeps the
 * batch, a rejected row (not retryable) makes the runner look for the bad record and dead-letter it.
 */
import { KafkitError, type KafkitErrorOptions } from '../errors/kafkit-error.ts'

/** Storing a batch failed; nothing of it was stored (the write is one transaction) or committed. */
export class SinkWriteError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_SINK_WRITE_FAILED', message, options)
  }
}

/** A record could not become a row: the mapping threw, or the database rejected the row alone. */
export class SinkMappingError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_SINK_MAPPING_FAILED', message, { retryable: false, ...options })
  }
}

/** The sink stopped because a bad record met `errorsTolerance: 'none'`. */
export class SinkStoppedError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_SINK_STOPPED', message, { retryable: false, ...options })
  }
}

/** The database server lacks a feature that was asked for; the message names the version and the way out. */
export class SinkFeatureUnsupportedError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_SINK_FEATURE_UNSUPPORTED', message, { retryable: false, ...options })
  }
}

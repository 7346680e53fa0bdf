/**
 * A producer transaction (exactly-once sends): everything sent while it is open belongs to
 * it and becomes visible to `read_committed` consumers only when it commits; an abort makes all of it
 * invisible. The producer owns the mechanics (flushing, the broker calls); this object is the handle
 * the caller holds, and refuses calls once the transaction is over.
 */
import type { ConsumerGroupMetadata, TransactionOffset } from '../kafka/transactional-offsets.ts'
import type { MessageBuilder, OutgoingMessage } from '../message/builder.ts'
import { TransactionStateError } from './errors.ts'
import type { SendOptions, SendOutcome, SendResult } from './types.ts'

export type TransactionState = 'open' | 'committing' | 'committed' | 'aborting' | 'aborted'

/** What the producer provides to its transaction handle. */
export interface TransactionDriver<V> {
  send(message: OutgoingMessage<V> | MessageBuilder<V>, options?: SendOptions): Promise<SendResult>
  sendBatch(
    messages: readonly (OutgoingMessage<V> | MessageBuilder<V>)[],
    options?: SendOptions
  ): Promise<SendOutcome[]>
  /** Adds consumed offsets to the transaction (they commit with it). */
  sendOffsets(offsets: readonly TransactionOffset[], group: ConsumerGroupMetadata): Promise<void>
  /** Flushes, then commits (or aborts); a failed commit aborts and rejects. */
  end(commit: boolean): Promise<void>
}

export class ProducerTransaction<V = unknown> {
  readonly #driver: TransactionDriver<V>
  #state: TransactionState = 'open'

  constructor(driver: TransactionDriver<V>) {
    this.#driver = driver
  }

  get state(): TransactionState {
    return this.#state
  }

  /** Sends within the transaction; resolves once written (visible to read_committed after commit). */
  send(message: OutgoingMessage<V> | MessageBuilder<V>, options?: SendOptions): Promise<SendResult> {
    if (this.#state !== 'open') {
      return Promise.reject(new TransactionStateError(`cannot send in a transaction that is ${this.#state}`))
    }
    const sent = this.#driver.send(message, options)
    // Sends in a transaction are often not awaited one by one: commit() reports their failures, so
    // an unawaited failed send must not also crash the process as an unhandled rejection.
    sent.catch(() => undefined)
    return sent
  }

  sendBatch(
    messages: readonly (OutgoingMessage<V> | MessageBuilder<V>)[],
    options?: SendOptions
  ): Promise<SendOutcome[]> {
    if (this.#state !== 'open') {
      return Promise.reject(new TransactionStateError(`cannot send in a transaction that is ${this.#state}`))
    }
    return this.#driver.sendBatch(messages, options)
  }

  /**
   * Adds consumed offsets (the next offset to read of each partition) to the transaction: they are
   * committed for the group if and only if the transaction commits (consume-transform-produce). The
   * group's coordinator checks `group` (generation and member id, from `consumer.groupMetadata()`)
   * and refuses offsets of a member that lost its partitions; the transaction then cannot commit.
   */
  sendOffsets(offsets: readonly TransactionOffset[], group: ConsumerGroupMetadata): Promise<void> {
    if (this.#state !== 'open') {
      return Promise.reject(new TransactionStateError(`cannot add offsets to a transaction that is ${this.#state}`))
    }
    return this.#driver.sendOffsets(offsets, group)
  }

  /**
   * Waits for every message of the transaction, then commits. When one of them failed, or the broker
   * refuses the commit, the transaction is aborted and this rejects with KAFKIT_TRANSACTION_FAILED.
   */
  async commit(): Promise<void> {
    if (this.#state !== 'open') throw new TransactionStateError(`cannot commit a transaction that is ${this.#state}`)
    this.#state = 'committing'
    try {
      await this.#driver.end(true)
      this.#state = 'committed'
    } catch (error) {
      this.#state = 'aborted'
      throw error
    }
  }

  /** Drops what is not sent yet, waits for what is in flight, and aborts. Aborting twice is a no-op. */
  async abort(): Promise<void> {
    if (this.#state === 'aborted' || this.#state === 'aborting') return
    if (this.#state !== 'open') throw new TransactionStateError(`cannot abort a transaction that is ${this.#state}`)
    this.#state = 'aborting'
    try {
      await this.#driver.end(false)
    } finally {
      this.#state = 'aborted'
    }
  }
}

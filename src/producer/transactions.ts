/**
 * The mechanics of the producer's transactions (the handle callers hold is transaction.ts): one open
 * at a time; begun once earlier messages are written; ended by flushing its messages, then a commit,
 * or an abort when one of them failed or the caller aborts. A transaction that sent nothing is
 * ended here, without the broker.
 */
import {
  addOffsetsToTransaction,
  type ClientTx,
  type ConsumerGroupMetadata,
  type TransactionOffset
} from '../kafka/transactional-offsets.ts'
import { isRetriable } from '../kafka/errors.ts'
import { describe } from './error-text.ts'
import { TransactionAbortedError, TransactionError, TransactionStateError } from './errors.ts'
import type { PendingRecord } from './record.ts'
import { ProducerTransaction, type TransactionDriver } from './transaction.ts'

export type { ClientTx }

export interface TxState {
  client: ClientTx | undefined
  handle: ProducerTransaction<never> | undefined
  failures: { message: unknown; error: Error }[]
  /** Whether a produce request was sent in it (else the broker has nothing to end: no EndTxn). */
  sent: boolean
}

/** What transactions need of the rest of the producer. */
export interface TransactionHooks {
  /** Sends the pending records that match and waits until they are settled. */
  flushWhere(predicate: (record: PendingRecord) => boolean): Promise<void>
  /** Fails the pending records that match and are not in flight. */
  failWhere(predicate: (record: PendingRecord) => boolean, error: Error): void
  /** Batches held for a transaction may go now. */
  pump(): void
}

const noop = () => undefined

export class Transactions {
  readonly #client: { beginTransaction(): Promise<ClientTx> }
  readonly #hooks: TransactionHooks
  #current: TxState | undefined

  constructor(client: { beginTransaction(): Promise<ClientTx> }, hooks: TransactionHooks) {
    this.#client = client
    this.#hooks = hooks
  }

  /** The open transaction (also while it begins or ends). */
  get current(): TxState | undefined {
    return this.#current
  }

  /** Opens a transaction: buffered messages are flushed first, messages sent from now on join it. */
  async begin<V>(driver: Omit<TransactionDriver<V>, 'end' | 'sendOffsets'>): Promise<ProducerTransaction<V>> {
    if (this.#current !== undefined) throw new TransactionStateError('a transaction is already open on this producer')
    const state: TxState = { client: undefined, handle: undefined, failures: [], sent: false }
    this.#current = state
    try {
      // Earlier non-transactional messages must be written before the client switches to the
      // transaction (it refuses other sends meanwhile); messages sent from now on join it and wait.
      await this.#hooks.flushWhere(record => record.tx !== state)
      state.client = await this.#client.beginTransaction()
    } catch (error) {
      this.#current = undefined
      const failure = new TransactionError(`could not begin a transaction: ${describe(error)}`, [], {
        cause: error,
        retryable: isRetriable(error)
      })
      this.#hooks.failWhere(record => record.tx === state, failure)
      throw failure
    }
    const handle = new ProducerTransaction<V>({
      send: (message, options) => driver.send(message, options),
      sendBatch: (messages, options) => driver.sendBatch(messages, options),
      sendOffsets: (offsets, group) => this.#sendOffsets(state, offsets, group),
      end: commit => this.#end(state, commit)
    })
    state.handle = handle
    this.#hooks.pump()
    return handle
  }

  async #sendOffsets(
    state: TxState,
    offsets: readonly TransactionOffset[],
    group: ConsumerGroupMetadata
  ): Promise<void> {
    const client = state.client
    if (client === undefined) throw new TransactionStateError('the transaction has not begun')
    try {
      await addOffsetsToTransaction(client, group, offsets)
      // The group's offsets partition is in the transaction now: it must end on the broker.
      state.sent = true
    } catch (error) {
      const failure = new TransactionError(
        `could not add the consumed offsets to the transaction: ${describe(error)}`,
        [],
        {
          cause: error,
          retryable: isRetriable(error)
        }
      )
      state.failures.push({ message: undefined, error: failure })
      throw failure
    }
  }

  async #end(state: TxState, commit: boolean): Promise<void> {
    const client = state.client
    if (client === undefined) throw new TransactionStateError('the transaction has not begun')
    const ofIt = (record: PendingRecord) => record.tx === state
    try {
      if (!commit) {
        this.#hooks.failWhere(
          ofIt,
          new TransactionAbortedError(
            'the transaction was aborted before this message was sent; it will never be visible'
          )
        )
        await this.#hooks.flushWhere(ofIt)
        await abortClient(state, client)
        return
      }
      await this.#hooks.flushWhere(ofIt)
      if (state.failures.length > 0) {
        await abortClient(state, client).catch(noop)
        const first = state.failures[0]?.error
        throw new TransactionError(
          `the transaction was aborted: ${state.failures.length} of its message(s) failed (first: ${first?.message})`,
          state.failures,
          { cause: first }
        )
      }
      try {
        await (state.sent ? client.commit() : client.cancel())
      } catch (error) {
        await abortClient(state, client).catch(noop)
        throw new TransactionError(`the transaction could not commit and was aborted: ${describe(error)}`, [], {
          cause: error,
          retryable: isRetriable(error)
        })
      }
    } finally {
      if (this.#current === state) this.#current = undefined
      this.#hooks.pump()
    }
  }
}

async function abortClient(state: TxState, client: ClientTx): Promise<void> {
  // A transaction that sent nothing added no partition: Kafka refuses EndTxn for it
  // (INVALID_TXN_STATE), and there is nothing to end on the broker; it ends here.
  if (!state.sent) return client.cancel()
  try {
    await client.abort()
  } catch (error) {
    // Free the client for new work; the broker aborts the transaction at its timeout.
    await client.cancel().catch(noop)
    throw error
  }
}

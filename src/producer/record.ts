/**
 * What the producer's parts hand each other: one PendingRecord per message from send() to its
 * outcome, the SendGroup of one sendBatch call, and the Batch the accumulator fills and the sender
 * sends.
 */
import type { MessageToProduce } from '../kafka/client.ts'
import { MessageParts, type OutgoingMessage } from '../message/builder.ts'
import { StandardHeader } from '../message/wire-format.ts'
import type { TxState } from './transactions.ts'
import type { SendOutcome, SendResult } from './types.ts'

export type Bytes = MessageToProduce<Buffer, Buffer, Buffer, Buffer>

/** The names of the headers the producer stamps: the keys of those entries in a record's headers. */
export const EVENT_ID_HEADER = Buffer.from(StandardHeader.eventId)
export const TIMESTAMP_HEADER = Buffer.from(StandardHeader.timestamp)

/** A record's state: waiting for admission, batched, sent and not answered, or done. */
export const WAITING = 0
export const BUFFERED = 1
export const IN_FLIGHT = 2
export const SETTLED = 3

let capturedResolve: ((result: SendResult) => void) | undefined
let capturedReject: ((error: Error) => void) | undefined
function capture(resolve: (result: SendResult) => void, reject: (error: Error) => void): void {
  capturedResolve = resolve
  capturedReject = reject
}

/**
 * One message from send() to its outcome. It is also the object handed to the client's send (it has
 * the fields of a MessageToProduce), so a message costs one object here, not two; a class keeps
 * every record the same shape for the JIT.
 */
export class PendingRecord {
  // The MessageToProduce fields the client reads.
  readonly topic: string
  readonly key: Buffer | undefined
  readonly value: Buffer | null
  readonly headers: Map<Buffer, Buffer> | undefined
  partition = -1
  readonly timestamp: bigint | undefined
  // Kafkit's own.
  /** What was sent: the message, or a builder's fields (the message is then made when asked for). */
  readonly source: OutgoingMessage<unknown> | MessageParts<unknown>
  readonly size: number
  readonly enqueuedAt: number
  state = WAITING
  released = true
  probe = false
  tx: TxState | undefined = undefined
  error: Error | undefined = undefined
  queued: PromiseWithResolvers<SendResult> | undefined = undefined
  cleanup: (() => void) | undefined = undefined
  // How the outcome is reported: a promise of its own (send), a slot of a group (sendBatch), or
  // neither (async mode: the caller got its answer when the message was queued).
  resolve: ((result: SendResult) => void) | undefined = undefined
  reject: ((error: Error) => void) | undefined = undefined
  group: SendGroup | undefined = undefined
  index = 0
  /** The `event-id`; a stamped one as its ASCII bytes until read as text (most only for their result). */
  #eventId: string | Buffer | undefined
  #message: OutgoingMessage<unknown> | undefined = undefined

  constructor(
    source: OutgoingMessage<unknown> | MessageParts<unknown>,
    topic: string,
    key: Buffer | undefined,
    value: Buffer | null,
    headers: Map<Buffer, Buffer> | undefined,
    timestamp: bigint | undefined,
    size: number,
    /** Text, or a stamped id's ASCII bytes. */
    eventId: string | Buffer | undefined,
    enqueuedAt: number
  ) {
    this.topic = topic
    this.key = key
    this.value = value
    this.headers = headers
    this.timestamp = timestamp
    this.source = source
    this.size = size
    this.#eventId = eventId
    this.enqueuedAt = enqueuedAt
  }

  /** The `event-id` header's text, when the message has one. */
  get eventId(): string | undefined {
    const id = this.#eventId
    if (id === undefined || typeof id === 'string') return id
    const text = id.toString('latin1')
    this.#eventId = text
    return text
  }

  /** The message as sent; for a builder, what its build() would have returned with the stamped headers. */
  get message(): OutgoingMessage<unknown> {
    const source = this.source
    if (!(source instanceof MessageParts)) return source
    this.#message ??= source.message(this.eventId, this.headers?.get(TIMESTAMP_HEADER)?.toString('latin1'))
    return this.#message
  }

  /** The promise send() returns; a shared executor, so no closure is allocated per message for it. */
  promise(): Promise<SendResult> {
    const promise = new Promise<SendResult>(capture)
    this.resolve = capturedResolve
    this.reject = capturedReject
    return promise
  }

  /** Reports a success to whoever waits for it: its promise or its group's slot. */
  deliver(result: SendResult): void {
    if (this.group !== undefined) this.group.settle(this.index, { ok: true, result })
    else if (this.resolve !== undefined) this.resolve(result)
  }
}

/** The messages of one sendBatch call: one promise for all, one outcome per message. */
export class SendGroup {
  readonly outcomes: SendOutcome[]
  /** Only kept when the call has an abort signal (it must reach every record). */
  records: PendingRecord[] | undefined
  remaining: number
  readonly promise: Promise<SendOutcome[]>
  readonly #resolve: (outcomes: SendOutcome[]) => void
  cleanup: (() => void) | undefined

  constructor(size: number) {
    this.outcomes = new Array<SendOutcome>(size)
    this.remaining = size
    const { promise, resolve } = Promise.withResolvers<SendOutcome[]>()
    this.promise = promise
    this.#resolve = resolve
  }

  settle(index: number, outcome: SendOutcome): void {
    this.outcomes[index] = outcome
    if (--this.remaining === 0) {
      this.cleanup?.()
      this.#resolve(this.outcomes)
    }
  }
}

export interface Batch {
  id: number
  records: PendingRecord[]
  bytes: number
  tx: TxState | undefined
  due: boolean
  /** All records go to one topic-partition (the offsets are then base + index). */
  single: boolean
  /** Sent alone (nothing else in flight meanwhile): the one-by-one re-sends of a split batch keep their order. */
  exclusive: boolean
}

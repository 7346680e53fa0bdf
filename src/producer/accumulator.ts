/**
 * The accumulator: admits records into a bounded buffer (`bufferMemory`: a record waits in order
 * for room and for its topic's partitions, or fails at once with bufferFullBehavior `fail`), picks
 * each record's partition, and fills batches of up to `batchSize` records and `batchBytes` bytes.
 * A batch is sealed when full, when another transaction's record comes, after `lingerMs`, or at once
 * while flushing or closing; the sender takes the sealed ones in order.
 */
import { Fifo } from '../util/fifo.ts'
import { describe } from './error-text.ts'
import { BufferFullError, InvalidPartitionError, type ProduceError } from './errors.ts'
import type { ProducerConfig } from './options.ts'
import type { PartitionChooser } from './partitioners.ts'
import { BUFFERED, SETTLED, type Batch, type PendingRecord } from './record.ts'
import type { TopicMetadata } from './topic-metadata.ts'
import type { TxState } from './transactions.ts'

type AccumulatorConfig = Readonly<
  Pick<ProducerConfig, 'bufferMemory' | 'bufferFullBehavior' | 'batchSize' | 'batchBytes' | 'lingerMs'>
>

export interface AccumulatorHooks {
  /** Fails a record for good. */
  fail(record: PendingRecord, error: Error): void
  /** Sealed batches may be waiting: send what can go. */
  pump(): void
}

const RESOLVED = Promise.resolve()

export class RecordAccumulator {
  /** Records waiting for room or for their topic's partitions, oldest first. */
  readonly admission = new Fifo<PendingRecord>()
  /** Sealed batches, oldest first. */
  readonly ready: Batch[] = []
  /** Flushes under way: batches are sealed at once, without lingering. */
  flushing = 0
  closing = false
  readonly #config: AccumulatorConfig
  readonly #chooser: Pick<PartitionChooser, 'choose'>
  readonly #topics: Pick<TopicMetadata, 'get' | 'load' | 'refresh'>
  readonly #hooks: AccumulatorHooks
  #open: Batch | undefined
  #batchSeq = 0
  #bufferedBytes = 0
  #bufferedMessages = 0
  #lingerTimer: NodeJS.Timeout | undefined
  #pumpScheduled = false
  #readyWaiter: PromiseWithResolvers<void> | undefined

  constructor(
    config: AccumulatorConfig,
    chooser: Pick<PartitionChooser, 'choose'>,
    topics: Pick<TopicMetadata, 'get' | 'load' | 'refresh'>,
    hooks: AccumulatorHooks
  ) {
    this.#config = config
    this.#chooser = chooser
    this.#topics = topics
    this.#hooks = hooks
  }

  /** The batch being filled. */
  get open(): Batch | undefined {
    return this.#open
  }

  /** Bytes of the records batched or in flight (not of those waiting for admission). */
  get bufferedBytes(): number {
    return this.#bufferedBytes
  }

  get bufferedMessages(): number {
    return this.#bufferedMessages
  }

  hasRoom(): boolean {
    return this.admission.size === 0 && this.#bufferedBytes < this.#config.bufferMemory
  }

  /** Resolves when the buffer has room (at once when it has). */
  whenReady(): Promise<void> {
    if (this.hasRoom()) return RESOLVED
    this.#readyWaiter ??= Promise.withResolvers<void>()
    return this.#readyWaiter.promise
  }

  /** Takes a new record: batched at once when nothing waits before it and there is room, else queued. */
  admit(record: PendingRecord): void {
    const info = this.#topics.get(record.topic)
    const room = this.#bufferedBytes + record.size <= this.#config.bufferMemory || this.#bufferedMessages === 0
    if (this.admission.size === 0 && info !== undefined && room) {
      if (info.refreshAt < record.enqueuedAt) this.#topics.refresh(record.topic, info)
      this.#enqueue(record, info.partitions)
    } else if (!room && this.#config.bufferFullBehavior === 'fail') {
      this.#hooks.fail(
        record,
        new BufferFullError(
          `the producer's buffer is full (${this.#bufferedBytes} of ${this.#config.bufferMemory} bytes) and bufferFullBehavior is fail`,
          { details: { topic: record.topic, eventId: record.eventId } }
        )
      )
    } else {
      this.admission.push(record)
      this.drain()
    }
  }

  /** Admits waiting records in order while there is room and their topic's partitions are known. */
  drain(): void {
    const queue = this.admission
    // Peeked afresh each time: what #enqueue sets off (a `failed` listener that sends) may admit too.
    for (let record = queue.peek(); record !== undefined; record = queue.peek()) {
      if (record.state === SETTLED) {
        queue.shift()
        continue
      }
      const info = this.#topics.get(record.topic)
      if (info === undefined) {
        this.#topics.load(record.topic)
        break
      }
      if (this.#bufferedBytes + record.size > this.#config.bufferMemory && this.#bufferedMessages > 0) break
      queue.shift()
      this.#enqueue(record, info.partitions)
    }
  }

  /** Fails the records waiting for `topic` (its partitions could not be read). */
  failWaiting(topic: string, failure: ProduceError): void {
    for (const record of this.admission) {
      if (record.topic === topic && record.state !== SETTLED) this.#hooks.fail(record, failure)
    }
  }

  /** Frees the buffer memory of a record (once). */
  release(record: PendingRecord): void {
    if (record.released) return
    record.released = true
    this.#bufferedBytes -= record.size
    this.#bufferedMessages--
  }

  /** Frees the memory of records already marked released (the sender's hot path counts them itself). */
  freed(bytes: number, messages: number): void {
    this.#bufferedBytes -= bytes
    this.#bufferedMessages -= messages
  }

  /** After memory was released: admit waiting records and wake `ready` waiters. */
  afterRelease(): void {
    if (this.admission.size > 0) this.drain()
    if (this.#readyWaiter !== undefined && this.hasRoom()) {
      this.#readyWaiter.resolve()
      this.#readyWaiter = undefined
    }
  }

  /** Moves the open batch to the ready ones. */
  seal(): void {
    const open = this.#open
    if (open === undefined) return
    if (this.#lingerTimer !== undefined) {
      clearTimeout(this.#lingerTimer)
      this.#lingerTimer = undefined
    }
    this.#open = undefined
    this.ready.push(open)
  }

  /** The oldest sealed batch, left in place; an open batch that is due is sealed for it. */
  next(): Batch | undefined {
    const batch = this.ready[0]
    if (batch !== undefined) return batch
    const open = this.#open
    if (open === undefined) return undefined
    if (!(open.due || this.#config.lingerMs === 0 || this.flushing > 0 || this.closing)) return undefined
    this.seal()
    return this.ready[0]
  }

  /** Puts records of a batch the broker found too large back in front, each to be sent alone, in order. */
  requeueAlone(records: PendingRecord[], tx: TxState | undefined): void {
    const singles = records.map(record => {
      record.state = BUFFERED
      return {
        id: ++this.#batchSeq,
        records: [record],
        bytes: record.size,
        tx,
        due: true,
        single: true,
        exclusive: true
      }
    })
    this.ready.unshift(...singles)
  }

  stopLinger(): void {
    if (this.#lingerTimer !== undefined) clearTimeout(this.#lingerTimer)
  }

  /** Buffers a record into the open batch: sealed when full, else due after the linger. */
  #enqueue(record: PendingRecord, partitions: number): void {
    const partition = this.#partitionOf(record, partitions)
    if (partition < 0) return
    record.partition = partition
    record.state = BUFFERED
    record.released = false
    this.#bufferedBytes += record.size
    this.#bufferedMessages++
    record.queued?.resolve({
      status: 'queued',
      topic: record.topic,
      partition,
      offset: undefined,
      eventId: record.eventId
    })

    let batch = this.#open
    if (batch !== undefined && (batch.tx !== record.tx || batch.bytes + record.size > this.#config.batchBytes)) {
      this.seal()
      batch = undefined
    }
    if (batch === undefined) {
      batch = { id: ++this.#batchSeq, records: [], bytes: 0, tx: record.tx, due: false, single: true, exclusive: false }
      this.#open = batch
    } else if (batch.single) {
      const first = batch.records[0] as PendingRecord
      if (first.partition !== partition || first.topic !== record.topic) batch.single = false
    }
    batch.records.push(record)
    batch.bytes += record.size
    if (batch.records.length >= this.#config.batchSize || batch.bytes >= this.#config.batchBytes) {
      this.seal()
      this.#hooks.pump()
    } else if (batch.records.length === 1) {
      if (this.#config.lingerMs > 0 && this.flushing === 0 && !this.closing) {
        this.#lingerTimer = setTimeout(() => {
          this.#lingerTimer = undefined
          if (this.#open === batch) batch.due = true
          this.#hooks.pump()
        }, this.#config.lingerMs)
      } else {
        this.#schedulePump()
      }
    }
  }

  /** The record's partition; -1 when there is none (the record failed). */
  #partitionOf(record: PendingRecord, partitions: number): number {
    let partition = record.source.partition
    if (partition === undefined) {
      try {
        partition = this.#chooser.choose(
          record,
          record.key ?? null,
          record.topic,
          partitions,
          this.#open?.id ?? this.#batchSeq + 1
        )
      } catch (error) {
        this.#hooks.fail(
          record,
          new InvalidPartitionError(`the partitioner threw for a message to ${record.topic}: ${describe(error)}`, {
            cause: error
          })
        )
        return -1
      }
    }
    if (!Number.isInteger(partition) || partition < 0 || partition >= partitions) {
      this.#hooks.fail(
        record,
        new InvalidPartitionError(
          `partition ${String(partition)} does not exist: topic ${record.topic} has ${partitions} partition(s) (0..${partitions - 1})`,
          { details: { topic: record.topic, partition, partitions, eventId: record.eventId } }
        )
      )
      return -1
    }
    return partition
  }

  #schedulePump(): void {
    if (this.#pumpScheduled) return
    this.#pumpScheduled = true
    setImmediate(() => {
      this.#pumpScheduled = false
      this.#hooks.pump()
    })
  }
}

/**
 * Per-key ordered retries. While a key has a record in the retry flow (its head), later records of the
 * key are parked: written to the compacted parked-keys topic of their origin topic (partition = origin
 * partition) and taken away from the origin (`rerouted`), so the origin partition moves on. When the
 * head succeeds or is dead-lettered on a tier, the tier writes a resolution there; the owner of the
 * origin partition then hands the first parked record to the release topic (handled at once by the
 * release consumer) and makes it the new head, and so on until nothing is parked: the train ends and the
 * key is free again. A released record that fails goes to the first tier like any failure, and the rest
 * stays parked behind it. Records without a key are never held back.
 *
 * Durability: the state is the parked-keys topic itself (see parked-keys.ts). Every worker reads it
 * from the start into memory and follows it; a write counts only once this worker's reader has applied
 * it, so the state in memory is always a prefix of the log and a restarted worker rebuilds exactly what
 * was acknowledged. The owner of an origin partition (in the origin group) decides for its keys only
 * once its reader caught up with the topic as it stood at the assignment, and its decisions for one key
 * run one at a time. Writes come before the settle they justify (tier record, then the train; release
 * record, then the state), so a crash leaves at worst a duplicate, never a lost or stuck record.
 */
import { closeGroupClient, consumeStream } from '../consumer/consume-stream.ts'
import {
  ClientConsumer,
  MessagesStreamModes,
  type BaseOptions,
  type Message,
  type MessagesStream
} from '../kafka/client.ts'
import { randomBytes } from 'node:crypto'
import type { HandlingLogger } from '../handling/logger.ts'
import type { ConsumedMessage } from '../handling/types.ts'
import {
  ParkedKeys,
  PARKED_TIMESTAMP_HEADER,
  encodeParkedValue,
  encodeResolution,
  encodeTrain,
  entryKeys,
  keyIdOf,
  type EntryKeys,
  type ParkedRecord
} from './parked-keys.ts'
import { retryHeaderEntries } from './retry-headers.ts'
import { headerMap, sendAcknowledged, type OutgoingRecord, type RetryProducer } from './send-acknowledged.ts'
import type { RetryFlowTopics } from './topic-names.ts'
import { ConsumerStoppedError } from '../consumer/errors.ts'

type RawRecord = Message<Buffer, Buffer, Buffer, Buffer>

export interface KeyOrderGateInit {
  client: BaseOptions
  producer: RetryProducer
  flows: readonly RetryFlowTopics[]
  /** The origin consumer group (recorded in released records). */
  groupId: string
  logger: HandlingLogger
  /** Partition counts of the parked and release topics. */
  partitions: ReadonlyMap<string, number>
}

interface Ownership {
  ready: Promise<void>
  isReady: boolean
}

const id = (topic: string, partition: number) => `${topic}\u0000${partition}`

export class KeyOrderGate {
  readonly #client: BaseOptions
  readonly #producer: RetryProducer
  readonly #flows = new Map<string, RetryFlowTopics>()
  readonly #byParked = new Map<string, RetryFlowTopics>()
  readonly #state = new Map<string, ParkedKeys>()
  readonly #groupId: string
  readonly #keys: EntryKeys
  readonly #logger: HandlingLogger
  readonly #partitions: ReadonlyMap<string, number>
  readonly #stop = new AbortController()
  /** Next offset the reader will apply, per parked-topic partition. */
  readonly #positions = new Map<string, bigint>()
  readonly #waiters = new Map<string, { offset: bigint; wake: () => void }[]>()
  readonly #owned = new Map<string, Ownership>()
  /** One chain of decisions per origin partition and key. */
  readonly #chains = new Map<string, Promise<void>>()
  readonly #scheduled = new Set<string>()
  #reader: ClientConsumer<Buffer, Buffer, Buffer, Buffer> | undefined
  #stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined
  #readerGroup = `kafkit-retry-keys-${randomBytes(6).toString('hex')}`
  #failure: Error | undefined

  constructor(init: KeyOrderGateInit) {
    this.#client = init.client
    this.#producer = init.producer
    this.#groupId = init.groupId
    this.#keys = entryKeys(init.groupId)
    this.#logger = init.logger
    this.#partitions = init.partitions
    for (const flow of init.flows) {
      this.#flows.set(flow.origin, flow)
      this.#byParked.set(flow.parked, flow)
      this.#state.set(flow.origin, new ParkedKeys(init.groupId))
    }
  }

  /** Starts reading the parked-keys topics from their start. */
  async start(): Promise<void> {
    const topics = [...this.#byParked.keys()]
    this.#reader = new ClientConsumer<Buffer, Buffer, Buffer, Buffer>({
      ...this.#client,
      clientId: 'kafkit-retry-keys',
      groupId: this.#readerGroup,
      maxWaitTime: 200
    })
    // The client reports a failed background rejoin of its (throwaway) group as an 'error' event;
    // unheard, that event would crash the worker. Reading goes on from the stream either way.
    this.#reader.on('error', (error: Error) => {
      if (!this.#stop.signal.aborted) this.#logger.warn({ err: error.message }, 'retry: parked-keys reader group error')
    })
    const earliest = await this.#reader.listOffsets({ topics, timestamp: -2n })
    const offsets: { topic: string; partition: number; offset: bigint }[] = []
    for (const [topic, list] of earliest) {
      list.forEach((offset, partition) => {
        this.#positions.set(id(topic, partition), offset)
        offsets.push({ topic, partition, offset })
      })
    }
    // Heard from the moment the stream exists (see consumeStream): after stop() its deferred set-up
    // fails on the closed reader, which is no news then.
    const stream = await consumeStream(
      this.#reader,
      { topics, mode: MessagesStreamModes.MANUAL, offsets, autocommit: false },
      (error: Error) => {
        if (this.#stop.signal.aborted) return
        this.#failure = error
        this.#logger.error({ err: error.message }, 'retry: the parked-keys reader failed; per-key ordering stops')
        this.#stop.abort(error)
      }
    )
    // stop() while starting closed the reader before this stream existed: close it too, quietly.
    if (this.#stop.signal.aborted) {
      await stream.close().catch(() => undefined)
      return
    }
    this.#stream = stream
    this.#stream.on('data', (record: RawRecord) => this.#apply(record))
  }

  async stop(): Promise<void> {
    this.#stop.abort(new ConsumerStoppedError('per-key ordering stopped'))
    await Promise.allSettled([...this.#chains.values()])
    await this.#stream?.close().catch(() => undefined)
    if (this.#reader) await closeGroupClient(this.#reader)
  }

  /** The reader's group: a throwaway to delete after stop. */
  get readerGroup(): string {
    return this.#readerGroup
  }

  counts(): { blockedKeys: number; parkedRecords: number } {
    let blockedKeys = 0
    let parkedRecords = 0
    for (const state of this.#state.values()) {
      const c = state.counts()
      blockedKeys += c.blockedKeys
      parkedRecords += c.parkedRecords
    }
    return { blockedKeys, parkedRecords }
  }

  // ---- ownership (follows the origin consumer's assignment) -----------------------------------

  assigned(partitions: readonly { topic: string; partition: number }[]): void {
    for (const { topic, partition } of partitions) this.#own(topic, partition)
  }

  revoked(partitions: readonly { topic: string; partition: number }[]): void {
    for (const { topic, partition } of partitions) this.#owned.delete(id(topic, partition))
  }

  #own(topic: string, partition: number): Ownership | undefined {
    const flow = this.#flows.get(topic)
    if (!flow) return undefined
    const key = id(topic, partition)
    const existing = this.#owned.get(key)
    if (existing) return existing
    const ownership: Ownership = { isReady: false, ready: Promise.resolve() }
    ownership.ready = (async () => {
      // Everything the previous owner wrote before it let go is in the topic now: read up to there.
      const ends = await (this.#reader as ClientConsumer<Buffer, Buffer, Buffer, Buffer>).listOffsets({
        topics: [flow.parked],
        partitions: { [flow.parked]: [partition] }
      })
      const end = ends.get(flow.parked)?.[partition] ?? 0n
      await this.#reached(flow.parked, partition, end - 1n, this.#stop.signal)
      ownership.isReady = true
      const state = this.#state.get(topic) as ParkedKeys
      for (const keyId of state.keys(partition)) this.#schedule(topic, partition, keyId)
    })()
    // Whoever needs it awaits it; a stop meanwhile must not surface as an unhandled rejection.
    ownership.ready.catch(() => undefined)
    this.#owned.set(key, ownership)
    return ownership
  }

  // ---- the origin's side ------------------------------------------------------------------------

  /** Before the handler: hold the record back when its key has a record in retry. */
  async intercept(message: ConsumedMessage<unknown>, signal: AbortSignal): Promise<'handle' | 'rerouted'> {
    const key = message.raw.key
    const flow = this.#flows.get(message.topic)
    if (key === null || !flow) return 'handle'
    const ownership = this.#own(message.topic, message.partition) as Ownership
    if (!ownership.isReady) await abortable(ownership.ready, AbortSignal.any([signal, this.#stop.signal]))
    const keyId = keyIdOf(key)
    const state = this.#state.get(message.topic) as ParkedKeys
    return this.#inChain(message.topic, message.partition, keyId, async () => {
      const decision = state.decide(message.partition, keyId, message.offset)
      if (decision === 'handle') return 'handle'
      if (decision === 'held') return 'rerouted'
      const headers = [...(message.headerEntries ?? message.headers)].map(([n, v]) => [n, v] as [string, Buffer])
      if (!Number.isNaN(message.timestamp.getTime())) {
        headers.push([PARKED_TIMESTAMP_HEADER, Buffer.from(message.timestamp.toISOString())])
      }
      await this.#writeState(
        flow,
        message.partition,
        [
          {
            topic: flow.parked,
            partition: message.partition,
            key: Buffer.from(this.#keys.parked(keyId, message.offset)),
            value: encodeParkedValue(message.raw.value),
            headers: headerMap(headers)
          }
        ],
        signal,
        'park'
      )
      return 'rerouted'
    })
  }

  /**
   * A record failed at the origin and goes to the first tier: `writeTier` produces it there, then the
   * key's train starts with it as its head. Runs in the key's chain, so nothing of the key is decided
   * between the two writes.
   */
  async startTrain(
    message: ConsumedMessage<unknown>,
    signal: AbortSignal,
    writeTier: () => Promise<void>
  ): Promise<void> {
    const key = message.raw.key
    const flow = this.#flows.get(message.topic)
    if (key === null || !flow) {
      await writeTier()
      return
    }
    const keyId = keyIdOf(key)
    await this.#inChain(message.topic, message.partition, keyId, async () => {
      await writeTier()
      await this.#writeState(
        flow,
        message.partition,
        [
          {
            topic: flow.parked,
            partition: message.partition,
            key: Buffer.from(this.#keys.train(keyId)),
            value: encodeTrain(message.offset)
          }
        ],
        signal,
        'train'
      )
    })
  }

  // ---- the tiers' side -------------------------------------------------------------------------

  /** A head succeeded or was dead-lettered on a tier (or the release topic): tell the owner of its key. */
  async resolve(
    origin: { topic: string; partition: number; offset: bigint },
    key: Buffer,
    outcome: 'done' | 'dead-letter',
    signal: AbortSignal
  ): Promise<void> {
    const flow = this.#flows.get(origin.topic)
    if (!flow) return
    await sendAcknowledged(
      this.#producer,
      [
        {
          topic: flow.parked,
          partition: origin.partition % (this.#partitions.get(flow.parked) ?? 1),
          key: Buffer.from(this.#keys.resolution(keyIdOf(key), origin.offset)),
          value: encodeResolution(outcome, new Date())
        }
      ],
      { signal, logger: this.#logger, what: 'resolution' }
    )
  }

  // ---- the reader and the owner's steps ---------------------------------------------------------

  #apply(record: RawRecord): void {
    const flow = this.#byParked.get(record.topic)
    if (!flow || record.key === undefined || record.key === null) return
    const state = this.#state.get(flow.origin) as ParkedKeys
    const headers = record.headerEntries.map(([name, value]) => [name.toString(), value] as const)
    const keyId = state.apply(record.partition, record.key.toString('utf8'), record.value, headers)
    const position = id(record.topic, record.partition)
    this.#positions.set(position, record.offset + 1n)
    const waiting = this.#waiters.get(position)
    if (waiting) {
      const still = waiting.filter(w => w.offset >= record.offset + 1n)
      for (const w of waiting) if (w.offset < record.offset + 1n) w.wake()
      if (still.length > 0) this.#waiters.set(position, still)
      else this.#waiters.delete(position)
    }
    if (keyId !== undefined && this.#owned.get(id(flow.origin, record.partition))?.isReady) {
      this.#schedule(flow.origin, record.partition, keyId)
    }
  }

  /** Resolves once the reader applied `offset` of the parked-topic partition. */
  #reached(topic: string, partition: number, offset: bigint, signal: AbortSignal): Promise<void> {
    const position = id(topic, partition)
    if ((this.#positions.get(position) ?? 0n) > offset) return Promise.resolve()
    if (this.#failure) return Promise.reject(this.#failure)
    return abortable(
      new Promise<void>(wake => {
        const list = this.#waiters.get(position) ?? []
        list.push({ offset, wake })
        this.#waiters.set(position, list)
      }),
      signal
    )
  }

  /** Produces state entries (one partition) and waits until this worker's reader applied them. */
  async #writeState(
    flow: RetryFlowTopics,
    partition: number,
    records: OutgoingRecord[],
    signal: AbortSignal,
    what: string
  ): Promise<void> {
    const both = AbortSignal.any([signal, this.#stop.signal])
    const result = await sendAcknowledged(this.#producer, records, { signal: both, logger: this.#logger, what })
    const base = result.offsets?.find(o => o.topic === flow.parked && o.partition === partition)?.offset
    if (base === undefined) return
    await this.#reached(flow.parked, partition, base + BigInt(records.length) - 1n, both)
  }

  #inChain<T>(topic: string, partition: number, keyId: string, task: () => Promise<T>): Promise<T> {
    const chainId = `${id(topic, partition)}\u0000${keyId}`
    const previous = this.#chains.get(chainId) ?? Promise.resolve()
    const run = previous.then(task)
    const settled = run.then(
      () => undefined,
      () => undefined
    )
    this.#chains.set(chainId, settled)
    void settled.then(() => {
      if (this.#chains.get(chainId) === settled) this.#chains.delete(chainId)
    })
    return run
  }

  #schedule(topic: string, partition: number, keyId: string): void {
    const chainId = `${id(topic, partition)}\u0000${keyId}`
    if (this.#scheduled.has(chainId) || this.#stop.signal.aborted) return
    this.#scheduled.add(chainId)
    void this.#inChain(topic, partition, keyId, async () => {
      this.#scheduled.delete(chainId)
      await this.#advance(topic, partition, keyId)
    }).catch((error: unknown) => {
      if (this.#stop.signal.aborted) return
      this.#logger.error(
        { topic, partition, err: error instanceof Error ? error.message : String(error) },
        'retry: releasing parked records failed; the next assignment of the partition resumes it'
      )
    })
  }

  /** The owner's steps for one key: release parked records one at a time as their heads resolve. */
  async #advance(topic: string, partition: number, keyId: string): Promise<void> {
    const flow = this.#flows.get(topic) as RetryFlowTopics
    const state = this.#state.get(topic) as ParkedKeys
    const signal = this.#stop.signal
    for (;;) {
      if (!this.#owned.get(id(topic, partition))?.isReady) return
      const step = state.step(partition, keyId)
      if (step.kind === 'idle') return
      const drop = step.drop.map((offset): OutgoingRecord => ({
        topic: flow.parked,
        partition,
        key: Buffer.from(this.#keys.resolution(keyId, offset)),
        value: null as unknown as Buffer
      }))
      if (step.kind === 'gc') {
        await this.#writeState(flow, partition, drop, signal, 'resolution cleanup')
        continue
      }
      if (step.kind === 'end') {
        const end: OutgoingRecord = {
          topic: flow.parked,
          partition,
          key: Buffer.from(this.#keys.train(keyId)),
          value: null as unknown as Buffer
        }
        await this.#writeState(flow, partition, [end, ...drop], signal, 'train end')
        continue
      }
      await this.#release(flow, partition, step.next, signal)
      await this.#writeState(
        flow,
        partition,
        [
          {
            topic: flow.parked,
            partition,
            key: Buffer.from(this.#keys.train(keyId)),
            value: encodeTrain(step.next.offset)
          },
          {
            topic: flow.parked,
            partition,
            key: Buffer.from(this.#keys.parked(keyId, step.next.offset)),
            value: null as unknown as Buffer
          },
          ...drop
        ],
        signal,
        'release'
      )
    }
  }

  /** Hands a parked record to the release topic, where it is handled at once as the key's new head. */
  async #release(flow: RetryFlowTopics, partition: number, parked: ParkedRecord, signal: AbortSignal): Promise<void> {
    const now = new Date()
    const headers = retryHeaderEntries(
      { headers: new Map(parked.headers), headerEntries: parked.headers },
      {
        attempt: 0,
        tier: 0,
        delayMs: 0,
        dueAt: now,
        consumerGroup: this.#groupId,
        origin: { topic: flow.origin, partition, offset: parked.offset, timestamp: parked.timestamp },
        handlerAttempts: 0,
        keyOrder: true
      }
    )
    await sendAcknowledged(
      this.#producer,
      [
        {
          topic: flow.release,
          partition: partition % (this.#partitions.get(flow.release) ?? 1),
          key: parked.key,
          value: parked.value as Buffer,
          headers: headerMap(headers)
        }
      ],
      { signal, logger: this.#logger, what: 'release' }
    )
  }
}

/** `promise`, or a rejection with the signal's reason once it aborts. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      value => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error instanceof Error ? error : new Error(String(error)))
      }
    )
  })
}

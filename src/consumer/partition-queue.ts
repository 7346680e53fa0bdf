/**
 * The records of one partition waiting to be handled, and which of them may start now under the
 * consumer's ordering mode:
 *
 * - `partition`: one record (or one batch) of the partition at a time, in offset order (the default);
 * - `key`: records with different keys run in parallel, records with the same key strictly one after
 *   the other in offset order (Confluent's Parallel Consumer "key" ordering); records without a key
 *   form one lane of their own, in order;
 * - `unordered`: any record may start at any time.
 *
 * The global concurrency limit is the caller's business; this only says what is eligible.
 */
import { Fifo } from '../util/fifo.ts'

export type OrderingMode = 'partition' | 'key' | 'unordered'

export interface Queued {
  readonly offset: bigint
  readonly key: Buffer | null | undefined
}

/** The lane of records without a key (a hash is never negative). */
const NO_KEY = -1

/**
 * A record's lane in key mode: the top 31 bits of a 32-bit FNV-1a hash of its key bytes (the length and
 * at most the first and last 32 bytes), so no string is made per record. Two keys that share a hash
 * share a lane: their records run one after the other, which keeps every key's order and only costs
 * those two keys their parallelism.
 */
export function laneOf(key: Buffer | null | undefined): number {
  if (key === null || key === undefined) return NO_KEY
  const length = key.length
  let hash = (0x811c9dc5 ^ length) >>> 0
  const head = Math.min(length, 32)
  for (let i = 0; i < head; i++) hash = Math.imul(hash ^ (key[i] as number), 0x01000193)
  for (let i = Math.max(head, length - 32); i < length; i++) hash = Math.imul(hash ^ (key[i] as number), 0x01000193)
  // 31 bits: a small integer for V8, so Map and Set keys need no heap number.
  return hash >>> 1
}

export class PartitionQueue<T extends Queued> {
  readonly mode: OrderingMode
  /** partition and unordered modes: one FIFO. */
  readonly #fifo = new Fifo<T>()
  /** key mode: one FIFO per key, and the keys whose lane is idle with work waiting, oldest first. */
  readonly #lanes = new Map<number, T[]>()
  readonly #busyLanes = new Set<number>()
  readonly #ready = new Fifo<number>()
  #size = 0
  #inFlight = 0

  constructor(mode: OrderingMode) {
    this.mode = mode
  }

  /** Records waiting (not started). */
  get size(): number {
    return this.#size
  }

  /** Records (or batches) started and not yet released. */
  get inFlight(): number {
    return this.#inFlight
  }

  push(item: T): void {
    this.#size++
    if (this.mode !== 'key') {
      this.#fifo.push(item)
      return
    }
    const lane = laneOf(item.key)
    const waiting = this.#lanes.get(lane)
    if (waiting) {
      waiting.push(item)
      return
    }
    this.#lanes.set(lane, [item])
    if (!this.#busyLanes.has(lane)) this.#ready.push(lane)
  }

  /** Whether `next()` would return something now. */
  get eligible(): boolean {
    if (this.#size === 0) return false
    if (this.mode === 'partition') return this.#inFlight === 0
    if (this.mode === 'unordered') return true
    return this.#ready.size > 0
  }

  /** Starts the next eligible record; call `release(item)` when it settled. */
  next(): T | undefined {
    if (!this.eligible) return undefined
    if (this.mode !== 'key') {
      const item = this.#fifo.shift() as T
      this.#size--
      this.#inFlight++
      return item
    }
    const lane = this.#ready.shift() as number
    const waiting = this.#lanes.get(lane) as T[]
    const item = waiting.shift() as T
    if (waiting.length === 0) this.#lanes.delete(lane)
    this.#busyLanes.add(lane)
    this.#size--
    this.#inFlight++
    return item
  }

  /** Partition mode only: starts up to `max` consecutive records as one batch. */
  nextBatch(max: number): T[] {
    if (this.mode !== 'partition' || !this.eligible) return []
    const batch = this.#fifo.take(max)
    this.#size -= batch.length
    this.#inFlight++
    return batch
  }

  /** Ends the work started with `next()` (or the batch whose first record is `item`). */
  release(item: T): void {
    this.#inFlight--
    if (this.mode !== 'key') return
    const lane = laneOf(item.key)
    this.#busyLanes.delete(lane)
    if (this.#lanes.has(lane)) this.#ready.push(lane)
  }

  /** Drops everything waiting (revoke, stop); returns how many records were dropped. */
  clear(): number {
    const dropped = this.#size
    this.#fifo.clear()
    this.#lanes.clear()
    this.#ready.clear()
    this.#size = 0
    return dropped
  }
}

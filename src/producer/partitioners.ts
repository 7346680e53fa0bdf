/**
 * Where a message goes. Kafkit picks the partition itself (before the message is buffered), so the
 * choice is known, checked against the topic's partition count, and reported back with the result.
 *
 * - `murmur2` (default): a keyed message goes to `toPositive(murmur2(key)) % partitions`, the Java
 *   client's default partitioner, so Java and Kafkit producers agree on where a key lives. A keyless
 *   message sticks to one partition per batch and the next batch moves on (like Java's sticky
 *   partitioner: fewer, fuller batches than spreading every message).
 * - `round-robin`: every message to the next partition, keys ignored.
 * - a function `(message, key, partitions) => partition` for anything else.
 * An explicit `message.partition` always wins.
 */
import type { OutgoingMessage } from '../message/builder.ts'
import { keyPartition } from './murmur2.ts'
import { PendingRecord } from './record.ts'

/** A custom partitioner: return a partition in [0, partitions). `key` is the serialized key or null. */
export type PartitionerFunction = (message: OutgoingMessage<unknown>, key: Buffer | null, partitions: number) => number

export type PartitionerName = 'murmur2' | 'round-robin'

/** Picks partitions for one producer; `batch` identifies the batch being filled (sticky choice). */
export class PartitionChooser {
  readonly #strategy: PartitionerName | PartitionerFunction
  readonly #next = new Map<string, number>()
  readonly #sticky = new Map<string, { batch: number; partition: number }>()

  constructor(strategy: PartitionerName | PartitionerFunction) {
    this.#strategy = strategy
  }

  /**
   * The partition for `message` (no explicit partition) of a topic with `partitions` partitions. Given
   * a record, its message is only read for a custom partitioner (a builder's is made when read).
   */
  choose(
    message: OutgoingMessage<unknown> | PendingRecord,
    key: Buffer | null,
    topic: string,
    partitions: number,
    batch: number
  ): number {
    const strategy = this.#strategy
    if (typeof strategy === 'function') {
      return strategy(message instanceof PendingRecord ? message.message : message, key, partitions)
    }
    if (strategy === 'murmur2') {
      if (key !== null) return keyPartition(key, partitions)
      const sticky = this.#sticky.get(topic)
      if (sticky?.batch === batch && sticky.partition < partitions) return sticky.partition
      const partition = this.#rotate(topic, partitions)
      this.#sticky.set(topic, { batch, partition })
      return partition
    }
    return this.#rotate(topic, partitions)
  }

  #rotate(topic: string, partitions: number): number {
    // Start at a random partition so producers started together do not all begin with partition 0.
    const next = this.#next.get(topic) ?? Math.floor(Math.random() * partitions)
    this.#next.set(topic, next + 1 >= partitions ? 0 : next + 1)
    return next % partitions
  }
}

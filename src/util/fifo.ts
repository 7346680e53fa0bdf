/**
 * A first-in, first-out queue over one array and a moving head: `shift` is O(1), where
 * `Array#shift` copies the rest of the array.
 *
 * Two things the hand-written versions of this got wrong, kept right here once:
 * - An item's slot is cleared when it leaves, and the array is emptied in place when the queue runs
 *   dry (or cut down when most of it is spent), never just dropped. An array that has reached V8's old
 *   generation would otherwise keep every item it still lists alive through each scavenge until the
 *   next full GC: measured in the producer and the consumer, see docs/benchmarks.md.
 * - Iterating is safe while the loop's own callbacks shift or push (a listener that sends, say): the
 *   iterator counts positions from the queue's start of life, so it skips what left meanwhile and
 *   never reads a cleared slot.
 */
export class Fifo<T> {
  #items: (T | undefined)[] = []
  #head = 0
  /** How many items left the queue before `#items[0]` (positions the iterator counts in). */
  #base = 0

  get size(): number {
    return this.#items.length - this.#head
  }

  push(item: T): void {
    this.#items.push(item)
  }

  /** The oldest item, left in place. */
  peek(): T | undefined {
    return this.#head < this.#items.length ? this.#items[this.#head] : undefined
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined
    const item = this.#items[this.#head]
    this.#items[this.#head++] = undefined
    this.#compact()
    return item
  }

  /** Removes and returns up to `count` of the oldest items, oldest first. */
  take(count: number): T[] {
    const end = Math.min(this.#head + count, this.#items.length)
    const taken = this.#items.slice(this.#head, end) as T[]
    this.#items.fill(undefined, this.#head, end)
    this.#head = end
    this.#compact()
    return taken
  }

  clear(): void {
    this.#base += this.#items.length
    this.#items.length = 0
    this.#head = 0
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let position = this.#base + this.#head; ; position++) {
      // What left while the caller held the last item is skipped, not read as an empty slot.
      position = Math.max(position, this.#base + this.#head)
      const index = position - this.#base
      if (index >= this.#items.length) return
      yield this.#items[index] as T
    }
  }

  #compact(): void {
    if (this.#head === this.#items.length) {
      this.clear()
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      const spent = this.#items
      this.#items = spent.slice(this.#head)
      spent.length = 0
      this.#base += this.#head
      this.#head = 0
    }
  }
}

/**
 * Which offset of a partition may be committed: the one after the longest run of settled records,
 * counted from the first record received. Records complete in any order (key-ordered and unordered
 * concurrency); the commit position only moves over a contiguous prefix, so a crash never commits
 * past a record that is still in flight or failed. Offsets need not be consecutive (compaction and
 * transaction markers leave gaps): the tracker follows the order records arrived in, not arithmetic.
 *
 * One tracker per owned partition; it is dropped when the partition is revoked, and a new one starts
 * when it is assigned again.
 */
export class OffsetTracker {
  /** Offsets received and not yet behind the commit position, in arrival order. */
  #offsets: bigint[] = []
  /** Parallel to #offsets: settled or not. */
  #settled: boolean[] = []
  /** Index in #offsets of the first record not settled. */
  #head = 0
  /** Parallel to #offsets: the record's leader epoch (-1: unknown). */
  #epochs: number[] = []
  /** The last record of the settled prefix (the commit position is the offset after it). */
  #lastSettled: bigint | undefined
  #committed: bigint | undefined
  /** The leader epoch of the last settled record of the prefix, sent with the commit. */
  #leaderEpoch = -1

  /** Registers a received record; offsets must increase. */
  track(offset: bigint, leaderEpoch = -1): void {
    const last = this.#offsets[this.#offsets.length - 1]
    if (last !== undefined && offset <= last) {
      throw new RangeError(`offset ${offset} received after ${last}: offsets of a partition must increase`)
    }
    this.#offsets.push(offset)
    this.#settled.push(false)
    this.#epochs.push(leaderEpoch)
  }

  /** Marks a tracked record as processed (done, business-refused or dead-lettered and acknowledged). */
  settle(offset: bigint): void {
    // In partition order the record settled is the head: no search.
    const index = this.#offsets[this.#head] === offset ? this.#head : this.#indexOf(offset)
    if (index < 0) return
    this.#settled[index] = true
    while (this.#head < this.#offsets.length && this.#settled[this.#head] === true) {
      this.#lastSettled = this.#offsets[this.#head]
      const epoch = this.#epochs[this.#head] as number
      if (epoch >= 0) this.#leaderEpoch = epoch
      this.#head++
    }
    // Drop the settled prefix now and then, so memory follows the records in flight, not the history.
    if (this.#head > 1024 && this.#head * 2 > this.#offsets.length) {
      this.#offsets = this.#offsets.slice(this.#head)
      this.#settled = this.#settled.slice(this.#head)
      this.#epochs = this.#epochs.slice(this.#head)
      this.#head = 0
    }
  }

  /** The offset to commit now, if it moved past the last commit; else undefined. */
  pending(): { offset: bigint; leaderEpoch: number } | undefined {
    if (this.#lastSettled === undefined) return undefined
    const committable = this.#lastSettled + 1n
    if (this.#committed !== undefined && committable <= this.#committed) return undefined
    return { offset: committable, leaderEpoch: this.#leaderEpoch }
  }

  /** Records that a commit of `offset` was acknowledged. */
  committed(offset: bigint): void {
    if (this.#committed === undefined || offset > this.#committed) this.#committed = offset
  }

  /** The last acknowledged commit of this tracker, if any. */
  get lastCommitted(): bigint | undefined {
    return this.#committed
  }

  /** Next offset to commit (settled prefix), if any record settled. */
  get position(): bigint | undefined {
    return this.#lastSettled === undefined ? undefined : this.#lastSettled + 1n
  }

  /** Records tracked and not settled (in flight, queued or failed without a verdict). */
  get unsettled(): number {
    let count = 0
    for (let index = this.#head; index < this.#settled.length; index++) if (this.#settled[index] !== true) count++
    return count
  }

  /** The first record not settled: what a restart would be redelivered from. */
  get firstUnsettled(): bigint | undefined {
    return this.#offsets[this.#head]
  }

  #indexOf(offset: bigint): number {
    // Offsets increase: binary search in the unsettled part.
    let low = this.#head
    let high = this.#offsets.length - 1
    while (low <= high) {
      const middle = (low + high) >>> 1
      const at = this.#offsets[middle] as bigint
      if (at === offset) return middle
      if (at < offset) low = middle + 1
      else high = middle - 1
    }
    return -1
  }
}

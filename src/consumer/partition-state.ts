/**
 * What the consumer keeps per partition it owns: the records waiting (PartitionQueue), what may be
 * committed (OffsetTracker), the signal of its handlers, and where it is in being given up. One state
 * per assignment: a partition assigned again after a revoke gets a new one.
 */
import type { CommitIdentity } from '../kafka/commit-in-generation.ts'
import type { RawRecord } from './decode.ts'
import type { DeadLetterBlock } from './metrics.ts'
import { OffsetTracker } from './offset-tracker.ts'
import { PartitionQueue, type OrderingMode } from './partition-queue.ts'

export interface TopicPartition {
  topic: string
  partition: number
}

export function partitionId(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`
}

export function topicPartition(id: string): TopicPartition {
  const [topic, partition] = id.split('\u0000') as [string, string]
  return { topic, partition: Number(partition) }
}

export class PartitionState {
  readonly id: string
  readonly topic: string
  readonly partition: number
  readonly queue: PartitionQueue<RawRecord>
  readonly tracker = new OffsetTracker()
  /** Aborts the handlers of this partition (revoke, stop). */
  readonly controller = new AbortController()
  /** The highest offset taken in (records fetched again after a rejoin are dropped). */
  highest = -1n
  /** When the oldest queued record arrived (batch linger). */
  queuedSince = 0
  /** Set while the partition is being given up: the generation it is given up in. */
  revokedIn: number | undefined = undefined
  /** Who commits for it while it is given up: that generation and the member id then (classic protocol). */
  revokedAs: CommitIdentity | undefined = undefined
  /** Called when its last in-flight work ended. */
  onIdle: (() => void) | undefined = undefined
  /**
   * Set while an earlier state of the same partition is still being let go (the partition was revoked
   * and assigned back to this member before that state's in-flight work ended): nothing of this one is
   * dispatched meanwhile, so a key's records never run in two states at once.
   */
  held = false
  /** The execution context of this partition's records (one object, reused). */
  readonly context: { readonly signal: AbortSignal; readonly groupId: string; readonly attempt: 1 }
  /** A record whose dead-letter write keeps failing: nothing of this partition commits past it meanwhile. */
  blocked: DeadLetterBlock | undefined = undefined

  constructor(topic: string, partition: number, mode: OrderingMode, groupId: string) {
    this.id = partitionId(topic, partition)
    this.topic = topic
    this.partition = partition
    this.queue = new PartitionQueue<RawRecord>(mode)
    // attempt: 1 lets the executor hand this object to first attempts without copying it; frozen, as
    // middleware of every record of the partition sees the same object.
    this.context = Object.freeze({ signal: this.controller.signal, groupId, attempt: 1 as const })
  }
}

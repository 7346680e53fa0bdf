/**
 * Commit coordination: which offsets may be committed (each partition's settled prefix, only for
 * partitions the client owns or is still giving up in the same generation), when (per message, per
 * batch, on the interval timer or every N messages, on demand coalesced with the commit in flight, and
 * a last one on stop), and in which generation (classic protocol: the one of the client's last join, or
 * the one a revoked partition was given up in; the consumer protocol commits through the client).
 */
import type { ClientConsumer } from '../kafka/client.ts'
import { commitInGeneration, type CommitIdentity, type OffsetToCommit } from '../kafka/commit-in-generation.ts'
import { describeKafkaError } from '../kafka/errors.ts'
import type { HandlingLogger } from '../handling/logger.ts'
import type { ConsumerMetricsRecorder } from './metrics.ts'
import type { ConsumerConfig } from './options.ts'
import type { PartitionState, TopicPartition } from './partition-state.ts'

/** At most one warning per this many ms for failed commits (a coordinator failover fails dozens). */
const COMMIT_WARN_MS = 5000

/** Where commits go: the group client. */
export interface CommitTarget {
  /** The client's generation now: a partition being given up commits only in the one it was given up in. */
  readonly generationId: number
  /** A closed client never commits again. */
  readonly closed: boolean
  /** One commit request; `as` undefined: through the client's own commit() (consumer protocol). */
  send(as: CommitIdentity | undefined, offsets: OffsetToCommit[]): Promise<void>
}

export function clientCommitTarget(
  client: ClientConsumer<Buffer, Buffer, Buffer, Buffer>,
  groupId: string
): CommitTarget {
  return {
    get generationId() {
      return client.generationId
    },
    get closed() {
      return client.closed
    },
    send: (as, offsets) =>
      as === undefined ? client.commit({ offsets }) : commitInGeneration(client, groupId, as, offsets)
  }
}

export interface CommitEvent {
  offsets: (TopicPartition & { offset: bigint })[]
  latencyMs: number
}

export interface CommitCoordinatorInit {
  config: Pick<
    ConsumerConfig,
    'groupId' | 'groupProtocol' | 'commitStrategy' | 'commitEveryMessages' | 'commitIntervalMs'
  >
  partitions: ReadonlyMap<string, PartitionState>
  /** Whether the client owns the partition (by id) now. */
  owns: (id: string) => boolean
  metrics: ConsumerMetricsRecorder
  logger: HandlingLogger
  onCommit: (event: CommitEvent) => void
}

interface CommitEntry {
  state: PartitionState
  offset: bigint
  leaderEpoch: number
}

export class CommitCoordinator {
  readonly #config: CommitCoordinatorInit['config']
  readonly #partitions: ReadonlyMap<string, PartitionState>
  readonly #owns: (id: string) => boolean
  readonly #metrics: ConsumerMetricsRecorder
  readonly #logger: HandlingLogger
  readonly #onCommit: (event: CommitEvent) => void
  #target: CommitTarget | undefined
  /**
   * The generation and member id of the client's last completed join (classic protocol): the commits of
   * owned partitions are sent in it, so a commit the group refuses for an older generation stays refused.
   */
  #as: CommitIdentity | undefined
  #sinceCommit = 0
  #running: Promise<void> | undefined
  #again = false
  readonly #inFlight = new Set<Promise<boolean>>()
  /** When a failed commit was last logged, and how many failed since without a warning. */
  #warnedAt = 0
  #failuresUnlogged = 0
  #timer: NodeJS.Timeout | undefined
  /** Records settled since the last commit that make the next one (strategy message: each; never: Infinity). */
  readonly #every: number

  constructor(init: CommitCoordinatorInit) {
    const { commitStrategy, commitEveryMessages } = init.config
    this.#every =
      commitStrategy === 'message'
        ? 1
        : commitStrategy === 'interval' && commitEveryMessages !== undefined
          ? commitEveryMessages
          : Number.POSITIVE_INFINITY
    this.#config = init.config
    this.#partitions = init.partitions
    this.#owns = init.owns
    this.#metrics = init.metrics
    this.#logger = init.logger
    this.#onCommit = init.onCommit
  }

  /** Commits go to `target` from now on (none are sent before). */
  attach(target: CommitTarget): void {
    this.#target = target
  }

  /** The client completed a join: owned partitions commit in that generation. */
  joined(generation: number, memberId: string): void {
    this.#as = { generation, memberId }
  }

  /** The generation and member id of the last completed join (classic protocol), if any. */
  get identity(): CommitIdentity | undefined {
    return this.#as
  }

  /** Starts the interval timer (interval strategy); it does not keep the process alive. */
  start(): void {
    if (this.#config.commitStrategy !== 'interval') return
    this.#timer = setInterval(() => void this.commit(), this.#config.commitIntervalMs)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  /** One record settled (counted for `commitEveryMessages`). */
  counted(): void {
    this.#sinceCommit++
  }

  /** After a record settled: commits now when the strategy says so. */
  afterSettle(): void {
    if (this.#sinceCommit >= this.#every) void this.commit()
  }

  /** A batch ended (batch strategy: commit). */
  afterBatch(): void {
    if (this.#config.commitStrategy === 'batch') void this.commit()
  }

  /** A partition has nothing in flight (batch strategy: commit when nothing is queued either). */
  partitionIdle(state: PartitionState): void {
    if (this.#config.commitStrategy === 'batch' && state.queue.size === 0) void this.commit()
  }

  /** Commits the settled offsets of owned partitions now (coalesced with one in flight). */
  commit(): Promise<void> {
    if (this.#running) {
      this.#again = true
      return this.#running
    }
    this.#running = this.commitOnce()
      .then(() => undefined)
      .finally(() => {
        this.#running = undefined
        if (this.#again) {
          this.#again = false
          void this.commit()
        }
      })
    return this.#running
  }

  /** One commit request for the settled offsets of `states`, tracked until its event was emitted. */
  commitOnce(states: Iterable<PartitionState> = this.#partitions.values()): Promise<boolean> {
    // `external`: the offsets are committed elsewhere (in a stage's transactions), never here.
    if (this.#config.commitStrategy === 'external') return Promise.resolve(true)
    const sending = this.#send(states)
    this.#inFlight.add(sending)
    void sending.finally(() => this.#inFlight.delete(sending))
    return sending
  }

  /** Settles once every commit sent so far was answered. */
  allSent(): Promise<unknown> {
    return Promise.allSettled(this.#inFlight)
  }

  /**
   * The last commit on stop: a rebalance under way (other members leaving too) fails it with a
   * retriable error; the client rejoins meanwhile, so it is tried again for the partitions still owned.
   */
  async lastCommit(): Promise<void> {
    await this.#running
    // A closed client (it failed the consumer) never commits again: no point retrying.
    for (let attempt = 1; attempt <= 10 && !(await this.commitOnce()) && !this.#target?.closed; attempt++) {
      await new Promise(resolve => setTimeout(resolve, Math.min(100 * 2 ** attempt, 1000)))
    }
  }

  /** May this partition's position be committed now? Owned, or being given up in this generation. */
  mayCommit(state: PartitionState): boolean {
    if (state.revokedIn !== undefined) return state.revokedIn === this.#target?.generationId
    return this.#owns(state.id) && this.#partitions.get(state.id) === state
  }

  async #send(states: Iterable<PartitionState>): Promise<boolean> {
    const target = this.#target
    if (!target) return true
    // Classic protocol: by generation (revoked partitions in the one they were given up in). The
    // consumer protocol commits through the client (it keeps the member epoch to itself).
    const classic = this.#config.groupProtocol === 'classic'
    const byIdentity = new Map<CommitIdentity | undefined, CommitEntry[]>()
    for (const state of states) {
      if (!this.mayCommit(state)) continue
      const pending = state.tracker.pending()
      if (!pending) continue
      const as = classic ? (state.revokedIn !== undefined ? state.revokedAs : this.#as) : undefined
      if (classic && as === undefined) continue
      let entries = byIdentity.get(as)
      if (entries === undefined) byIdentity.set(as, (entries = []))
      entries.push({ state, ...pending })
    }
    if (byIdentity.size === 0) return true
    this.#sinceCommit = 0
    let ok = true
    for (const [as, entries] of byIdentity) {
      if (!(await this.#sendEntries(target, as, entries))) ok = false
    }
    return ok
  }

  async #sendEntries(target: CommitTarget, as: CommitIdentity | undefined, entries: CommitEntry[]): Promise<boolean> {
    const offsets = entries.map(({ state, offset, leaderEpoch }) => ({
      topic: state.topic,
      partition: state.partition,
      offset,
      leaderEpoch
    }))
    const started = performance.now()
    try {
      await target.send(as, offsets)
    } catch (error) {
      this.#failed(entries.length, error)
      return false
    }
    const latencyMs = performance.now() - started
    for (const { state, offset } of entries) state.tracker.committed(offset)
    this.#metrics.recordCommit(latencyMs)
    this.#onCommit({
      offsets: entries.map(({ state, offset }) => ({ topic: state.topic, partition: state.partition, offset })),
      latencyMs
    })
    return true
  }

  /**
   * Not fatal: the records stay uncommitted and the next commit carries them (or they are redelivered).
   * While a coordinator moves every commit fails for a few seconds: one warning per COMMIT_WARN_MS,
   * counting the failures not logged since the last one (metrics().commitFailures has them all).
   */
  #failed(partitions: number, error: unknown): void {
    this.#metrics.commitFailures++
    const now = Date.now()
    if (now - this.#warnedAt < COMMIT_WARN_MS) {
      this.#failuresUnlogged++
      return
    }
    this.#logger.warn(
      {
        groupId: this.#config.groupId,
        partitions,
        err: describeKafkaError(error),
        ...(this.#failuresUnlogged > 0 ? { failedSinceLastWarning: this.#failuresUnlogged } : {})
      },
      'consumer: offset commit failed'
    )
    this.#warnedAt = now
    this.#failuresUnlogged = 0
  }
}

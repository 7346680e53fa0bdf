/**
 * Rebalance handling: which partitions the worker owns (the client's assignment, which the client
 * changes without a hook that could delay a rejoin), and each partition's state from its first record
 * to its release.
 *
 * - Eager (classic + roundrobin): when a rebalance starts, dispatching stops and what settled is
 *   committed at once (the group still accepts the old generation while it waits for its members), then
 *   again once in-flight work ended (up to `revokeDrainMs`); after the join, partitions kept go on and
 *   partitions lost are let go.
 * - Cooperative-sticky and KIP-848: a revoked partition stops dispatching and drops its queue, commits
 *   what settled at once, lets its in-flight work finish (up to `revokeDrainMs`), commits again while
 *   the generation has not moved on, then aborts what is left and announces 'revoked'. Assigned back
 *   meanwhile, its new state is held until then, and its 'assigned' follows that 'revoked'.
 */
import type { ConsumerMetricsRecorder } from './metrics.ts'
import type { CommitCoordinator } from './commit-coordinator.ts'
import type { RawRecord } from './decode.ts'
import type { Dispatcher } from './dispatcher.ts'
import { PartitionRevokedError } from './errors.ts'
import type { ConsumerConfig } from './options.ts'
import { PartitionState, partitionId, topicPartition, type TopicPartition } from './partition-state.ts'
import type { CallWatchdog } from './watchdog.ts'

/** What the rebalance handler reads off the group client. */
export interface GroupView {
  readonly generationId: number
  readonly memberId: string | null | undefined
  readonly assignments: readonly { topic: string; partitions: readonly number[] }[] | null | undefined
}

export interface RebalanceHost {
  /** The group client, once started. */
  group(): GroupView | undefined
  /** Whether the consumer is running (an eager rebalance pauses dispatching only then). */
  running(): boolean
  assigned(partitions: TopicPartition[]): void
  /** Partitions let go of (after their drain and last commit). */
  revoked(partitions: TopicPartition[]): void
  /** Records dropped from a revoked partition's queue: no longer buffered. */
  dropped(count: number): void
  /** A revoke dropped records: fetching may resume. */
  resume(): void
}

export interface RebalanceInit {
  config: Pick<ConsumerConfig, 'groupId' | 'groupProtocol' | 'assignor' | 'revokeDrainMs' | 'concurrency'>
  /** The live state of each partition, by id (shared with the other parts). */
  partitions: Map<string, PartitionState>
  commits: CommitCoordinator
  dispatcher: Dispatcher
  watchdog: CallWatchdog
  metrics: ConsumerMetricsRecorder
  host: RebalanceHost
}

export class RebalanceHandler {
  readonly #config: RebalanceInit['config']
  readonly #partitions: Map<string, PartitionState>
  readonly #commits: CommitCoordinator
  readonly #dispatcher: Dispatcher
  readonly #watchdog: CallWatchdog
  readonly #metrics: ConsumerMetricsRecorder
  readonly #host: RebalanceHost
  readonly #eager: boolean
  #owned = new Set<string>()
  /** Partitions being let go, by id: resolves once their 'revoked' event was emitted. */
  readonly #releasing = new Map<string, Promise<void>>()
  #rebalancing = false

  constructor(init: RebalanceInit) {
    this.#config = init.config
    this.#partitions = init.partitions
    this.#commits = init.commits
    this.#dispatcher = init.dispatcher
    this.#watchdog = init.watchdog
    this.#metrics = init.metrics
    this.#host = init.host
    this.#eager = init.config.groupProtocol === 'classic' && init.config.assignor === 'roundrobin'
  }

  /** An eager rebalance is under way: nothing is dispatched until the join. */
  get rebalancing(): boolean {
    return this.#rebalancing
  }

  /** Whether the client owns the partition (by id) now. */
  owns(id: string): boolean {
    return this.#owned.has(id)
  }

  /** A rebalance started. Eager: every partition may go, so drain and commit while the group waits. */
  onRebalance(): void {
    this.#metrics.rebalances++
    if (!this.#eager) {
      // Cooperative: told after the client took the assignment without the revoked partitions.
      this.#captureIdentity()
      this.reconcile()
      return
    }
    if (this.#rebalancing || !this.#host.running()) return
    this.#rebalancing = true
    void this.#commits.commit()
    void this.#dispatcher.waitForIdle(this.#config.revokeDrainMs).then(() => {
      if (this.#rebalancing) void this.#commits.commit()
    })
  }

  onJoin(): void {
    this.#captureIdentity()
    this.reconcile()
    if (this.#rebalancing) {
      this.#rebalancing = false
      this.#dispatcher.pump()
    }
  }

  /** Brings the partitions in line with the client's assignment: let go of what it no longer owns. */
  reconcile(): void {
    const group = this.#host.group()
    if (!group) return
    const owned = new Set<string>()
    for (const { topic, partitions } of group.assignments ?? []) {
      for (const partition of partitions) owned.add(partitionId(topic, partition))
    }
    const revoked: PartitionState[] = []
    for (const state of this.#partitions.values()) {
      if (state.revokedIn === undefined && !owned.has(state.id)) revoked.push(state)
    }
    const added = [...owned].filter(id => !this.#owned.has(id))
    this.#owned = owned
    // A partition assigned back while its earlier state is still being let go: its 'assigned' follows
    // that state's 'revoked', so listeners see revoke and assign in the order they happened.
    const now = added.filter(id => !this.#releasing.has(id))
    if (now.length > 0) this.#host.assigned(now.map(topicPartition))
    for (const id of added) {
      const prior = this.#releasing.get(id)
      if (prior !== undefined) void prior.then(() => this.#host.assigned([topicPartition(id)]))
    }
    for (const state of revoked) this.#revoke(state)
  }

  /** The live state of a fetched record's partition, created on its first record; undefined when not owned. */
  stateFor(record: RawRecord): PartitionState | undefined {
    const id = partitionId(record.topic, record.partition)
    if (!this.#owned.has(id)) {
      this.reconcile()
      // A fetch that was under way when the partition was revoked: not ours to handle.
      if (!this.#owned.has(id)) return undefined
    }
    const state = this.#partitions.get(id)
    return state === undefined || state.revokedIn !== undefined ? this.#open(record.topic, record.partition) : state
  }

  /** The client's generation and member id, once its view of the assignment is the one of that generation. */
  #captureIdentity(): void {
    const group = this.#host.group()
    if (group?.memberId) this.#commits.joined(group.generationId, group.memberId)
  }

  #open(topic: string, partition: number): PartitionState {
    const state = new PartitionState(topic, partition, this.#config.concurrency.mode, this.#config.groupId)
    // Revoke and stop abort the partition's controller; the running calls' own signals follow.
    this.#watchdog.watchPartition(state.controller.signal)
    this.#partitions.set(state.id, state)
    const prior = this.#releasing.get(state.id)
    if (prior !== undefined) {
      state.held = true
      void prior.then(() => {
        state.held = false
        this.#dispatcher.pump()
      })
    }
    return state
  }

  /** Gives up a partition: drop its queue, let in-flight work finish (budget), commit if still allowed, abort the rest. */
  #revoke(state: PartitionState): void {
    const group = this.#host.group()
    state.revokedIn = group?.generationId ?? -1
    // Cooperative protocols: in the generation that revoked it the partition belongs to nobody yet, so
    // its last commits go in that generation. Eager: it already belongs to its next owner there; what
    // settled was committed in the old generation while the group waited, and nothing more is sent.
    const memberId = group?.memberId
    state.revokedAs = memberId && !this.#eager ? { generation: state.revokedIn, memberId } : undefined
    // An earlier state of the partition still being let go announces its 'revoked' first.
    const prior = this.#releasing.get(state.id) ?? Promise.resolve()
    const released = Promise.withResolvers<void>()
    this.#releasing.set(state.id, released.promise)
    this.#host.dropped(state.queue.clear())
    // Commit what settled at once: the client rejoins right after telling us, and a commit sent after
    // the next generation formed is refused (ILLEGAL_GENERATION). In-flight work gets another try below.
    if (state.tracker.pending()) void this.#commits.commitOnce([state])
    // Always reached (a state held behind this one waits for it), whatever the commits did.
    const announce = () => {
      try {
        this.#host.revoked([{ topic: state.topic, partition: state.partition }])
      } finally {
        if (this.#releasing.get(state.id) === released.promise) this.#releasing.delete(state.id)
        released.resolve()
      }
    }
    const letGo = () => {
      state.onIdle = undefined
      clearTimeout(timer)
      void this.#commits
        .commitOnce([state])
        .then(() => {
          // From here on no commit for this partition is sent until it is assigned again; the ones
          // already sent (the revoke's first, the interval's) land before the partition is let go.
          state.revokedIn = Number.NaN
          if (this.#partitions.get(state.id) === state) this.#partitions.delete(state.id)
          return this.#commits.allSent()
        })
        .finally(() => {
          state.controller.abort(new PartitionRevokedError(`${state.topic}/${state.partition} was revoked`))
          return prior
        })
        .then(announce, announce)
    }
    const timer = setTimeout(letGo, this.#config.revokeDrainMs)
    if (state.queue.inFlight === 0) letGo()
    else state.onIdle = letGo
    this.#host.resume()
  }
}

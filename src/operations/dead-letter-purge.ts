/**
 * Purging a dead-letter topic: records before an offset are deleted per partition (Kafka's
 * DeleteRecords: the partition's earliest offset moves up; nothing is rewritten). A plan comes first:
 * per partition the current earliest and end offsets and how many offsets go, and, from the replay
 * ledger, how many of the records to delete were never replayed, so a purge does not silently throw
 * away dead letters nobody looked at. `dryRun` stops after the plan.
 */
import { Admin } from '../kafka/client.ts'
import { clientOptionsOf, pickConnection, type ConnectionOptions } from '../kafka/connection.ts'
import { KafkitError, type KafkitErrorOptions } from '../errors/kafkit-error.ts'
import { TopicNotFoundError } from '../topology/retry-topics.ts'
import { readReplayLedger, replayLedgerTopic } from './dead-letter-replay.ts'
import { readTopicSnapshot, snapshotRanges, type PartitionRange } from './topic-snapshot.ts'

/** Deleting records was refused, or the request names an offset or partition the topic does not have. */
export class PurgeError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_DLQ_PURGE_FAILED', message, options)
  }
}

export interface PurgeOptions extends ConnectionOptions {
  signal?: AbortSignal | undefined
  /** The dead-letter topic. */
  topic: string
  /**
   * Delete the records before this offset (exclusive): one offset for every partition (capped at each
   * partition's end), per partition (past a partition's end is an error; partitions not listed are
   * kept), or `'end'` for everything present now.
   */
  before: bigint | ReadonlyMap<number, bigint> | 'end'
  /** Plan only: nothing is deleted. */
  dryRun?: boolean
  /** Count the records to delete that the replay ledger does not hold (reads them). Default true. */
  checkLedger?: boolean
  /** Default `<topic>.replayed`. */
  ledgerTopic?: string
  /** Called with the plan before anything is deleted; false cancels. */
  confirm?: (plan: PurgePlan) => boolean | Promise<boolean>
}

export interface PartitionPurge {
  partition: number
  /** Earliest offset before the purge. */
  earliest: bigint
  /** End offset (next to be written) when planned. */
  end: bigint
  /** Records before this offset go. */
  before: bigint
  /** Offsets deleted (`before - earliest`; transaction markers count as offsets too). */
  offsets: bigint
  /** Earliest offset after the purge (from the broker; absent for a dry run). */
  earliestAfter?: bigint
}

export interface PurgePlan {
  topic: string
  partitions: PartitionPurge[]
  /** Offsets to delete over all partitions. */
  offsets: bigint
  /** Records to delete that the replay ledger does not hold; undefined when not checked. */
  neverReplayed: number | undefined
}

export interface PurgeResult extends PurgePlan {
  dryRun: boolean
  confirmed: boolean
  /** True once the broker deleted the records. */
  purged: boolean
}

export async function purgeDeadLetters(options: PurgeOptions): Promise<PurgeResult> {
  const { topic } = options
  const admin = new Admin(clientOptionsOf(options, 'kafkit-dlq-purge'))
  try {
    if (!(await admin.listTopics({ includeInternals: false })).includes(topic)) {
      throw new TopicNotFoundError(topic, 'check the name of the dead-letter topic (kafkit dlq list)')
    }
    const ranges = await snapshotRanges({ ...pickConnection(options), topic })
    const partitions = purgePartitions(topic, ranges, options.before)
    const plan: PurgePlan = {
      topic,
      partitions,
      offsets: partitions.reduce((sum, p) => sum + p.offsets, 0n),
      neverReplayed: options.checkLedger === false ? undefined : await countNeverReplayed(admin, options, partitions)
    }
    const result = (confirmed: boolean, purged: boolean): PurgeResult => ({
      ...plan,
      dryRun: options.dryRun ?? false,
      confirmed,
      purged
    })
    if (options.dryRun || partitions.length === 0) return result(true, false)
    if (options.confirm && !(await options.confirm(plan))) return result(false, false)
    options.signal?.throwIfAborted()
    let deleted
    try {
      deleted = await admin.deleteRecords({
        topics: [{ name: topic, partitions: partitions.map(p => ({ partition: p.partition, offset: p.before })) }]
      })
    } catch (error) {
      throw new PurgeError(`deleting records of ${topic} failed: ${(error as Error).message}`, {
        cause: error,
        details: { topic }
      })
    }
    const low = new Map(deleted.find(t => t.name === topic)?.partitions.map(p => [p.partition, p.lowWatermark]) ?? [])
    for (const p of partitions) {
      const after = low.get(p.partition)
      if (after !== undefined) p.earliestAfter = after
    }
    return result(true, true)
  } finally {
    await admin.close()
  }
}

/** What to delete in each partition; throws PurgeError for a partition or offset that cannot be. */
function purgePartitions(topic: string, ranges: PartitionRange[], before: PurgeOptions['before']): PartitionPurge[] {
  const known = new Set(ranges.map(r => r.partition))
  if (typeof before === 'object') {
    for (const [partition, offset] of before.entries()) {
      if (!known.has(partition)) {
        throw new PurgeError(`${topic} has no partition ${partition} (it has ${ranges.length})`, {
          details: { topic, partition }
        })
      }
      if (offset < 0n) throw new PurgeError(`offset ${offset} for partition ${partition} is negative`)
    }
  } else if (typeof before === 'bigint' && before < 0n) {
    throw new PurgeError(`offset ${before} is negative`)
  }
  const partitions: PartitionPurge[] = []
  for (const range of ranges) {
    const earliest = range.start
    let target: bigint
    if (before === 'end') target = range.end
    else if (typeof before === 'bigint') target = before < range.end ? before : range.end
    else {
      const wanted = before.get(range.partition)
      if (wanted === undefined) continue
      if (wanted > range.end) {
        throw new PurgeError(
          `partition ${range.partition} of ${topic} ends at offset ${range.end}: cannot delete before ${wanted}; use ${range.partition}:${range.end} to delete all of it`,
          { details: { topic, partition: range.partition, end: range.end.toString() } }
        )
      }
      target = wanted
    }
    if (target <= earliest) continue
    partitions.push({
      partition: range.partition,
      earliest,
      end: range.end,
      before: target,
      offsets: target - earliest
    })
  }
  return partitions
}

async function countNeverReplayed(admin: Admin, options: PurgeOptions, partitions: PartitionPurge[]): Promise<number> {
  if (partitions.length === 0) return 0
  const ledgerTopic = options.ledgerTopic ?? replayLedgerTopic(options.topic)
  const topics = await admin.listTopics({ includeInternals: false })
  const metadata = await admin.metadata({ topics: [options.topic], forceUpdate: true })
  const dlqTopicId = metadata.topics.get(options.topic)?.id ?? ''
  const ledger = topics.includes(ledgerTopic)
    ? await readReplayLedger({
        ...pickConnection(options),
        ...(options.signal ? { signal: options.signal } : {}),
        ledgerTopic,
        dlqTopicId
      })
    : new Map()
  let never = 0
  for await (const record of readTopicSnapshot({
    ...pickConnection(options),
    topic: options.topic,
    partitions: partitions.map(p => p.partition),
    from: new Map(partitions.map(p => [p.partition, p.earliest])),
    until: new Map(partitions.map(p => [p.partition, p.before])),
    ...(options.signal ? { signal: options.signal } : {})
  })) {
    if (!ledger.has(`${record.partition}@${record.offset}`)) never++
  }
  return never
}

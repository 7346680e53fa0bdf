/**
 * Replaying dead letters: selected DLQ records go back to their origin topic (or another) with their
 * original key, value and headers (Kafkit's `kafkit-dlq-*` headers stripped), plus `kafkit-replay-of`
 * naming the DLQ record and, for a replay meant for one consumer group, `kafkit-replay-group` (Kafkit
 * consumers of other groups skip such a record).
 *
 * A record is replayed once: a ledger topic (`<dlq>.replayed`, compacted, keyed `<partition>@<offset>`)
 * remembers what was replayed, and each replayed record is written in the same Kafka transaction as
 * its ledger entry, so a crash leaves both or neither. A replay reads the ledger after its
 * transactional producer registered (which fences an earlier replay of the same DLQ still running), so
 * two replays of one DLQ cannot both publish a record either. `force` replays records the ledger
 * already holds; `dryRun` reads and plans but publishes nothing (and creates nothing).
 */
import { Admin, ClientProducer, type MessageToProduce } from '../kafka/client.ts'
import { originalHeaderEntries } from '../handling/dead-letter.ts'
import { KafkitError, type KafkitErrorOptions } from '../errors/kafkit-error.ts'
import { REPLAY_HEADER_PREFIX, ReplayHeader } from '../message/wire-format.ts'
import { internalProducerRetries } from '../producer/delivery-policy.ts'
import { keyPartition } from '../producer/murmur2.ts'
import { planTopicsWith, applyTopicPlanWith } from '../topology/topic-plan.ts'
import { clientOptionsOf, pickConnection, type ConnectionOptions } from '../kafka/connection.ts'
import { TopicNotFoundError } from '../topology/retry-topics.ts'
import { listDeadLetters, type DeadLetterEntry, type DeadLetterFilter } from './dead-letter-inspector.ts'
import { readTopicSnapshot } from './topic-snapshot.ts'

export { REPLAY_HEADER_PREFIX, ReplayHeader }
export const REPLAY_LEDGER_VERSION = 1

/** The ledger of a DLQ: `<dlqTopic>.replayed`. */
export function replayLedgerTopic(dlqTopic: string): string {
  return `${dlqTopic}.replayed`
}

/** `kafkit-replay-of`'s value for a DLQ record. */
export function replayOfValue(dlqTopic: string, partition: number, offset: bigint): string {
  return `${dlqTopic}/${partition}@${offset}`
}

/** A replay batch was not committed; earlier batches stay replayed (and in the ledger). */
export class ReplayError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_DLQ_REPLAY_FAILED', message, options)
  }
}

/** One ledger entry: the value of `<partition>@<offset>` in the ledger topic (JSON). */
export interface ReplayLedgerEntry {
  v: number
  dlqTopic: string
  /** Kafka's id of the DLQ topic: entries of an earlier topic of the same name are ignored. */
  dlqTopicId: string
  partition: number
  offset: string
  /** Where the record was replayed to. */
  target: string
  targetPartition: number
  group: string | null
  /** ISO 8601. */
  replayedAt: string
  /** How many times this DLQ record was replayed (more than 1 only with force). */
  count: number
}

export type ReplayStatus = 'replay' | 'already-replayed' | 'unreplayable'

export interface ReplayItem {
  entry: DeadLetterEntry
  /** `replay`: will be (or was) published; `already-replayed`: in the ledger, skipped; `unreplayable`: see reason. */
  status: ReplayStatus
  /** Target topic and partition (for `replay` and `already-replayed` items). */
  target?: string
  targetPartition?: number
  reason?: string
  /** The ledger's entry for this record, when it was replayed before. */
  previous?: ReplayLedgerEntry
}

export interface ReplayProgress {
  phase: 'reading' | 'replaying'
  /** Records read (reading) or published (replaying). */
  done: number
  /** Records to publish (replaying only). */
  total?: number
}

export interface ReplayOptions extends ConnectionOptions {
  signal?: AbortSignal | undefined
  /** The dead-letter topic. */
  topic: string
  filter?: DeadLetterFilter
  /**
   * Only records dead-lettered by this consumer group; the replayed records carry
   * `kafkit-replay-group` so other groups' Kafkit consumers skip them.
   */
  groupId?: string
  /** Target topic for every record. Default: each record's origin topic. */
  to?: string
  /** Replay records the ledger says were replayed already. */
  force?: boolean
  /** Plan only: nothing is created or published. */
  dryRun?: boolean
  /** Records per transaction (default 200). */
  batchSize?: number
  /** Called with the plan before anything is published; false cancels (nothing published). */
  confirm?: (plan: ReplayPlanSummary) => boolean | Promise<boolean>
  onProgress?: (progress: ReplayProgress) => void
  /** Default `<topic>.replayed`. */
  ledgerTopic?: string
  /** Default `kafkit-dlq-replay.<topic>`: one per DLQ, so concurrent replays of one DLQ fence each other. */
  transactionalId?: string
}

export interface ReplayPlanSummary {
  dlqTopic: string
  ledgerTopic: string
  scanned: number
  selected: number
  toReplay: number
  alreadyReplayed: number
  unreplayable: number
  /** Records to publish per target topic. */
  targets: { topic: string; count: number }[]
  group: string | undefined
  force: boolean
}

export interface ReplayResult extends ReplayPlanSummary {
  items: ReplayItem[]
  /** Records published (0 for a dry run or a declined confirmation). */
  replayed: number
  dryRun: boolean
  /** False when `confirm` declined. */
  confirmed: boolean
}

const decoder = new TextDecoder('utf-8', { fatal: true })

function parseLedgerValue(value: Buffer | null | undefined): ReplayLedgerEntry | undefined {
  if (!value || value.length === 0) return undefined
  try {
    const parsed = JSON.parse(decoder.decode(value)) as Partial<ReplayLedgerEntry>
    if (typeof parsed.dlqTopicId !== 'string' || typeof parsed.offset !== 'string') return undefined
    return parsed as ReplayLedgerEntry
  } catch {
    return undefined
  }
}

/** What the ledger holds for `dlqTopicId`: `<partition>@<offset>` → entry (compaction's view, latest wins). */
export async function readReplayLedger(
  options: ConnectionOptions & { signal?: AbortSignal | undefined; ledgerTopic: string; dlqTopicId: string }
): Promise<Map<string, ReplayLedgerEntry>> {
  const ledger = new Map<string, ReplayLedgerEntry>()
  for await (const record of readTopicSnapshot({ ...options, topic: options.ledgerTopic })) {
    const key = record.key?.toString('utf8')
    if (key === undefined) continue
    const entry = parseLedgerValue(record.value)
    // A tombstone (null value) forgets the key; an entry of another topic id belongs to a deleted DLQ.
    if (entry === undefined) ledger.delete(key)
    else if (entry.dlqTopicId === options.dlqTopicId) ledger.set(key, entry)
  }
  return ledger
}

interface TopicFacts {
  id: string
  partitions: number
  replicas: number
}

async function describeTopics(admin: Admin, topics: string[]): Promise<Map<string, TopicFacts>> {
  const existing = new Set(await admin.listTopics({ includeInternals: false }))
  const present = topics.filter(t => existing.has(t))
  const facts = new Map<string, TopicFacts>()
  if (present.length === 0) return facts
  const metadata = await admin.metadata({ topics: present, forceUpdate: true })
  for (const topic of present) {
    const info = metadata.topics.get(topic)
    if (info) {
      facts.set(topic, {
        id: info.id,
        partitions: info.partitionsCount,
        replicas: info.partitions[0]?.replicas.length ?? 1
      })
    }
  }
  return facts
}

function summarize(options: ReplayOptions, ledgerTopic: string, scanned: number, items: ReplayItem[]) {
  const targets = new Map<string, number>()
  for (const item of items) {
    if (item.status === 'replay' && item.target) targets.set(item.target, (targets.get(item.target) ?? 0) + 1)
  }
  return {
    dlqTopic: options.topic,
    ledgerTopic,
    scanned,
    selected: items.length,
    toReplay: items.filter(i => i.status === 'replay').length,
    alreadyReplayed: items.filter(i => i.status === 'already-replayed').length,
    unreplayable: items.filter(i => i.status === 'unreplayable').length,
    targets: [...targets].map(([topic, count]) => ({ topic, count })).sort((a, b) => b.count - a.count),
    group: options.groupId,
    force: options.force ?? false
  }
}

type ReplayProducer = ClientProducer<Buffer, Buffer, Buffer, Buffer>
type ReplayTransaction = Awaited<ReturnType<ReplayProducer['beginTransaction']>>

const REPLAY_CLIENT_ID = 'kafkit-dlq-replay'

/** Selects, plans and (unless a dry run or declined) replays dead-letter records. See the module doc. */
export async function replayDeadLetters(options: ReplayOptions): Promise<ReplayResult> {
  const dlqTopic = options.topic
  const ledgerTopic = options.ledgerTopic ?? replayLedgerTopic(dlqTopic)
  const dryRun = options.dryRun ?? false
  const batchSize = options.batchSize ?? 200
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ReplayError(`batchSize must be a whole number >= 1, got ${batchSize}`)
  }
  const admin = new Admin(clientOptionsOf(options, REPLAY_CLIENT_ID))
  let producer: ReplayProducer | undefined
  try {
    const facts = await replayTopicFacts(admin, options, ledgerTopic)
    const dlq = facts.get(dlqTopic)
    if (!dlq) throw new TopicNotFoundError(dlqTopic, 'check the name of the dead-letter topic (kafkit dlq list)')
    let tx: ReplayTransaction | undefined
    if (!dryRun) {
      if (!facts.has(ledgerTopic)) await createLedgerTopic(admin, ledgerTopic, dlq.replicas)
      producer = openReplayProducer(options, dlqTopic)
      // Registering the transactional id fences an earlier replay of this DLQ that still runs (its
      // open transaction is aborted); reading the ledger after that sees everything it committed.
      // Producer id and epoch -1 ask for a fresh registration: the client's default (0, 0) is refused
      // with PRODUCER_FENCED once the id was used before, i.e. on every replay after the first.
      tx = await producer.beginTransaction({ producerId: -1n, producerEpoch: -1 })
    }
    const ledger =
      facts.has(ledgerTopic) || !dryRun
        ? await readReplayLedger({
            ...pickConnection(options),
            signal: options.signal,
            ledgerTopic,
            dlqTopicId: dlq.id
          })
        : new Map<string, ReplayLedgerEntry>()
    const { items, scanned } = await planReplay(admin, options, facts, ledger)
    const summary = summarize(options, ledgerTopic, scanned, items)
    const result = (replayed: number, confirmed: boolean): ReplayResult => ({
      ...summary,
      items,
      replayed,
      dryRun,
      confirmed
    })
    const toReplay = items.filter(i => i.status === 'replay')
    if (dryRun || !producer || !tx) return result(0, true)
    if (toReplay.length === 0 || (options.confirm && !(await options.confirm(summary)))) {
      await tx.cancel()
      return result(0, toReplay.length === 0)
    }
    const target = { producer, tx, dlqTopicId: dlq.id, ledgerTopic, batchSize }
    return result(await publishReplay(options, toReplay, target), true)
  } finally {
    await producer?.close().catch(() => undefined)
    await admin.close()
  }
}

/** The DLQ, ledger and target topics that exist; a missing partition or target is an error here. */
async function replayTopicFacts(
  admin: Admin,
  options: ReplayOptions,
  ledgerTopic: string
): Promise<Map<string, TopicFacts>> {
  const dlqTopic = options.topic
  const facts = await describeTopics(admin, [dlqTopic, ledgerTopic, ...(options.to === undefined ? [] : [options.to])])
  const dlq = facts.get(dlqTopic)
  if (!dlq) return facts
  if (options.to !== undefined && !facts.has(options.to)) {
    throw new TopicNotFoundError(options.to, 'the replay target must exist; create it or pick another with --to')
  }
  for (const p of options.filter?.partitions ?? []) {
    if (!Number.isInteger(p) || p < 0 || p >= dlq.partitions) {
      throw new ReplayError(`${dlqTopic} has no partition ${p} (it has ${dlq.partitions})`)
    }
  }
  return facts
}

async function createLedgerTopic(admin: Admin, ledgerTopic: string, replicas: number): Promise<void> {
  const spec = {
    name: ledgerTopic,
    partitions: 1,
    replicationFactor: replicas,
    configs: { 'cleanup.policy': 'compact' }
  }
  const plan = await planTopicsWith(admin, [spec])
  // The ledger is Kafkit's own bookkeeping: its name is not meant to follow the
  // `<domain>.<entity>.<event-type>` naming convention. Another replay may create it at the same
  // moment; that one is as good as ours.
  await applyTopicPlanWith(admin, { entries: plan.entries.filter(e => e.action === 'create'), warnings: [] }).catch(
    async (error: unknown) => {
      if (!(await admin.listTopics({ includeInternals: false })).includes(ledgerTopic)) throw error
    }
  )
}

function openReplayProducer(options: ReplayOptions, dlqTopic: string): ReplayProducer {
  return new ClientProducer<Buffer, Buffer, Buffer, Buffer>({
    ...clientOptionsOf(options, REPLAY_CLIENT_ID),
    ...internalProducerRetries(),
    idempotent: true,
    transactionalId: options.transactionalId ?? `kafkit-dlq-replay.${dlqTopic}`,
    acks: -1,
    timeout: 60_000
  })
}

/** Reads the selected dead letters and decides, for each, whether and where it is replayed. */
async function planReplay(
  admin: Admin,
  options: ReplayOptions,
  facts: Map<string, TopicFacts>,
  ledger: Map<string, ReplayLedgerEntry>
): Promise<{ items: ReplayItem[]; scanned: number }> {
  const filter: DeadLetterFilter = {
    ...options.filter,
    ...(options.groupId === undefined ? {} : { groupId: options.groupId })
  }
  const listing = await listDeadLetters({
    ...pickConnection(options),
    topic: options.topic,
    filter,
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: done => options.onProgress?.({ phase: 'reading', done })
  })
  // Targets named by the records themselves (their origin topics) are looked up once.
  const origins = [...new Set(listing.entries.flatMap(e => (e.info ? [e.info.originTopic] : [])))]
  const targetFacts =
    options.to === undefined ? await describeTopics(admin, origins) : new Map([[options.to, facts.get(options.to)]])
  const rotation = new Map<string, number>()
  const items = listing.entries.map(entry => planItem(entry, options, targetFacts, ledger, rotation))
  return { items, scanned: listing.scanned }
}

function planItem(
  entry: DeadLetterEntry,
  options: ReplayOptions,
  targetFacts: Map<string, TopicFacts | undefined>,
  ledger: Map<string, ReplayLedgerEntry>,
  rotation: Map<string, number>
): ReplayItem {
  const target = options.to ?? entry.info?.originTopic
  if (target === undefined) {
    return {
      entry,
      status: 'unreplayable',
      reason: `not a Kafkit dead-letter record (${entry.foreignReason ?? 'no headers'}), so its origin is unknown: replay it with a target topic (--to)`
    }
  }
  const targetInfo = targetFacts.get(target)
  if (!targetInfo) return { entry, status: 'unreplayable', target, reason: `target topic ${target} does not exist` }
  let targetPartition: number
  if (entry.info && target === entry.info.originTopic && entry.info.originPartition < targetInfo.partitions) {
    targetPartition = entry.info.originPartition
  } else if (entry.key !== null) {
    targetPartition = keyPartition(entry.key, targetInfo.partitions)
  } else {
    const next = rotation.get(target) ?? 0
    rotation.set(target, next + 1)
    targetPartition = next % targetInfo.partitions
  }
  const previous = ledger.get(`${entry.partition}@${entry.offset}`)
  if (previous && !options.force) return { entry, status: 'already-replayed', target, targetPartition, previous }
  return { entry, status: 'replay', target, targetPartition, ...(previous ? { previous } : {}) }
}

/** Publishes the records in transactions of `batchSize`, each with its ledger entries; the count published. */
async function publishReplay(
  options: ReplayOptions,
  toReplay: ReplayItem[],
  target: {
    producer: ReplayProducer
    tx: ReplayTransaction
    dlqTopicId: string
    ledgerTopic: string
    batchSize: number
  }
): Promise<number> {
  const dlqTopic = options.topic
  const { producer, dlqTopicId, ledgerTopic, batchSize } = target
  let tx: ReplayTransaction | undefined = target.tx
  let replayed = 0
  options.onProgress?.({ phase: 'replaying', done: 0, total: toReplay.length })
  for (let start = 0; start < toReplay.length; start += batchSize) {
    options.signal?.throwIfAborted()
    const batch = toReplay.slice(start, start + batchSize)
    tx ??= await producer.beginTransaction()
    const now = new Date().toISOString()
    const messages: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[] = []
    for (const item of batch) messages.push(replayMessage(item, dlqTopic, options.groupId))
    for (const item of batch)
      messages.push(ledgerMessage(item, dlqTopic, dlqTopicId, ledgerTopic, options.groupId, now))
    try {
      await tx.send({ messages })
      await tx.commit()
    } catch (error) {
      const current = tx
      await current.abort().catch(() => current.cancel().catch(() => undefined))
      throw new ReplayError(
        `replaying ${dlqTopic} stopped after ${replayed} of ${toReplay.length} record(s): a batch of ${batch.length} was not committed (${describe(error)}); its records were not published. Run the replay again: the ledger skips what was replayed`,
        { cause: error, details: { dlqTopic, replayed, total: toReplay.length } }
      )
    }
    tx = undefined
    replayed += batch.length
    options.onProgress?.({ phase: 'replaying', done: replayed, total: toReplay.length })
  }
  return replayed
}

/** The error's message with the innermost one the client nested in it, and a hint when fenced. */
function describe(error: unknown): string {
  const messages: string[] = []
  let current: unknown = error
  for (let depth = 0; depth < 6 && current instanceof Error; depth++) {
    messages.push(current.message)
    const nested = (current as Error & { errors?: unknown[] }).errors
    current = Array.isArray(nested) && nested.length > 0 ? nested[0] : current.cause
  }
  if (messages.length === 0) return String(error)
  const text = messages.length > 1 ? `${messages[0]}: ${messages.at(-1)}` : (messages[0] ?? '')
  const fenced = messages.some(m => /fence|newer producer|old epoch/i.test(m))
  return fenced ? `${text} (another replay of this DLQ started and took over)` : text
}

/** The record a replay publishes: original key, value and headers, old replay headers replaced. */
export function replayMessage(
  item: ReplayItem,
  dlqTopic: string,
  group: string | undefined
): MessageToProduce<Buffer, Buffer, Buffer, Buffer> {
  const { entry } = item
  // Each name its own Buffer, so a repeated original header stays repeated in the Map.
  const headers = new Map<Buffer, Buffer>()
  for (const [name, value] of originalHeaderEntries(entry.headerEntries)) {
    // A record replayed before and dead-lettered again: its old replay headers give way to the new ones.
    if (!name.startsWith(REPLAY_HEADER_PREFIX)) headers.set(Buffer.from(name, 'utf8'), value)
  }
  headers.set(
    Buffer.from(ReplayHeader.replayOf, 'utf8'),
    Buffer.from(replayOfValue(dlqTopic, entry.partition, entry.offset), 'utf8')
  )
  if (group !== undefined) headers.set(Buffer.from(ReplayHeader.group, 'utf8'), Buffer.from(group, 'utf8'))
  return {
    topic: item.target ?? '',
    ...(item.targetPartition === undefined ? {} : { partition: item.targetPartition }),
    ...(entry.key === null ? {} : { key: entry.key }),
    // A null value stays null (the client writes no bytes for it).
    value: entry.value as Buffer,
    headers
  }
}

function ledgerMessage(
  item: ReplayItem,
  dlqTopic: string,
  dlqTopicId: string,
  ledgerTopic: string,
  group: string | undefined,
  replayedAt: string
): MessageToProduce<Buffer, Buffer, Buffer, Buffer> {
  const { entry } = item
  const value: ReplayLedgerEntry = {
    v: REPLAY_LEDGER_VERSION,
    dlqTopic,
    dlqTopicId,
    partition: entry.partition,
    offset: entry.offset.toString(),
    target: item.target ?? '',
    targetPartition: item.targetPartition ?? -1,
    group: group ?? null,
    replayedAt,
    count: (item.previous?.count ?? 0) + 1
  }
  return {
    topic: ledgerTopic,
    partition: 0,
    key: Buffer.from(`${entry.partition}@${entry.offset}`, 'utf8'),
    value: Buffer.from(JSON.stringify(value), 'utf8')
  }
}

/**
 * Broker failover on the 3-node local cluster, shared by the failover test and `npm run bench:failover`:
 * a fault schedule (a node SIGKILLed and restarted, or SIGSTOPped past the brokers' session timeout and
 * resumed, one node at a time, the leader of a partition each time) and a paced producer of numbered
 * records whose every send and outcome is kept in a ledger.
 */
import { Admin } from '@platformatic/kafka'
import { pauseNode, stopNode, type LocalKafkaCluster } from '../../src/testing/local-kafka.ts'
import type { Producer } from '../../src/producer/producer.ts'
import { readTopic } from './read-topic.ts'
import { restartWhenPortFree } from './restart-nodes.ts'
import { sleep } from './wait.ts'

export type FaultKind = 'kill' | 'stop'

export interface Fault {
  kind: FaultKind
  node: number
  /** When the fault began and ended, in ms since the schedule started. */
  at: number
  healedAt: number
}

export interface FaultPlan {
  faults: FaultKind[]
  /** Quiet time before the first fault and after each one healed (a function: drawn each time). */
  gapMs: number | (() => number)
  /** How long a killed node stays down, or a stopped one frozen (past the 3 s session timeout). */
  downMs: number
}

/** The leader of `partition` of `topic` as the live nodes see it. */
export async function leaderOf(brokers: string[], topic: string, partition: number): Promise<number> {
  const admin = new Admin({ clientId: 'kafkit-failover', bootstrapBrokers: brokers })
  try {
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true })
    return metadata.topics.get(topic)?.partitions[partition]?.leader ?? 1
  } finally {
    await admin.close()
  }
}

/** Runs the faults one after the other, each on the node leading the next partition in turn. */
export async function runFaults(
  cluster: LocalKafkaCluster,
  topic: string,
  plan: FaultPlan,
  log: (line: string) => void = () => undefined,
  /** Checked before each fault: true ends the schedule early (the workload is over). */
  over: () => boolean = () => false
): Promise<Fault[]> {
  const started = Date.now()
  const done: Fault[] = []
  const gap = () => (typeof plan.gapMs === 'number' ? plan.gapMs : plan.gapMs())
  for (const [i, kind] of plan.faults.entries()) {
    await sleep(gap())
    if (over()) break
    const node = await leaderOf(cluster.brokers, topic, i)
    const at = Date.now() - started
    log(`fault ${i + 1}: ${kind} node ${node}`)
    if (kind === 'kill') {
      await stopNode(cluster, node, 'SIGKILL')
      await sleep(plan.downMs)
      await restartWhenPortFree(cluster)
    } else {
      pauseNode(cluster, node, true)
      try {
        await sleep(plan.downMs)
      } finally {
        pauseNode(cluster, node, false)
      }
    }
    done.push({ kind, node, at, healedAt: Date.now() - started })
    log(`fault ${i + 1}: node ${node} back`)
  }
  if (!over()) await sleep(gap())
  return done
}

export interface SendRecord {
  id: number
  key: string
  /** Send time and acknowledgement (or failure) time, ms since the producer started. */
  sentAt: number
  doneAt: number
  ok: boolean
  error?: string
}

/** A value of the paced producer: its id, so the topic can be checked record by record. */
export interface Numbered {
  id: number
  key: string
}

/**
 * Sends `{ id, key }` records with `sendBatch` calls of `batch`, at `perSecond`, until `until` settles
 * or `count` records were sent, without waiting for earlier batches (a stalled batch does not slow the
 * pace), and records each message's outcome and latency.
 */
export async function pacedSends(
  producer: Producer<Numbered>,
  options: { perSecond: number; batch: number; keys: number; until?: Promise<unknown>; count?: number }
): Promise<SendRecord[]> {
  const ledger: SendRecord[] = []
  const pending: Promise<void>[] = []
  let stop = false
  void options.until?.finally(() => (stop = true))
  const started = performance.now()
  let next = 0
  const intervalMs = (1000 * options.batch) / options.perSecond
  for (let round = 0; !stop; round++) {
    const values: Numbered[] = []
    for (let i = 0; i < options.batch; i++, next++) values.push({ id: next, key: `k${next % options.keys}` })
    const sentAt = performance.now() - started
    pending.push(
      producer.sendBatch(values.map(value => ({ key: value.key, value }))).then(outcomes => {
        const doneAt = performance.now() - started
        outcomes.forEach((outcome, i) => {
          const { id, key } = values[i] as Numbered
          ledger.push(
            outcome.ok
              ? { id, key, sentAt, doneAt, ok: true }
              : { id, key, sentAt, doneAt, ok: false, error: outcome.error.message }
          )
        })
      })
    )
    if (options.count !== undefined && next >= options.count) break
    const wait = started + (round + 1) * intervalMs - performance.now()
    if (wait > 0) await sleep(wait)
  }
  await Promise.all(pending)
  return ledger.sort((a, b) => a.id - b.id)
}

export interface Percentiles {
  p50: number
  p99: number
  max: number
}

export function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
  return { p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? 0 }
}

export interface ReadBack {
  /** Records the topic holds. */
  records: number
  /** Acknowledged ids missing from the topic. */
  lost: number[]
  /** Ids the topic holds more than once. */
  duplicates: number[]
  /** Keys whose ids go backwards in the topic. */
  outOfOrderKeys: string[]
}

/** Reads the topic back (at least the acknowledged records, then a quiet spell) and checks it against the ledger. */
export async function readBack(brokers: string[], topic: string, ledger: SendRecord[]): Promise<ReadBack> {
  const acknowledged = ledger.filter(entry => entry.ok).length
  const read = (await readTopic(brokers, topic, acknowledged, { timeoutMs: 120_000, quietMs: 2000 })).map(record => ({
    ...(JSON.parse(record.value.toString()) as Numbered),
    partition: record.partition,
    offset: record.offset
  }))
  return { records: read.length, ...checkReadBack(ledger, read) }
}

function checkReadBack(
  ledger: SendRecord[],
  read: { key: string; id: number; partition: number; offset: bigint }[]
): Omit<ReadBack, 'records'> {
  const seen = new Map<number, number>()
  for (const record of read) seen.set(record.id, (seen.get(record.id) ?? 0) + 1)
  const lost = ledger.filter(entry => entry.ok && !seen.has(entry.id)).map(entry => entry.id)
  const duplicates = [...seen].filter(([, n]) => n > 1).map(([id]) => id)
  const lastByKey = new Map<string, number>()
  const outOfOrder = new Set<string>()
  const ordered = [...read].sort((a, b) => a.partition - b.partition || (a.offset < b.offset ? -1 : 1))
  for (const record of ordered) {
    const last = lastByKey.get(record.key)
    if (last !== undefined && record.id < last) outOfOrder.add(record.key)
    lastByKey.set(record.key, Math.max(last ?? -1, record.id))
  }
  return { lost, duplicates, outOfOrderKeys: [...outOfOrder] }
}

/**
 * `npm run bench:failover`: what a producer with every default does while one node of three at a
 * time is SIGKILLed and restarted: failed sends, acknowledged records lost, duplicates, per-key order,
 * and send latency p50/p99/max during the faults and in steady state. Kafka's own Java producer
 * (org.apache.kafka.tools.ProducerPerformance, acks=all and idempotence by default) runs the same
 * workload under the same kind of faults in the same run, as the reference.
 *
 * Each client gets a fresh topic (6 partitions, replication 3, min.insync.replicas 2) on a 3-node local
 * cluster started for the run (port 24092), RECORDS records of about 100 bytes at RATE records/s in
 * batches of 500, and FAULTS kills: a random gap of GAP_MIN_MS..GAP_MAX_MS, the leader of the next
 * partition SIGKILLed, DOWN_MS later restarted; no fault starts after the client finished. These are
 * failure counts and latencies, not CPU figures: the processes are not pinned.
 *
 * Env: RECORDS (100000), RATE (1500), FAULTS (6), GAP_MIN_MS (5000), GAP_MAX_MS (10000), DOWN_MS (3000).
 * Writes bench/results/failover.json.
 */
import { spawn } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { Producer } from '../../src/producer/producer.ts'
import { ensureKafkaDistribution } from '../../src/testing/kafka-distribution.ts'
import { startKafka, stopKafka } from '../../src/testing/local-kafka.ts'
import { createTestTopic } from '../../src/testing/topics.ts'
import {
  pacedSends,
  percentiles,
  readBack,
  runFaults,
  type Fault,
  type Numbered,
  type Percentiles,
  type SendRecord
} from '../../test/helpers/failover.ts'
import { topicRecordCount } from '../../test/fixtures/sink/log-events.ts'

const RECORDS = Number(process.env.RECORDS ?? 100_000)
const RATE = Number(process.env.RATE ?? 1500)
const FAULTS = Number(process.env.FAULTS ?? 6)
const GAP_MIN_MS = Number(process.env.GAP_MIN_MS ?? 5000)
const GAP_MAX_MS = Number(process.env.GAP_MAX_MS ?? 10_000)
const DOWN_MS = Number(process.env.DOWN_MS ?? 3000)
const PORT = 24092
/** A send that began within this long after a fault began, up to its healing, counts as "during faults". */
const AFTER_HEAL_MS = 10_000

const log = (line: string) => console.error(`[bench:failover] ${line}`)
const plan = {
  faults: Array.from({ length: FAULTS }, () => 'kill' as const),
  gapMs: () => GAP_MIN_MS + Math.random() * (GAP_MAX_MS - GAP_MIN_MS),
  downMs: DOWN_MS
}

interface ClientFigures {
  sent: number
  failed: number
  acknowledged: number
  lost: number | null
  duplicates: number | null
  outOfOrderKeys: number | null
  /** Records the topic holds afterwards. */
  inTopic: number
  latencyMs: { all: Percentiles; duringFaults: Percentiles | null; steady: Percentiles | null }
  faults: Fault[]
  errors: string[]
}

async function freshTopic(brokers: string[]): Promise<string> {
  const { topic } = await createTestTopic({
    brokers,
    partitions: 6,
    replicas: 3,
    configs: { 'min.insync.replicas': '2' },
    prefix: 'bench-failover'
  })
  return topic
}

function during(faults: Fault[], at: number): boolean {
  return faults.some(fault => at >= fault.at && at <= fault.healedAt + AFTER_HEAL_MS)
}

async function kafkitRun(cluster: Awaited<ReturnType<typeof startKafka>>): Promise<ClientFigures> {
  const brokers = cluster.brokers
  const topic = await freshTopic(brokers)
  const producer = new Producer<Numbered>({ brokers, topic, env: {} })
  let finished = false
  const faults = runFaults(cluster, topic, plan, log, () => finished)
  let ledger: SendRecord[]
  try {
    ledger = await pacedSends(producer, { perSecond: RATE, batch: 500, keys: 60, count: RECORDS })
  } finally {
    finished = true
  }
  const schedule = await faults
  await producer.close({ timeoutMs: 10_000 })
  const acknowledged = ledger.filter(entry => entry.ok)
  const check = await readBack(brokers, topic, ledger)
  const latency = (entries: SendRecord[]) =>
    entries.length > 0 ? percentiles(entries.map(entry => entry.doneAt - entry.sentAt)) : null
  return {
    sent: ledger.length,
    failed: ledger.length - acknowledged.length,
    acknowledged: acknowledged.length,
    lost: check.lost.length,
    duplicates: check.duplicates.length,
    outOfOrderKeys: check.outOfOrderKeys.length,
    inTopic: check.records,
    latencyMs: {
      all: latency(ledger) as Percentiles,
      duringFaults: latency(ledger.filter(entry => during(schedule, entry.sentAt))),
      steady: latency(ledger.filter(entry => !during(schedule, entry.sentAt)))
    },
    faults: schedule,
    errors: [...new Set(ledger.filter(entry => !entry.ok).map(entry => entry.error ?? ''))].slice(0, 5)
  }
}

/** ProducerPerformance's closing line: "N records sent, ... A ms avg latency, M ms max latency, P50 ms 50th, ..." */
function parseJavaSummary(text: string): { sent: number; p50: number; p99: number; max: number } | undefined {
  const lines = text.split('\n').filter(line => /records sent/.test(line) && /50th/.test(line))
  const last = lines.at(-1)
  if (last === undefined) return undefined
  const number = (pattern: RegExp) => Number(pattern.exec(last)?.[1] ?? NaN)
  return {
    sent: number(/^(\d+) records sent/),
    p50: number(/(\d+) ms 50th/),
    p99: number(/(\d+) ms 99th/),
    max: number(/([\d.]+) ms max latency/)
  }
}

async function javaRun(cluster: Awaited<ReturnType<typeof startKafka>>): Promise<ClientFigures> {
  const brokers = cluster.brokers
  const topic = await freshTopic(brokers)
  const dist = await ensureKafkaDistribution()
  let finished = false
  const faults = runFaults(cluster, topic, plan, log, () => finished)
  const child = spawn(
    'java',
    [
      '-Xmx256m',
      '-XX:+UseSerialGC',
      `-Dlog4j2.configurationFile=${dist.log4jConfig}`,
      '-cp',
      dist.classPath,
      'org.apache.kafka.tools.ProducerPerformance',
      '--topic',
      topic,
      '--num-records',
      String(RECORDS),
      '--throughput',
      String(RATE),
      '--record-size',
      '100',
      '--producer-props',
      `bootstrap.servers=${brokers.join(',')}`,
      'acks=all'
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] }
  )
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  finished = true
  const schedule = await faults
  const summary = parseJavaSummary(stdout)
  if (code !== 0 || summary === undefined) throw new Error(`ProducerPerformance exited ${code}: ${stderr.slice(-2000)}`)
  // Each failed send prints its exception (PerfCallback: exception.printStackTrace()).
  const errorLines = stderr.split('\n').filter(line => /^org\.apache\.kafka\.\S+Exception/.test(line))
  const inTopic = await topicRecordCount(brokers, topic)
  const acknowledged = summary.sent - errorLines.length
  return {
    sent: summary.sent,
    failed: errorLines.length,
    acknowledged,
    // Its payload carries no ids: only the count can be compared.
    lost: Math.max(0, acknowledged - inTopic),
    duplicates: null,
    outOfOrderKeys: null,
    inTopic,
    latencyMs: { all: { p50: summary.p50, p99: summary.p99, max: summary.max }, duringFaults: null, steady: null },
    faults: schedule,
    errors: [...new Set(errorLines)].slice(0, 5)
  }
}

log(`3-node cluster on port ${PORT}`)
const cluster = await startKafka({ nodes: 3, port: PORT, fresh: true, log })
const results: Record<string, ClientFigures> = {}
try {
  log(`kafkit: ${RECORDS} records at ${RATE}/s, ${FAULTS} node kills`)
  results.kafkit = await kafkitRun(cluster)
  log(`kafkit: ${JSON.stringify(results.kafkit)}`)
  log(`java: the same`)
  results.java = await javaRun(cluster)
  log(`java: ${JSON.stringify(results.java)}`)
} finally {
  await stopKafka({ port: PORT })
}
const output = {
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30) },
  workload: { records: RECORDS, rate: RATE, faults: FAULTS, gapMs: [GAP_MIN_MS, GAP_MAX_MS], downMs: DOWN_MS },
  results
}
await mkdir(join(import.meta.dirname, '..', 'results'), { recursive: true })
const file = join(import.meta.dirname, '..', 'results', 'failover.json')
await writeFile(file, `${JSON.stringify(output, null, 2)}\n`)
console.log(JSON.stringify(output, null, 2))
log(`wrote ${file}`)

/**
 * `npm run bench:consumer`: consumer throughput of Kafkit, raw @platformatic/kafka, KafkaJS and Kafka's
 * own Java tool (org.apache.kafka.tools.ConsumerPerformance) against the same local broker in one run.
 *
 * Workloads, each on one topic filled once before the runs (1 KiB values of random capital letters,
 * keys `key-0000` ... over KEYS distinct keys, uncompressed), consumed in full by every client with a
 * fresh consumer group from the earliest offset:
 * - `noop`: MESSAGES records over PARTITIONS partitions, a no-op handler; every client commits the way
 *   it normally does (raw and Kafkit: manual commits every second; KafkaJS: its default autocommit;
 *   ConsumerPerformance as is). Clients: raw (for-await, awaiting the handler), raw-flowing (the client
 *   library's ceiling), Kafkit partition / key (limit 16) / unordered / batch handler, KafkaJS
 *   eachMessage and eachBatch, Java ConsumerPerformance;
 * - `io`: SLOW_MESSAGES records on SLOW_PARTITIONS partition(s), a handler that awaits
 *   `setTimeout(SLOW_DELAY_MS)` (simulated I/O): Kafkit partition-ordered vs key-ordered with limit 16
 *   and 64 (what key-ordered parallelism buys);
 * - `lag` (only when WORKLOADS names it): LAG_MESSAGES records over PARTITIONS partitions and the same
 *   slow handler, consumed for LAG_SECONDS only: how much memory Kafkit holds while the lag is huge
 *   (its buffers are bounded by maxBufferedRecords, whatever the lag).
 * Node clients run in their own processes (bench/consumer/client.ts), which report their peak RSS.
 * ROUNDS rounds, client order rotating per round; the median of each client is reported. After every
 * run the group's committed offsets are read back: `uncommitted` counts records handled but not covered
 * by them.
 *
 * Env: MESSAGES (200000), PARTITIONS (6), KEYS (1000), SLOW_MESSAGES (30000), SLOW_PARTITIONS (1),
 * SLOW_DELAY_MS (1), LAG_MESSAGES (1000000), LAG_SECONDS (20), ROUNDS (3), WORKLOADS (default
 * `noop,io`), CLIENTS (comma-separated subset, default all), BENCH_NODE_FLAGS (extra flags for the
 * Node client processes, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`), KAFKA_BROKERS (else a
 * local Kafka on port 9592 is started for the run and stopped after, or reused when one already runs
 * there), RESULT_NAME (default `consumer`). Writes bench/results/<RESULT_NAME>.json: every run, the
 * medians, `ratios` (of the medians; plus raw's CPU per record over Kafkit's, steadier on a shared
 * machine), `perRound` (the main ratios within each round) and `peakRssMb` (per workload and client).
 */
import { execFile, spawn } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Admin, Producer } from '@platformatic/kafka'
import { ensureKafkaDistribution } from '../../src/testing/kafka-distribution.ts'
import { kafkaStatus, startKafka, stopKafka } from '../../src/testing/local-kafka.ts'
import { uniqueName } from '../../src/testing/topics.ts'
import { COMMIT_INTERVAL_MS, FETCH, VALUE_BYTES, type ClientResult } from './client.ts'

const run = promisify(execFile)
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const MESSAGES = env('MESSAGES', 200_000)
const PARTITIONS = env('PARTITIONS', 6)
const KEYS = env('KEYS', 1000)
const SLOW_MESSAGES = env('SLOW_MESSAGES', 30_000)
const SLOW_PARTITIONS = env('SLOW_PARTITIONS', 1)
const SLOW_DELAY_MS = env('SLOW_DELAY_MS', 1)
const LAG_MESSAGES = env('LAG_MESSAGES', 1_000_000)
const LAG_SECONDS = env('LAG_SECONDS', 20)
const ROUNDS = env('ROUNDS', 3)
const PORT = 9592

const workloads = {
  noop: {
    delayMs: 0,
    messages: MESSAGES,
    partitions: PARTITIONS,
    clients: [
      'raw',
      'raw-flowing',
      'kafkit-partition',
      'kafkit-key',
      'kafkit-unordered',
      'kafkit-batch',
      'kafkajs',
      'kafkajs-batch',
      'java'
    ]
  },
  io: {
    delayMs: SLOW_DELAY_MS,
    messages: SLOW_MESSAGES,
    partitions: SLOW_PARTITIONS,
    clients: ['kafkit-partition', 'kafkit-key', 'kafkit-key64']
  },
  lag: {
    delayMs: SLOW_DELAY_MS,
    messages: LAG_MESSAGES,
    partitions: PARTITIONS,
    seconds: LAG_SECONDS,
    clients: ['kafkit-partition', 'kafkit-key64']
  }
} as const
type Workload = keyof typeof workloads
const only = process.env.CLIENTS?.split(',').filter(Boolean)
const chosen = (process.env.WORKLOADS ?? 'noop,io').split(',').filter(Boolean)
const selected = (workload: Workload) =>
  chosen.includes(workload)
    ? (workloads[workload].clients.filter(client => !only || only.includes(client)) as string[])
    : []
const secondsOf = (workload: Workload) => ('seconds' in workloads[workload] ? LAG_SECONDS : 0)

let brokers = process.env.KAFKA_BROKERS?.split(',').filter(Boolean)
let startedHere = false
if (!brokers?.length) {
  const running = await kafkaStatus({ port: PORT })
  startedHere = !running?.nodes.every(n => n.running)
  brokers = (await startKafka({ port: PORT, log: line => console.error(line) })).bootstrapServers
}
const bootstrap = brokers
const admin = new Admin({ clientId: 'bench-admin', bootstrapBrokers: bootstrap })

/** Creates `topic` and fills it with `total` keyed 1 KiB records; returns each partition's end offset. */
async function fill(topic: string, partitions: number, total: number): Promise<number[]> {
  await admin.createTopics({ topics: [topic], partitions, replicas: 1 })
  const value = Buffer.from(Array.from({ length: VALUE_BYTES }, () => 65 + randomInt(26)))
  const keys = Array.from({ length: KEYS }, (_, i) => Buffer.from(`key-${String(i).padStart(4, '0')}`))
  // Idempotent: a retried send must not duplicate records (each client must see exactly the ends).
  const producer = new Producer({ clientId: 'bench-fill', bootstrapBrokers: bootstrap, idempotent: true })
  const started = performance.now()
  try {
    const inFlight: Promise<unknown>[] = []
    for (let sent = 0; sent < total; sent += 1000) {
      const n = Math.min(1000, total - sent)
      const messages = Array.from({ length: n }, (_, i) => ({ topic, key: keys[(sent + i) % KEYS] as Buffer, value }))
      inFlight.push(producer.send({ messages }))
      if (inFlight.length >= 4) await inFlight.shift()
    }
    await Promise.all(inFlight)
  } finally {
    await producer.close()
  }
  const [listed] = await admin.listOffsets({
    topics: [
      { name: topic, partitions: Array.from({ length: partitions }, (_, i) => ({ partitionIndex: i, timestamp: -1n })) }
    ]
  })
  const ends = Array.from({ length: partitions }, () => 0)
  for (const p of listed?.partitions ?? []) ends[p.partitionIndex] = Number(p.offset)
  const sum = ends.reduce((a, b) => a + b, 0)
  // Retried sends can land twice on this busy machine; every client then reads the same extra records.
  if (sum !== total) console.error(`${topic} holds ${sum} records (${sum - total} more than sent: retried sends)`)
  console.error(
    `filled ${topic}: ${sum} records in ${((performance.now() - started) / 1000).toFixed(1)} s, per partition ${ends.join(', ')}`
  )
  return ends
}

/** Records of `topic` covered by `group`'s committed offsets. */
async function committedRecords(group: string, topic: string, ends: number[]): Promise<number> {
  const [listed] = await admin.listConsumerGroupOffsets({ groups: [group] })
  const committed = new Map<number, number>()
  for (const t of listed?.topics ?? []) {
    if (t.name !== topic) continue
    for (const p of t.partitions) committed.set(p.partitionIndex, Math.max(0, Number(p.committedOffset)))
  }
  return ends.reduce((n, end, partition) => n + Math.min(end, committed.get(partition) ?? 0), 0)
}

async function nodeClient(
  client: string,
  topic: string,
  ends: number[],
  group: string,
  delayMs: number,
  maxSeconds: number
) {
  const child = spawn(
    process.execPath,
    [
      '--conditions=development',
      // KafkaJS 2.2.4 sets negative timeouts on Node 24 (harmless, but one warning per run).
      '--disable-warning=TimeoutNegativeWarning',
      ...(process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
      join(import.meta.dirname, 'client.ts'),
      client,
      topic,
      ends.join(','),
      group,
      String(delayMs),
      String(maxSeconds)
    ],
    { env: { ...process.env, KAFKA_BROKERS: bootstrap.join(',') }, stdio: ['ignore', 'pipe', 'inherit'] }
  )
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  if (code !== 0) throw new Error(`${client} exited ${String(code)}`)
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as ClientResult
}

async function javaClient(topic: string, ends: number[], group: string): Promise<ClientResult> {
  const dist = await ensureKafkaDistribution()
  const total = ends.reduce((a, b) => a + b, 0)
  const { stdout } = await run(
    'java',
    [
      '-Xms512m',
      '-Xmx1g',
      `-Dlog4j2.configurationFile=${dist.log4jConfig}`,
      '-cp',
      dist.classPath,
      'org.apache.kafka.tools.ConsumerPerformance',
      '--bootstrap-server',
      bootstrap.join(','),
      '--topic',
      topic,
      '--group',
      group,
      '--messages',
      String(total),
      '--timeout',
      '60000'
    ],
    { maxBuffer: 16 * 1024 * 1024 }
  )
  // The header line first (start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg,
  // nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec), the figures last,
  // client log lines in between.
  const lines = stdout.trim().split('\n')
  const names =
    lines
      .find(line => line.includes('fetch.nMsg.sec'))
      ?.split(',')
      .map(f => f.trim()) ?? []
  const fields =
    lines
      .at(-1)
      ?.split(',')
      .map(f => f.trim()) ?? []
  const field = (name: string) => Number(fields[names.indexOf(name)])
  const consumed = field('data.consumed.in.nMsg')
  const fetchMs = field('fetch.time.ms')
  if (!(consumed > 0) || !(fetchMs > 0)) throw new Error(`unexpected ConsumerPerformance output: ${stdout.slice(-800)}`)
  const seconds = fetchMs / 1000
  return {
    client: 'java',
    delayMs: 0,
    messages: consumed,
    duplicates: 0,
    seconds,
    secondsWithJoin: (field('rebalance.time.ms') + fetchMs) / 1000,
    msgsPerSec: consumed / seconds,
    mbPerSec: (consumed * VALUE_BYTES) / seconds / (1024 * 1024),
    cpuUsPerMsg: Number.NaN,
    stopMs: Number.NaN,
    peakRssMb: Number.NaN
  }
}

const median = (values: number[]) => {
  const sorted = values.filter(v => !Number.isNaN(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

type Run = ClientResult & { workload: Workload; round: number; uncommitted: number }
const runs: Run[] = []
const topics: Record<string, { topic: string; ends: number[] }> = {}
const groups: string[] = []
const failures: { round: number; workload: Workload; client: string; error: string }[] = []
const startedAt = new Date()
const loadBefore = loadavg()
// What was measured: the commit, and whether the code the clients import had local changes.
const git = async (...args: string[]) => (await run('git', args, { cwd: import.meta.dirname })).stdout.trimEnd()
const code = {
  commit: await git('rev-parse', 'HEAD').catch(() => 'unknown'),
  localChanges: await git('status', '--porcelain', '--', '../../src').then(
    out => out.split('\n').filter(Boolean),
    () => []
  )
}
try {
  for (const workload of Object.keys(workloads) as Workload[]) {
    const { partitions, messages } = workloads[workload]
    if (selected(workload).length === 0) continue
    const topic = uniqueName(`bench-consumer-${workload}`)
    // Known before it is filled, so a failure while filling still deletes it.
    topics[workload] = { topic, ends: [] }
    topics[workload].ends = await fill(topic, partitions, messages)
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const workload of Object.keys(workloads) as Workload[]) {
      const clients = selected(workload)
      if (clients.length === 0) continue
      const { topic, ends } = topics[workload] as { topic: string; ends: number[] }
      const { delayMs } = workloads[workload]
      // Rotate the order so no client always runs first (or right after Java's JVM exits).
      const order = clients.map((_, i) => clients[(i + round) % clients.length] as string)
      for (const client of order) {
        const group = uniqueName(`bench-consumer-${client}`)
        groups.push(group)
        let result: ClientResult
        try {
          result =
            client === 'java'
              ? await javaClient(topic, ends, group)
              : await nodeClient(client, topic, ends, group, delayMs, secondsOf(workload))
        } catch (error) {
          // One failed run (a crash, a broker hiccup) is recorded; the other runs still count.
          failures.push({ round, workload, client, error: String(error) })
          console.error(`round ${round} ${workload.padEnd(4)} ${client.padEnd(17)} FAILED: ${String(error)}`)
          continue
        }
        // Handled but not covered by the group's commits (0 for a client that commits what it handled).
        const left = Math.max(0, result.messages - (await committedRecords(group, topic, ends)))
        runs.push({ ...result, workload, round, uncommitted: left })
        const rss = Number.isNaN(result.peakRssMb) ? '' : ` rss ${result.peakRssMb.toFixed(0).padStart(4)} MB`
        console.error(
          `round ${round} ${workload.padEnd(4)} ${client.padEnd(17)} ${result.msgsPerSec.toFixed(0).padStart(8)} msg/s ${result.mbPerSec.toFixed(1).padStart(6)} MB/s${rss}${result.duplicates ? ` dup ${result.duplicates}` : ''}${left ? ` uncommitted ${left}` : ''}`
        )
      }
    }
  }
} finally {
  // Kafkit creates `<topic>.dlq` at start (ensureTopics); nothing is dead-lettered here.
  for (const { topic } of Object.values(topics)) {
    for (const name of [topic, `${topic}.dlq`]) await admin.deleteTopics({ topics: [name] }).catch(() => undefined)
  }
  await admin.deleteGroups({ groups }).catch(() => undefined)
  await admin.close()
  if (startedHere) await stopKafka({ port: PORT })
}

type Summary = {
  msgsPerSec: number
  mbPerSec: number
  cpuUsPerMsg: number
  secondsWithJoin: number
  stopMs: number
  peakRssMb: number
  duplicates: number
  uncommitted: number
  runs: number
}
const medians: Partial<Record<Workload, Record<string, Summary>>> = {}
for (const workload of Object.keys(workloads) as Workload[]) {
  const table: Record<string, Summary> = {}
  for (const client of selected(workload)) {
    const mine = runs.filter(r => r.client === client && r.workload === workload)
    table[client] = {
      msgsPerSec: median(mine.map(r => r.msgsPerSec)),
      mbPerSec: median(mine.map(r => r.mbPerSec)),
      cpuUsPerMsg: median(mine.map(r => r.cpuUsPerMsg)),
      secondsWithJoin: median(mine.map(r => r.secondsWithJoin)),
      stopMs: median(mine.map(r => r.stopMs)),
      peakRssMb: mine.length > 0 ? Math.max(...mine.map(r => r.peakRssMb)) : Number.NaN,
      duplicates: mine.reduce((n, r) => n + r.duplicates, 0),
      uncommitted: mine.reduce((n, r) => n + r.uncommitted, 0),
      runs: mine.length
    }
  }
  medians[workload] = table
}
const rate = (workload: Workload, client: string) => medians[workload]?.[client]?.msgsPerSec ?? Number.NaN
const ratios = {
  'kafkit/raw': rate('noop', 'kafkit-partition') / rate('noop', 'raw'),
  'kafkit/kafkajs': rate('noop', 'kafkit-partition') / rate('noop', 'kafkajs'),
  'kafkit/java': rate('noop', 'kafkit-partition') / rate('noop', 'java'),
  'keyParallel/partitionOrdered': rate('io', 'kafkit-key64') / rate('io', 'kafkit-partition'),
  'kafkit/raw-flowing': rate('noop', 'kafkit-partition') / rate('noop', 'raw-flowing'),
  'kafkit/kafkajs-batch': rate('noop', 'kafkit-partition') / rate('noop', 'kafkajs-batch'),
  'kafkit-key/raw': rate('noop', 'kafkit-key') / rate('noop', 'raw'),
  'kafkit-batch/raw': rate('noop', 'kafkit-batch') / rate('noop', 'raw'),
  'kafkit-batch/kafkajs-batch': rate('noop', 'kafkit-batch') / rate('noop', 'kafkajs-batch'),
  'kafkit-unordered/raw': rate('noop', 'kafkit-unordered') / rate('noop', 'raw'),
  'raw/java': rate('noop', 'raw') / rate('noop', 'java'),
  'keyParallel16/partitionOrdered': rate('io', 'kafkit-key') / rate('io', 'kafkit-partition'),
  // CPU per record moves less than throughput when other processes share the cores: raw's over Kafkit's.
  'kafkit/raw (cpu per record)':
    (medians.noop?.raw?.cpuUsPerMsg ?? Number.NaN) / (medians.noop?.['kafkit-partition']?.cpuUsPerMsg ?? Number.NaN)
}
/** kafkit/raw and kafkit/kafkajs within each round (runs minutes apart see different loads). */
const perRound = Array.from({ length: ROUNDS }, (_, i) => {
  const of = (client: string) =>
    runs.find(r => r.round === i + 1 && r.workload === 'noop' && r.client === client)?.msgsPerSec ?? Number.NaN
  return {
    round: i + 1,
    'kafkit/raw': of('kafkit-partition') / of('raw'),
    'kafkit/kafkajs': of('kafkit-partition') / of('kafkajs'),
    'kafkit/java': of('kafkit-partition') / of('java'),
    'kafkit-batch/raw': of('kafkit-batch') / of('raw')
  }
})
/** Peak RSS of each Node client process, the highest across rounds, per workload. */
const peakRssMb: Record<string, number> = {}
for (const [workload, table] of Object.entries(medians)) {
  for (const [client, summary] of Object.entries(table)) {
    if (!Number.isNaN(summary.peakRssMb)) peakRssMb[`${workload}/${client}`] = summary.peakRssMb
  }
}

const describe: Record<Workload, string> = {
  noop: `${MESSAGES} x 1 KiB, ${PARTITIONS} partitions, ${KEYS} keys, no-op handler`,
  io: `${SLOW_MESSAGES} x 1 KiB, ${SLOW_PARTITIONS} partition(s), ${KEYS} keys, handler awaits setTimeout(${SLOW_DELAY_MS})`,
  lag: `${LAG_MESSAGES} x 1 KiB of lag, ${PARTITIONS} partitions, handler awaits setTimeout(${SLOW_DELAY_MS}), ${LAG_SECONDS} s per run`
}
for (const workload of Object.keys(workloads) as Workload[]) {
  const table = medians[workload]
  if (!table || Object.keys(table).length === 0) continue
  console.log(`\n${workload}: ${describe[workload]}, median of ${ROUNDS} rounds`)
  console.log(`client              msg/s    MB/s  cpu µs/msg  peak RSS MB  s with join`)
  for (const [client, s] of Object.entries(table)) {
    const cpu = Number.isNaN(s.cpuUsPerMsg) ? '-' : s.cpuUsPerMsg.toFixed(2)
    const rss = Number.isNaN(s.peakRssMb) ? '-' : s.peakRssMb.toFixed(0)
    console.log(
      `${client.padEnd(17)} ${s.msgsPerSec.toFixed(0).padStart(8)} ${s.mbPerSec.toFixed(1).padStart(7)} ${cpu.padStart(11)} ${rss.padStart(12)} ${s.secondsWithJoin.toFixed(2).padStart(12)}${s.duplicates ? `  duplicates ${s.duplicates}` : ''}${s.uncommitted ? `  uncommitted ${s.uncommitted}` : ''}`
    )
  }
}
console.log('\nratios (msg/s of the medians):')
for (const [name, value] of Object.entries(ratios)) console.log(`  ${name.padEnd(32)} ${value.toFixed(3)}`)
console.log('per round (kafkit/raw, kafkit/kafkajs, kafkit/java):')
for (const r of perRound) {
  console.log(
    `  round ${r.round}: ${r['kafkit/raw'].toFixed(3)}  ${r['kafkit/kafkajs'].toFixed(3)}  ${r['kafkit/java'].toFixed(3)}`
  )
}

await mkdir(join(import.meta.dirname, '..', 'results'), { recursive: true })
const file = join(import.meta.dirname, '..', 'results', `${process.env.RESULT_NAME ?? 'consumer'}.json`)
await writeFile(
  file,
  `${JSON.stringify(
    {
      benchmark: 'consumer',
      startedAt: startedAt.toISOString(),
      code,
      settings: {
        rounds: ROUNDS,
        valueBytes: VALUE_BYTES,
        keys: KEYS,
        workloads: Object.fromEntries(
          Object.entries(workloads).map(([name, w]) => [name, { ...w, clients: selected(name as Workload) }])
        ),
        rawAndKafkitFetch: FETCH,
        commitIntervalMs: COMMIT_INTERVAL_MS,
        brokers: bootstrap
      },
      machine: { cpus: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), loadBefore, loadAfter: loadavg() },
      runs,
      medians,
      ratios,
      perRound,
      peakRssMb,
      failures
    },
    (_key, value: unknown) => (typeof value === 'number' && Number.isNaN(value) ? null : value),
    2
  )}\n`
)
console.log(`\nwrote ${file}`)
if (failures.length > 0) {
  console.error(`${failures.length} run(s) failed; their clients' medians leave them out`)
  process.exitCode = 1
}

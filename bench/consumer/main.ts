/**
 * `npm run bench:consumer`: consumer CPU cost, throughput and memory of Kafkit, raw @platformatic/kafka,
 * KafkaJS (and, on request, Kafka's own Java tool, org.apache.kafka.tools.ConsumerPerformance) against
 * the same local broker in one run.
 *
 * Workloads, each on one topic filled once before the runs (1 KiB values of random capital letters,
 * keys `key-0000` ... over KEYS distinct keys, uncompressed), consumed by every client with a fresh
 * consumer group from the earliest offset:
 * - `noop`: MESSAGES records over PARTITIONS partitions, a no-op handler; every client commits the way
 *   it normally does (raw and Kafkit: manual commits every second; KafkaJS: its default autocommit;
 *   ConsumerPerformance as is). Clients by default: raw (for-await, awaiting the handler), Kafkit
 *   partition-ordered and batch handler, KafkaJS eachMessage; on request (CLIENTS) also raw-flowing (the
 *   client library's ceiling), Kafkit key (limit 16) and unordered, KafkaJS eachBatch, Java;
 * - `io`: SLOW_MESSAGES records on SLOW_PARTITIONS partition(s), a handler that awaits
 *   `setTimeout(SLOW_DELAY_MS)` (simulated I/O), each run at most IO_SECONDS: Kafkit partition-ordered
 *   vs key-ordered with limit 64 (and 16 on request): what key-ordered parallelism buys;
 * - `lag`: LAG_MESSAGES records over PARTITIONS partitions and the same slow handler, consumed for
 *   LAG_SECONDS only, in the first LAG_ROUNDS rounds: how much memory Kafkit holds while the lag is huge
 *   (its buffers are bounded by maxBufferedRecords, whatever the lag).
 *
 * Method (bench/lib/pinning.ts): the broker JVM runs on one core, each client in its own process
 * (bench/consumer/client.ts) under `taskset` on the other, reporting its CPU time per record over the
 * timed window (the primary figure), msg/s and peak RSS. ROUNDS rounds, the clients interleaved (every
 * client once per round, the order rotating); each target ratio is computed within each round and
 * reported as the median of the rounds with its spread (bench/lib/targets.ts). After every run the
 * group's committed offsets are read back: `uncommitted` counts records handled but not covered by them.
 *
 * Env: MESSAGES (300000), PARTITIONS (6), KEYS (1000), SLOW_MESSAGES (30000), SLOW_PARTITIONS (1),
 * SLOW_DELAY_MS (5), IO_SECONDS (6), LAG_MESSAGES (1000000), LAG_SECONDS (10), LAG_ROUNDS (3), ROUNDS (5),
 * WORKLOADS (default `noop,io,lag`), CLIENTS (comma-separated; default raw, kafkit-partition,
 * kafkit-batch, kafkajs, kafkit-key64), BENCH_NODE_FLAGS (extra flags for the Node client processes,
 * e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`), RESULT_NAME (default `consumer`), KAFKA_BROKERS (an
 * existing cluster, not pinned) and the pinning variables of bench/lib/pinning.ts. Writes
 * bench/results/<RESULT_NAME>.json: every run, the medians, `targets`, `cpuRatios` and
 * `throughputRatios` (median and spread of the per-round ratios), `perRound` and `peakRssMb`.
 */
import { execFile } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { committedRecords } from '../lib/offsets.ts'
import { machineFacts } from '../lib/cpus.ts'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Admin, Producer } from '@platformatic/kafka'
import { ensureKafkaDistribution } from '../../src/testing/kafka-distribution.ts'
import { uniqueName } from '../../src/testing/topics.ts'
import { benchKafka, CLIENT_CPU, PINNING, runClient } from '../lib/pinning.ts'
import { codeState, entry, median, printTargets, spread, toJson, type TargetEntry } from '../lib/targets.ts'
import { COMMIT_INTERVAL_MS, FETCH, VALUE_BYTES, type ClientResult } from './client.ts'

const run = promisify(execFile)
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const MESSAGES = env('MESSAGES', 300_000)
const PARTITIONS = env('PARTITIONS', 6)
const KEYS = env('KEYS', 1000)
const SLOW_MESSAGES = env('SLOW_MESSAGES', 30_000)
const SLOW_PARTITIONS = env('SLOW_PARTITIONS', 1)
const SLOW_DELAY_MS = env('SLOW_DELAY_MS', 5)
const IO_SECONDS = env('IO_SECONDS', 6)
const LAG_MESSAGES = env('LAG_MESSAGES', 1_000_000)
const LAG_SECONDS = env('LAG_SECONDS', 10)
const ROUNDS = env('ROUNDS', 5)
const LAG_ROUNDS = Math.min(ROUNDS, env('LAG_ROUNDS', 3))

const workloads = {
  noop: {
    delayMs: 0,
    messages: MESSAGES,
    partitions: PARTITIONS,
    seconds: 0,
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
    seconds: IO_SECONDS,
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
const only = (process.env.CLIENTS ?? 'raw,kafkit-partition,kafkit-batch,kafkajs,kafkit-key64')
  .split(',')
  .filter(Boolean)
const chosen = (process.env.WORKLOADS ?? 'noop,io,lag').split(',').filter(Boolean)
const selected = (workload: Workload) =>
  chosen.includes(workload) ? (workloads[workload].clients.filter(client => only.includes(client)) as string[]) : []
const roundsOf = (workload: Workload) => (workload === 'lag' ? LAG_ROUNDS : ROUNDS)

const kafka = await benchKafka()
const bootstrap = kafka.bootstrap
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

function nodeClient(client: string, topic: string, ends: number[], group: string, delayMs: number, maxSeconds: number) {
  return runClient<ClientResult>(
    client,
    [join(import.meta.dirname, 'client.ts'), client, topic, ends.join(','), group, String(delayMs), String(maxSeconds)],
    { ...process.env, KAFKA_BROKERS: bootstrap.join(',') }
  )
}

async function javaClient(topic: string, ends: number[], group: string): Promise<ClientResult> {
  const dist = await ensureKafkaDistribution()
  const total = ends.reduce((a, b) => a + b, 0)
  const java = [
    'java',
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
  ]
  const [command, ...args] = PINNING ? ['taskset', '-c', String(CLIENT_CPU), ...java] : java
  const { stdout } = await run(command as string, args, { maxBuffer: 16 * 1024 * 1024 })
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

type Run = ClientResult & { workload: Workload; round: number; uncommitted: number }
const runs: Run[] = []
const topics: Record<string, { topic: string; ends: number[] }> = {}
const groups: string[] = []
const failures: { round: number; workload: Workload; client: string; error: string }[] = []
const startedAt = new Date()
const loadBefore = loadavg()
const code = codeState()
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
      if (clients.length === 0 || round > roundsOf(workload)) continue
      const { topic, ends } = topics[workload] as { topic: string; ends: number[] }
      const { delayMs, seconds } = workloads[workload]
      // Interleaved: every client once per round, the order rotating from round to round.
      const order = clients.map((_, i) => clients[(i + round - 1) % clients.length] as string)
      for (const client of order) {
        const group = uniqueName(`bench-consumer-${client}`)
        groups.push(group)
        let result: ClientResult
        try {
          result =
            client === 'java'
              ? await javaClient(topic, ends, group)
              : await nodeClient(client, topic, ends, group, delayMs, seconds)
        } catch (error) {
          // One failed run (a crash, a broker hiccup) is recorded; the other runs still count.
          failures.push({ round, workload, client, error: String(error) })
          console.error(`round ${round} ${workload.padEnd(4)} ${client.padEnd(17)} FAILED: ${String(error)}`)
          continue
        }
        // Handled but not covered by the group's commits (0 for a client that commits what it handled).
        const left = Math.max(0, result.messages - (await committedRecords(admin, group, topic, ends)))
        runs.push({ ...result, workload, round, uncommitted: left })
        const memory = result.peakMemoryMb
        const rss =
          (Number.isNaN(result.peakRssMb) ? '' : ` rss ${result.peakRssMb.toFixed(0).padStart(4)} MB`) +
          (memory ? ` (heap ${memory.heapTotal}, buffers ${memory.arrayBuffers})` : '')
        const cpu = Number.isNaN(result.cpuUsPerMsg) ? '' : ` ${result.cpuUsPerMsg.toFixed(2).padStart(7)} µs CPU/msg`
        console.error(
          `round ${round} ${workload.padEnd(4)} ${client.padEnd(17)} ${result.msgsPerSec.toFixed(0).padStart(8)} msg/s${cpu}${rss}${result.duplicates ? ` dup ${result.duplicates}` : ''}${left ? ` uncommitted ${left}` : ''}`
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
  await kafka.release()
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

const of = (round: number, workload: Workload, client: string) =>
  runs.find(r => r.round === round && r.workload === workload && r.client === client)
const roundNumbers = (workload: Workload) => Array.from({ length: roundsOf(workload) }, (_, i) => i + 1)
/** Per round: CPU per record of `other` over `mine` (higher: `mine` is cheaper). */
const cpuRatio = (mine: string, other: string, workload: Workload = 'noop') =>
  roundNumbers(workload).map(
    round =>
      (of(round, workload, other)?.cpuUsPerMsg ?? Number.NaN) / (of(round, workload, mine)?.cpuUsPerMsg ?? Number.NaN)
  )
/** Per round: msg/s of `mine` over `other`. */
const rateRatio = (mine: string, other: string, workload: Workload = 'noop') =>
  roundNumbers(workload).map(
    round =>
      (of(round, workload, mine)?.msgsPerSec ?? Number.NaN) / (of(round, workload, other)?.msgsPerSec ?? Number.NaN)
  )
const has = (workload: Workload, ...clients: string[]) => clients.every(c => selected(workload).includes(c))

const targets: Record<string, TargetEntry> = {}
if (has('noop', 'kafkit-batch', 'raw'))
  targets['consumer.kafkit-batch/raw'] = entry('consumer.kafkit-batch/raw', cpuRatio('kafkit-batch', 'raw'))
if (has('noop', 'kafkit-partition', 'raw'))
  targets['consumer.kafkit/raw'] = entry('consumer.kafkit/raw', cpuRatio('kafkit-partition', 'raw'))
if (has('noop', 'kafkit-partition', 'kafkajs')) {
  targets['consumer.kafkit/kafkajs'] = entry('consumer.kafkit/kafkajs', cpuRatio('kafkit-partition', 'kafkajs'))
}
if (has('io', 'kafkit-key64', 'kafkit-partition')) {
  targets['consumer.keyParallel/partitionOrdered'] = entry(
    'consumer.keyParallel/partitionOrdered',
    rateRatio('kafkit-key64', 'kafkit-partition', 'io')
  )
}
if (selected('lag').length > 0) {
  // Per lag round: the highest peak RSS of the Kafkit clients in it.
  targets['consumer.peakRssMb'] = entry(
    'consumer.peakRssMb',
    roundNumbers('lag').map(round =>
      Math.max(...selected('lag').map(client => of(round, 'lag', client)?.peakRssMb ?? Number.NaN))
    )
  )
}

/** Every pair of interest: median and spread of the per-round ratios, by CPU per record and by msg/s. */
const pairs: [string, string, string, Workload][] = [
  ['kafkit/raw', 'kafkit-partition', 'raw', 'noop'],
  ['kafkit-batch/raw', 'kafkit-batch', 'raw', 'noop'],
  ['kafkit/kafkajs', 'kafkit-partition', 'kafkajs', 'noop'],
  ['kafkit-batch/kafkajs-batch', 'kafkit-batch', 'kafkajs-batch', 'noop'],
  ['kafkit-key/raw', 'kafkit-key', 'raw', 'noop'],
  ['kafkit-unordered/raw', 'kafkit-unordered', 'raw', 'noop'],
  ['kafkit/raw-flowing', 'kafkit-partition', 'raw-flowing', 'noop'],
  ['kafkit/java', 'kafkit-partition', 'java', 'noop'],
  ['keyParallel/partitionOrdered', 'kafkit-key64', 'kafkit-partition', 'io'],
  ['keyParallel16/partitionOrdered', 'kafkit-key', 'kafkit-partition', 'io']
]
const cpuRatios: Record<string, ReturnType<typeof spread>> = {}
const throughputRatios: Record<string, ReturnType<typeof spread>> = {}
const perRound: Record<string, { cpu: number[]; msgsPerSec: number[] }> = {}
for (const [name, mine, other, workload] of pairs) {
  if (!has(workload, mine, other)) continue
  const cpu = cpuRatio(mine, other, workload)
  const rate = rateRatio(mine, other, workload)
  perRound[name] = { cpu, msgsPerSec: rate }
  cpuRatios[name] = spread(cpu)
  throughputRatios[name] = spread(rate)
}
/** Peak RSS of each Node client process, the highest across rounds, per workload. */
const peakRssMb: Record<string, number> = {}
for (const [workload, table] of Object.entries(medians)) {
  for (const [client, summary] of Object.entries(table)) {
    if (!Number.isNaN(summary.peakRssMb)) peakRssMb[`${workload}/${client}`] = summary.peakRssMb
  }
}

const describe: Record<Workload, string> = {
  noop: `${MESSAGES} x 1 KiB, ${PARTITIONS} partitions, ${KEYS} keys, no-op handler, median of ${ROUNDS} rounds`,
  io: `${SLOW_MESSAGES} x 1 KiB, ${SLOW_PARTITIONS} partition(s), ${KEYS} keys, handler awaits setTimeout(${SLOW_DELAY_MS}), at most ${IO_SECONDS} s per run, median of ${ROUNDS} rounds`,
  lag: `${LAG_MESSAGES} x 1 KiB of lag, ${PARTITIONS} partitions, handler awaits setTimeout(${SLOW_DELAY_MS}), ${LAG_SECONDS} s per run, ${LAG_ROUNDS} rounds`
}
console.log(`\n(broker and client pinned: ${String(kafka.placement.pinned)})`)
for (const workload of Object.keys(workloads) as Workload[]) {
  const table = medians[workload]
  if (!table || Object.keys(table).length === 0) continue
  console.log(`\n${workload}: ${describe[workload]}`)
  console.log(`client              msg/s    MB/s  cpu µs/msg  peak RSS MB  s with join`)
  for (const [client, s] of Object.entries(table)) {
    const cpu = Number.isNaN(s.cpuUsPerMsg) ? '-' : s.cpuUsPerMsg.toFixed(2)
    const rss = Number.isNaN(s.peakRssMb) ? '-' : s.peakRssMb.toFixed(0)
    console.log(
      `${client.padEnd(17)} ${s.msgsPerSec.toFixed(0).padStart(8)} ${s.mbPerSec.toFixed(1).padStart(7)} ${cpu.padStart(11)} ${rss.padStart(12)} ${s.secondsWithJoin.toFixed(2).padStart(12)}${s.duplicates ? `  duplicates ${s.duplicates}` : ''}${s.uncommitted ? `  uncommitted ${s.uncommitted}` : ''}`
    )
  }
}
console.log('\nratios per round, median (min..max): CPU per record (other over mine) | msg/s (mine over other)')
for (const [name, cpu] of Object.entries(cpuRatios)) {
  const rate = throughputRatios[name] as ReturnType<typeof spread>
  const c = Number.isFinite(cpu.median)
    ? `${cpu.median.toFixed(2)} (${cpu.min.toFixed(2)}..${cpu.max.toFixed(2)})`
    : '-'
  console.log(
    `  ${name.padEnd(32)} ${c.padStart(18)} | ${rate.median.toFixed(2)} (${rate.min.toFixed(2)}..${rate.max.toFixed(2)})`
  )
}
console.log('\ntargets:')
printTargets(targets, line => console.log(`  ${line}`))

await mkdir(join(import.meta.dirname, '..', 'results'), { recursive: true })
const file = join(import.meta.dirname, '..', 'results', `${process.env.RESULT_NAME ?? 'consumer'}.json`)
await writeFile(
  file,
  toJson({
    benchmark: 'consumer',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    code,
    settings: {
      rounds: ROUNDS,
      lagRounds: LAG_ROUNDS,
      valueBytes: VALUE_BYTES,
      keys: KEYS,
      workloads: Object.fromEntries(
        Object.entries(workloads).map(([name, w]) => [name, { ...w, clients: selected(name as Workload) }])
      ),
      rawAndKafkitFetch: FETCH,
      commitIntervalMs: COMMIT_INTERVAL_MS,
      brokers: bootstrap
    },
    placement: kafka.placement,
    machine: machineFacts(loadBefore),
    targets,
    medians,
    cpuRatios,
    throughputRatios,
    perRound,
    peakRssMb,
    runs,
    failures
  })
)
console.log(`\nwrote ${file}`)
if (failures.length > 0) {
  console.error(`${failures.length} run(s) failed; their rounds' ratios leave them out`)
  process.exitCode = 1
}

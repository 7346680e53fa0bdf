/**
 * `npm run bench:producer`: producer CPU cost and throughput of Kafkit, raw @platformatic/kafka, KafkaJS
 * (and, on request, Kafka's own Java tool, org.apache.kafka.tools.ProducerPerformance) against the same
 * local broker in one run. Every client sends MESSAGES records of the same 1 KiB value (random capital
 * letters, like ProducerPerformance's own payload) with acks=all and idempotence, once uncompressed and
 * once with lz4, into a fresh one-partition topic per run, in requests of ~500 records with up to 5 in
 * flight (Java: batch.size 512 KiB, linger.ms 5, max.in.flight 5; `kafkit-defaults` keeps the
 * Producer's own request defaults).
 *
 * Method (bench/lib/pinning.ts): the broker JVM runs on one core, each client in its own process
 * (bench/producer/client.ts) under `taskset` on the other. The primary figure is the client process's CPU
 * time per message over the timed window; msg/s is reported beside it. ROUNDS rounds, the clients
 * interleaved (each round runs every client once per compression, the order rotating from round to
 * round); each target ratio is computed within each round and reported as the median of the rounds
 * with its spread (bench/lib/targets.ts): `kafkit/raw` = CPU per message of raw over Kafkit's
 * (higher is better for Kafkit), the lowest of the compressions' medians.
 *
 * Env: MESSAGES (default 400000), ROUNDS (default 5), WARMUP (0: no discarded warm-up run), CLIENTS
 * (comma-separated, default raw,kafkit-batch,kafkit-defaults,kafkajs; also kafkit-send, kafkit-stamped,
 * java), BENCH_NODE_FLAGS (extra flags for the Node client processes, e.g. `--cpu-prof`), RESULT_NAME
 * (default `producer`), KAFKA_BROKERS (an existing cluster, not pinned) and the pinning variables of
 * bench/lib/pinning.ts.
 * Writes bench/results/<RESULT_NAME>.json: every run, the medians per client and compression, `targets`
 * (the issue's ratios), `perRound` (CPU and msg/s ratios of every round) and `throughputRatios`.
 */
import { execFile } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { machineFacts } from '../lib/cpus.ts'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Admin } from '@platformatic/kafka'
import { ensureKafkaDistribution } from '../../src/testing/kafka-distribution.ts'
import { uniqueName } from '../../src/testing/topics.ts'
import { benchKafka, CLIENT_CPU, PINNING, runClient } from '../lib/pinning.ts'
import { codeState, lowest, median, printTargets, spread, TARGETS, toJson, type TargetEntry } from '../lib/targets.ts'
import { BATCH, IN_FLIGHT, type ClientResult } from './client.ts'

const run = promisify(execFile)
const MESSAGES = Number(process.env.MESSAGES ?? 400_000)
const WARMUP = process.env.WARMUP !== '0'
const ROUNDS = Number(process.env.ROUNDS ?? 5)
const compressions = ['none', 'lz4'] as const
const allClients = [
  'raw',
  'kafkit-batch',
  'kafkit-send',
  'kafkit-stamped',
  'kafkit-defaults',
  'kafkajs',
  'java'
] as const
type Client = (typeof allClients)[number]
const only = (process.env.CLIENTS ?? 'raw,kafkit-batch,kafkit-defaults,kafkajs').split(',').filter(Boolean)
const unknownClients = only.filter(name => !(allClients as readonly string[]).includes(name))
if (unknownClients.length > 0) {
  throw new Error(`CLIENTS names unknown client(s) ${unknownClients.join(', ')}; known: ${allClients.join(', ')}`)
}
const clients = allClients.filter(client => only.includes(client))

const kafka = await benchKafka()
const bootstrap = kafka.bootstrap

// One payload for everybody: 1024 random capital letters, as ProducerPerformance generates its own.
const payload = Buffer.from(Array.from({ length: 1024 }, () => 65 + randomInt(26)))
const payloadFile = join(tmpdir(), `kafkit-bench-payload-${process.pid}.txt`)
await writeFile(payloadFile, payload)

async function withTopic<T>(fn: (topic: string) => Promise<T>): Promise<T> {
  const topic = uniqueName('bench-producer')
  const admin = new Admin({ clientId: 'bench-admin', bootstrapBrokers: bootstrap })
  try {
    await admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 })
    return await fn(topic)
  } finally {
    // Free the disk as we go (the broker deletes the files a minute later).
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined)
    await admin.close()
  }
}

function nodeClient(client: string, compression: string, topic: string): Promise<ClientResult> {
  return runClient<ClientResult>(
    client,
    [join(import.meta.dirname, 'client.ts'), client, compression, String(MESSAGES), topic, payloadFile],
    { ...process.env, KAFKA_BROKERS: bootstrap.join(',') }
  )
}

async function javaClient(compression: string, topic: string): Promise<ClientResult> {
  const dist = await ensureKafkaDistribution()
  const java = [
    'java',
    '-Xms512m',
    '-Xmx1g',
    `-Dlog4j2.configurationFile=${dist.log4jConfig}`,
    '-cp',
    dist.classPath,
    'org.apache.kafka.tools.ProducerPerformance',
    '--topic',
    topic,
    '--num-records',
    String(MESSAGES),
    '--payload-file',
    payloadFile,
    '--throughput',
    '-1',
    '--producer-props',
    `bootstrap.servers=${bootstrap.join(',')}`,
    'acks=all',
    'enable.idempotence=true',
    `compression.type=${compression}`,
    `batch.size=${512 * 1024}`,
    'linger.ms=5',
    `max.in.flight.requests.per.connection=${IN_FLIGHT}`
  ]
  const [command, ...args] = PINNING ? ['taskset', '-c', String(CLIENT_CPU), ...java] : java
  const { stdout } = await run(command as string, args, { maxBuffer: 16 * 1024 * 1024 })
  // Last summary line: "200000 records sent, 95238.1 records/sec (93.01 MB/sec), ..."
  const summary = stdout
    .trim()
    .split('\n')
    .reverse()
    .find(line => line.includes('records sent'))
  const match = summary && /([\d.]+) records\/sec \(([\d.]+) MB\/sec\)/.exec(summary)
  if (!match) throw new Error(`unexpected ProducerPerformance output: ${stdout.slice(-500)}`)
  const msgsPerSec = Number(match[1])
  return {
    client: 'java',
    compression: compression as 'none' | 'lz4',
    messages: MESSAGES,
    failed: 0,
    seconds: MESSAGES / msgsPerSec,
    msgsPerSec,
    mbPerSec: Number(match[2]),
    cpuUsPerMsg: Number.NaN
  }
}

const runs: (ClientResult & { round: number })[] = []
const failures: { round: number; compression: string; client: string; error: string }[] = []
const startedAt = new Date()
const loadBefore = loadavg()
const code = codeState()
try {
  // A freshly started broker answers its first produce requests slowly (its JIT is cold): one discarded
  // run per compression before the rounds, so round 1 does not measure the broker's warm-up.
  if (WARMUP) {
    for (const compression of compressions) {
      const warm = await withTopic(topic => nodeClient('raw', compression, topic))
      console.error(
        `warm-up ${compression.padEnd(4)} raw ${warm.msgsPerSec.toFixed(0).padStart(8)} msg/s (not counted)`
      )
    }
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const compression of compressions) {
      // Interleaved: every client once per round and compression, the order rotating from round to round.
      const order = clients.map((_, i) => clients[(i + round - 1) % clients.length] as Client)
      for (const client of order) {
        let result: ClientResult
        try {
          result = await withTopic(topic =>
            client === 'java' ? javaClient(compression, topic) : nodeClient(client, compression, topic)
          )
        } catch (error) {
          // One failed run is recorded and leaves its round's ratios out; the other runs still count.
          failures.push({ round, compression, client, error: String(error) })
          console.error(`round ${round} ${compression.padEnd(4)} ${client.padEnd(15)} FAILED: ${String(error)}`)
          continue
        }
        runs.push({ ...result, round })
        const cpu = Number.isNaN(result.cpuUsPerMsg) ? '' : ` ${result.cpuUsPerMsg.toFixed(2).padStart(6)} µs CPU/msg`
        console.error(
          `round ${round} ${compression.padEnd(4)} ${client.padEnd(15)} ${result.msgsPerSec.toFixed(0).padStart(8)} msg/s${cpu}${result.failed ? ` (${result.failed} failed)` : ''}`
        )
      }
    }
  }
} finally {
  await kafka.release()
}

type Summary = { msgsPerSec: number; mbPerSec: number; cpuUsPerMsg: number; failed: number; runs: number }
const medians: Record<string, Record<string, Summary>> = {}
for (const compression of compressions) {
  medians[compression] = {}
  for (const client of clients) {
    const mine = runs.filter(r => r.client === client && r.compression === compression)
    medians[compression][client] = {
      msgsPerSec: median(mine.map(r => r.msgsPerSec)),
      mbPerSec: median(mine.map(r => r.mbPerSec)),
      cpuUsPerMsg: median(mine.map(r => r.cpuUsPerMsg)),
      failed: mine.reduce((n, r) => n + r.failed, 0),
      runs: mine.length
    }
  }
}

const of = (round: number, client: string, compression: string) =>
  runs.find(r => r.round === round && r.client === client && r.compression === compression)
const roundNumbers = Array.from({ length: ROUNDS }, (_, i) => i + 1)
/** Per round: CPU per message of `other` over `mine` (higher: `mine` is cheaper). */
const cpuRatio = (mine: string, other: string, compression: string) =>
  roundNumbers.map(
    round =>
      (of(round, other, compression)?.cpuUsPerMsg ?? Number.NaN) /
      (of(round, mine, compression)?.cpuUsPerMsg ?? Number.NaN)
  )
/** Per round: msg/s of `mine` over `other`. */
const rateRatio = (mine: string, other: string, compression: string) =>
  roundNumbers.map(
    round =>
      (of(round, mine, compression)?.msgsPerSec ?? Number.NaN) /
      (of(round, other, compression)?.msgsPerSec ?? Number.NaN)
  )
const perCompression = (ratio: typeof cpuRatio, mine: string, other: string) =>
  Object.fromEntries(compressions.map(c => [c, ratio(mine, other, c)]))

const pairs = {
  'kafkit/raw': ['kafkit-batch', 'raw'],
  'kafkit/kafkajs': ['kafkit-batch', 'kafkajs'],
  'kafkitDefaults/raw': ['kafkit-defaults', 'raw'],
  'kafkitDefaults/kafkajs': ['kafkit-defaults', 'kafkajs'],
  'kafkitSend/raw': ['kafkit-send', 'raw'],
  'kafkitStamped/raw': ['kafkit-stamped', 'raw'],
  'kafkit/java': ['kafkit-batch', 'java']
} as const
const present = (a: string, b: string) => clients.includes(a as Client) && clients.includes(b as Client)
const targets: Record<string, TargetEntry> = {}
for (const [name, [mine, other]] of Object.entries(pairs)) {
  if (!present(mine, other) || !(`producer.${name}` in TARGETS)) continue
  targets[`producer.${name}`] = lowest(`producer.${name}`, perCompression(cpuRatio, mine, other))
}
/** Every pair, per compression: the per-round CPU ratio and msg/s ratio, median and spread. */
const perRound: Record<string, Record<string, { cpu: number[]; msgsPerSec: number[] }>> = {}
const throughputRatios: Record<string, Record<string, ReturnType<typeof spread>>> = {}
const cpuRatios: Record<string, Record<string, ReturnType<typeof spread>>> = {}
for (const [name, [mine, other]] of Object.entries(pairs)) {
  if (!present(mine, other)) continue
  perRound[name] = {}
  throughputRatios[name] = {}
  cpuRatios[name] = {}
  for (const c of compressions) {
    const cpu = cpuRatio(mine, other, c)
    const rate = rateRatio(mine, other, c)
    perRound[name][c] = { cpu, msgsPerSec: rate }
    cpuRatios[name][c] = spread(cpu)
    throughputRatios[name][c] = spread(rate)
  }
}

console.log(
  `\nproducer, ${MESSAGES} x 1 KiB, acks=all, idempotent, median of ${ROUNDS} rounds (broker and client pinned: ${String(kafka.placement.pinned)})`
)
console.log(`client           ${compressions.map(c => `${c.padStart(10)} msg/s  cpu µs/msg`).join('   ')}`)
for (const client of clients) {
  const cells = compressions.map(c => {
    const s = medians[c]?.[client] as Summary
    const cpu = Number.isNaN(s.cpuUsPerMsg) ? '-' : s.cpuUsPerMsg.toFixed(2)
    return `${s.msgsPerSec.toFixed(0).padStart(16)}  ${cpu.padStart(10)}`
  })
  console.log(`${client.padEnd(16)} ${cells.join('   ')}`)
}
console.log('\nratios per round, median (min..max): CPU per message (other over mine) | msg/s (mine over other)')
for (const [name, byCompression] of Object.entries(cpuRatios)) {
  const cells = compressions.map(c => {
    const cpu = byCompression[c] as ReturnType<typeof spread>
    const rate = throughputRatios[name]?.[c] as ReturnType<typeof spread>
    return `${c} ${cpu.median.toFixed(2)} (${cpu.min.toFixed(2)}..${cpu.max.toFixed(2)}) | ${rate.median.toFixed(2)}`
  })
  console.log(`  ${name.padEnd(24)} ${cells.join('   ')}`)
}
console.log('\ntargets (by CPU per message; lowest over the compressions):')
printTargets(targets, line => console.log(`  ${line}`))

await mkdir(join(import.meta.dirname, '..', 'results'), { recursive: true })
const file = join(import.meta.dirname, '..', 'results', `${process.env.RESULT_NAME ?? 'producer'}.json`)
await writeFile(
  file,
  toJson({
    benchmark: 'producer',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    code,
    settings: {
      messages: MESSAGES,
      rounds: ROUNDS,
      clients,
      valueBytes: 1024,
      acks: 'all',
      idempotent: true,
      compressions,
      requestMessages: BATCH,
      inFlight: IN_FLIGHT,
      partitions: 1,
      brokers: bootstrap
    },
    placement: kafka.placement,
    machine: machineFacts(loadBefore),
    targets,
    medians,
    cpuRatios,
    throughputRatios,
    perRound,
    runs,
    failures
  })
)
console.log(`\nwrote ${file}`)
if (failures.length > 0) {
  console.error(`${failures.length} run(s) failed; their rounds' ratios leave them out`)
  process.exitCode = 1
}

/**
 * `npm run bench:producer`: producer throughput of Kafkit, raw @platformatic/kafka, KafkaJS and
 * Kafka's own Java tool (org.apache.kafka.tools.ProducerPerformance) against the same local broker
 * in one run. Every client sends MESSAGES records of the same 1 KiB value (random capital letters,
 * like ProducerPerformance's own payload) with acks=all and idempotence, once uncompressed and once
 * with lz4, into a fresh one-partition topic per run, in requests of ~500 records with up to 5 in
 * flight (Java: batch.size 512 KiB, linger.ms 5, max.in.flight 5). Node clients run in their own
 * processes (bench/producer/client.ts). ROUNDS rounds, client order rotating per round; the median
 * of each client is reported.
 *
 * Env: MESSAGES (default 200000), ROUNDS (default 3), KAFKA_BROKERS (else a local Kafka on port
 * 9192 is started for the run and stopped after, or reused when one already runs there), CLIENTS
 * (comma-separated subset, default all), BENCH_NODE_FLAGS (extra flags for the Node client
 * processes, e.g. `--cpu-prof`), RESULT_NAME (default `producer`).
 * Writes bench/results/<RESULT_NAME>.json: every run, the medians, `ratios` (kafkit/raw,
 * kafkit/kafkajs, kafkit/java: each the lowest across the compression settings; kafkit means
 * `sendBatch`, the like-for-like call; `kafkit-send/*` is the per-message send()) and `perRound`
 * (kafkit/raw within each round and compression: runs minutes apart see different loads).
 */
import { execFile, spawn } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem, tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Admin } from '@platformatic/kafka'
import { ensureKafkaDistribution } from '../../src/testing/kafka-distribution.ts'
import { kafkaStatus, startKafka, stopKafka } from '../../src/testing/local-kafka.ts'
import { uniqueName } from '../../src/testing/topics.ts'
import { BATCH, IN_FLIGHT, type ClientResult } from './client.ts'

const run = promisify(execFile)
const MESSAGES = Number(process.env.MESSAGES ?? 200_000)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const PORT = 9192
const compressions = ['none', 'lz4'] as const
const nodeClients = ['raw', 'kafkit-batch', 'kafkit-send', 'kafkit-defaults', 'kafkajs'] as const
const allClients = [...nodeClients, 'java'] as const
type Client = (typeof allClients)[number]
const only = process.env.CLIENTS?.split(',').filter(Boolean)
const unknownClients = only?.filter(name => !(allClients as readonly string[]).includes(name)) ?? []
if (unknownClients.length > 0) {
  throw new Error(`CLIENTS names unknown client(s) ${unknownClients.join(', ')}; known: ${allClients.join(', ')}`)
}
const clients = only ? allClients.filter(client => only.includes(client)) : allClients

let brokers = process.env.KAFKA_BROKERS?.split(',').filter(Boolean)
let startedHere = false
if (!brokers?.length) {
  const running = await kafkaStatus({ port: PORT })
  startedHere = !running?.nodes.every(n => n.running)
  brokers = (await startKafka({ port: PORT, log: line => console.error(line) })).bootstrapServers
}
const bootstrap = brokers

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

async function nodeClient(client: string, compression: string, topic: string): Promise<ClientResult> {
  const child = spawn(
    process.execPath,
    [
      '--conditions=development',
      ...(process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
      join(import.meta.dirname, 'client.ts'),
      client,
      compression,
      String(MESSAGES),
      topic,
      payloadFile
    ],
    { env: { ...process.env, KAFKA_BROKERS: bootstrap.join(',') }, stdio: ['ignore', 'pipe', 'inherit'] }
  )
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  if (code !== 0) throw new Error(`${client} exited ${String(code)}`)
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as ClientResult
}

async function javaClient(compression: string, topic: string): Promise<ClientResult> {
  const dist = await ensureKafkaDistribution()
  const { stdout } = await run(
    'java',
    [
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
    ],
    { maxBuffer: 16 * 1024 * 1024 }
  )
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

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

const runs: (ClientResult & { round: number })[] = []
const startedAt = new Date()
const loadBefore = loadavg()
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const compression of compressions) {
      // Rotate the order so no client always runs first (or right after Java's JVM exits).
      const order = clients.map((_, i) => clients[(i + round) % clients.length] as Client)
      for (const client of order) {
        const result = await withTopic(topic =>
          client === 'java' ? javaClient(compression, topic) : nodeClient(client, compression, topic)
        )
        runs.push({ ...result, round })
        console.error(
          `round ${round} ${compression.padEnd(4)} ${client.padEnd(15)} ${result.msgsPerSec.toFixed(0).padStart(8)} msg/s ${result.mbPerSec.toFixed(1).padStart(7)} MB/s${result.failed ? ` (${result.failed} failed)` : ''}`
        )
      }
    }
  }
} finally {
  if (startedHere) await stopKafka({ port: PORT })
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
const rate = (compression: string, client: string) => medians[compression]?.[client]?.msgsPerSec ?? Number.NaN
const lowest = (a: string, b: string) => Math.min(...compressions.map(c => rate(c, a) / rate(c, b)))
const ratios = {
  'kafkit/raw': lowest('kafkit-batch', 'raw'),
  'kafkit/kafkajs': lowest('kafkit-batch', 'kafkajs'),
  'kafkit/java': lowest('kafkit-batch', 'java'),
  'kafkit-send/raw': lowest('kafkit-send', 'raw'),
  'kafkit-send/kafkajs': lowest('kafkit-send', 'kafkajs'),
  'kafkit-defaults/raw': lowest('kafkit-defaults', 'raw')
}

console.log(`\nproducer throughput, ${MESSAGES} x 1 KiB, acks=all, idempotent, median of ${ROUNDS} rounds`)
console.log(`client           ${compressions.map(c => `${c.padStart(10)} msg/s   MB/s  cpu µs/msg`).join('   ')}`)
for (const client of clients) {
  const cells = compressions.map(c => {
    const s = medians[c]?.[client] as Summary
    const cpu = Number.isNaN(s.cpuUsPerMsg) ? '     -' : s.cpuUsPerMsg.toFixed(2).padStart(6)
    return `${s.msgsPerSec.toFixed(0).padStart(16)} ${s.mbPerSec.toFixed(1).padStart(6)}  ${cpu.padStart(10)}`
  })
  console.log(`${client.padEnd(16)} ${cells.join('   ')}`)
}
/** kafkit/raw (sendBatch over raw) within each round, per compression. */
const perRound = Array.from({ length: ROUNDS }, (_, i) => {
  const of = (client: string, compression: string) =>
    runs.find(r => r.round === i + 1 && r.client === client && r.compression === compression)?.msgsPerSec ?? Number.NaN
  const row: Record<string, number> = { round: i + 1 }
  for (const c of compressions) row[`kafkit/raw ${c}`] = of('kafkit-batch', c) / of('raw', c)
  return row
})

console.log('\nratios (lowest across compressions):')
for (const [name, value] of Object.entries(ratios)) console.log(`  ${name.padEnd(20)} ${value.toFixed(3)}`)
console.log(`per round (kafkit/raw ${compressions.join(', ')}):`)
for (const r of perRound) {
  const cells = compressions.map(c => r[`kafkit/raw ${c}`]?.toFixed(3))
  console.log(`  round ${r.round ?? ''}: ${cells.join('  ')}`)
}

await mkdir(join(import.meta.dirname, '..', 'results'), { recursive: true })
const file = join(import.meta.dirname, '..', 'results', `${process.env.RESULT_NAME ?? 'producer'}.json`)
await writeFile(
  file,
  `${JSON.stringify(
    {
      benchmark: 'producer',
      startedAt: startedAt.toISOString(),
      settings: {
        messages: MESSAGES,
        rounds: ROUNDS,
        valueBytes: 1024,
        acks: 'all',
        idempotent: true,
        compressions,
        requestMessages: BATCH,
        inFlight: IN_FLIGHT,
        partitions: 1,
        brokers: bootstrap
      },
      machine: { cpus: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), loadBefore, loadAfter: loadavg() },
      runs,
      medians,
      ratios,
      perRound
    },
    null,
    2
  )}\n`
)
console.log(`\nwrote ${file}`)

/**
 * `npm run bench:outbox`: the transactional outbox's relay against Kafkit's Producer sending the same
 * events straight to Kafka, in one run (target: relay/producer >= 0.5), and the latency from a
 * writer's COMMIT to Kafka's acknowledgement with the relay woken by NOTIFY.
 *
 * Throughput, ROUNDS rounds. Each round fills a fresh outbox table with EVENTS order events (about 370
 * bytes of JSON, a key over KEYS orders, a correlation id): WRITERS concurrent writers commit
 * transactions of TX_EVENTS events (`outbox.transaction` + `addMany`). That write phase is timed on its
 * own (`rowsPerSecond.write`) and is no part of the ratio. The rows are then read back once (as the relay
 * reads them) into a file, and three runs follow, the order rotating from round to round, each in a
 * process of its own on the client core (client.ts explains each):
 * - `relay`: an OutboxRelay (its defaults: batches of 1,000, rows deleted once acknowledged) drains the
 *   table; timed from the end of its first round (connections and JIT warmed) until the table is empty;
 * - `producer`: Kafkit's Producer, configured like the relay's own, sends the same rows (same keys,
 *   values, headers, event ids, built with the relay's `recordOf`) with `sendBatch` in chunks of 1,000,
 *   up to IN_FLIGHT chunks outstanding, timed after its first chunk;
 * - `producerSerial`: the same, one chunk at a time (the relay's rhythm without Postgres).
 * Each gets a fresh topic of PARTITIONS partitions. The ratio `relay/producer` (relay rows/s over
 * producer msgs/s) is computed within each round and reported as the median of the rounds with its
 * spread; CPU µs per event of each client process over its window is reported beside it, and for the
 * relay the CPU of its Postgres backend and where its wall-clock time went (SELECT, sendBatch, settle,
 * the rest).
 *
 * Latency, once after the rounds: a relay runs idle (its defaults: NOTIFY wakes it, a poll every second
 * as a fallback) on a fresh table; WRITERS writers commit single-event transactions on a fixed schedule
 * of LATENCY_RATE per second for LATENCY_SECONDS. Per event: the time the relay's producer had Kafka's
 * acknowledgement (a wrapper on its sendBatch, per event id) minus the time the writer's COMMIT returned,
 * both on the machine's monotonic clock; also to the relay's `published` event (the row deleted).
 *
 * Method (bench/lib/pinning.ts): the broker JVM on one core; this process (the writers) and every
 * client process on the other. Postgres is the machine's own service and is not pinned.
 *
 * A broker that starts fresh answers its first produce requests slowly: one discarded producer run
 * comes before round 1 (WARMUP=0: none).
 *
 * Flags (or the environment variable in brackets): --events (EVENTS, 20000), --rounds (ROUNDS, 5),
 * --writers (WRITERS, 4), --tx-events (TX_EVENTS, 10), --batch-size (BATCH_SIZE, 1000: the relay's
 * batchSize and the producers' chunk), --in-flight (IN_FLIGHT, 5), --partitions (PARTITIONS, 6), --keys
 * (KEYS, 1000), --latency-rate (LATENCY_RATE, 200), --latency-seconds (LATENCY_SECONDS, 10; 0 skips
 * it). Env: WARMUP; RESULT_NAME (default `outbox`); RELAY_PG_OPTIONS (libpq `options` of the relay's
 * Postgres session, for experiments, e.g. `-c enable_bitmapscan=off`, see docs/benchmarks.md);
 * BENCH_NODE_FLAGS (flags for the client processes, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`; each
 * run's result carries its `window` on the monotonic clock, which is the clock of the profile's
 * timestamps, to cut a profile to it); KAFKA_BROKERS (an existing cluster, not pinned), the pinning
 * variables of bench/lib/pinning.ts, DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
 * Writes bench/results/<RESULT_NAME>.json: `targets`, `ratios` (median, min, max of the per-round
 * values), `perRound`, `figures` (medians, `latencyP50Ms`, `latencyP99Ms`), every round's runs and
 * `failures`.
 */
import { spawn } from 'node:child_process'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { newEventId } from '../../src/message/uuid.ts'
import { Outbox, type OutboxEvent } from '../../src/postgres/outbox.ts'
import { selectUnpublished } from '../../src/postgres/outbox-round.ts'
import { createTestTopic } from '../../src/testing/topics.ts'
import { numericSettings } from '../lib/settings.ts'
import { machineFacts } from '../lib/cpus.ts'
import { benchKafka, CLIENT_CPU, PINNING } from '../lib/pinning.ts'
import { codeState, entry, median, printTargets, spread, toJson, type TargetEntry } from '../lib/targets.ts'
import type { Breakdown, ClientConfig, ClientMode, LatencyResult, ThroughputResult } from './client.ts'
import { monotonicMs, orderEvent } from './events.ts'

const flagNames = [
  'events',
  'rounds',
  'writers',
  'tx-events',
  'batch-size',
  'in-flight',
  'partitions',
  'keys',
  'latency-rate',
  'latency-seconds'
]
const setting = numericSettings(flagNames)
const EVENTS = setting('events', 20_000)
const ROUNDS = setting('rounds', 5)
const WRITERS = setting('writers', 4)
const TX_EVENTS = setting('tx-events', 10)
const BATCH_SIZE = setting('batch-size', 1000)
const IN_FLIGHT = setting('in-flight', 5)
const PARTITIONS = setting('partitions', 6)
const KEYS = setting('keys', 1000)
const LATENCY_RATE = setting('latency-rate', 200)
const LATENCY_SECONDS = setting('latency-seconds', 10)
const WARMUP = process.env.WARMUP !== '0'
const RELAY_PG_OPTIONS = process.env.RELAY_PG_OPTIONS || undefined
if (EVENTS < 2 * BATCH_SIZE) throw new Error(`--events must be at least twice --batch-size (${BATCH_SIZE})`)
const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

type Variant = 'relay' | 'producer' | 'producerSerial'
const variants: Variant[] = ['relay', 'producer', 'producerSerial']
const modeOf: Record<Variant, ClientMode> = { relay: 'relay', producer: 'producer', producerSerial: 'producer-serial' }

const startedAt = new Date()
const loadBefore = loadavg()
const code = codeState()
const kafka = await benchKafka()
const bootstrap = kafka.bootstrap
const pool = new pg.Pool({ connectionString: url, max: WRITERS + 2 })
// Postgres is shared: an idle client another session terminates is logged and replaced.
pool.on('error', error => console.error(`postgres pool: ${error.message}`))
const schema = `bench_outbox_${process.pid}`
const rowsFile = join(tmpdir(), `kafkit-bench-outbox-${process.pid}.json`)
const events: OutboxEvent[] = Array.from({ length: EVENTS }, (_, i) => orderEvent(i, KEYS))

/** A client process (client.ts) under taskset on the client core; its stdout read line by line. */
function startClient(config: ClientConfig) {
  const extra = process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []
  const node = [
    process.execPath,
    '--conditions=development',
    ...extra,
    join(import.meta.dirname, 'client.ts'),
    JSON.stringify(config)
  ]
  const [command, ...args] = PINNING ? ['taskset', '-c', String(CLIENT_CPU), ...node] : node
  const child = spawn(command as string, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines: string[] = []
  let wake: (() => void) | undefined
  let exitCode: number | null | undefined
  createInterface({ input: child.stdout }).on('line', line => {
    lines.push(line)
    wake?.()
  })
  const exited = new Promise<number | null>(resolve =>
    child.on('close', code => {
      exitCode = code
      wake?.()
      resolve(code)
    })
  )
  return {
    async nextLine(): Promise<string> {
      while (lines.length === 0) {
        if (exitCode !== undefined) throw new Error(`${config.mode} exited ${String(exitCode)}`)
        await new Promise<void>(resolve => (wake = resolve))
      }
      return lines.shift() as string
    },
    async result<T>(): Promise<T> {
      const exit = await exited
      if (exit !== 0) throw new Error(`${config.mode} exited ${String(exit)}`)
      return JSON.parse(lines.at(-1) ?? '{}') as T
    },
    stop: () => child.stdin.end('stop\n'),
    kill: () => child.kill()
  }
}

const newTopic = () => createTestTopic({ brokers: bootstrap, partitions: PARTITIONS, prefix: 'kafkit.bench.outbox' })

function clientConfig(mode: ClientMode, table: string, topic: string): ClientConfig {
  return {
    mode,
    brokers: bootstrap,
    database: url,
    table,
    topic,
    rowsFile,
    events: EVENTS,
    batchSize: BATCH_SIZE,
    inFlight: IN_FLIGHT,
    pgOptions: RELAY_PG_OPTIONS
  }
}

/** The write phase: WRITERS writers commit transactions of TX_EVENTS events until all are in. */
async function writeAll(outbox: Outbox): Promise<{ seconds: number; rowsPerSec: number }> {
  const chunks = Math.ceil(EVENTS / TX_EVENTS)
  let next = 0
  const started = monotonicMs()
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      for (let chunk = next++; chunk < chunks; chunk = next++) {
        const slice = events.slice(chunk * TX_EVENTS, (chunk + 1) * TX_EVENTS)
        await outbox.transaction(tx => outbox.addMany(tx, slice))
      }
    })
  )
  const seconds = (monotonicMs() - started) / 1000
  return { seconds, rowsPerSec: EVENTS / seconds }
}

let payloadBytes = Number.NaN

/** The rows as the relay reads them, for the producer runs (same keys, values, headers, event ids). */
async function dumpRows(outbox: Outbox): Promise<void> {
  const { rows } = await pool.query<{ payload: string }>(selectUnpublished(outbox.names), [EVENTS])
  if (rows.length !== EVENTS) throw new Error(`the table holds ${rows.length} rows, expected ${EVENTS}`)
  payloadBytes = Math.round(rows.reduce((n, row) => n + Buffer.byteLength(row.payload), 0) / rows.length)
  await writeFile(rowsFile, JSON.stringify(rows))
}

interface Round {
  round: number
  order: Variant[]
  write: { seconds: number; rowsPerSec: number }
  runs: Record<Variant, ThroughputResult>
  ratios: { 'relay/producer': number; 'relay/producerSerial': number; 'relayFromStart/producerFromStart': number }
}

async function oneRound(round: number): Promise<Round> {
  const table = `${schema}.outbox_${round}`
  const relayTopic = await newTopic()
  try {
    const outbox = new Outbox({ pool, table, topic: relayTopic.topic })
    await outbox.createTable()
    const write = await writeAll(outbox)
    console.log(
      `  write          ${write.rowsPerSec.toFixed(0).padStart(7)} rows/s (${write.seconds.toFixed(2)} s, ${WRITERS} writers, ${TX_EVENTS} per transaction)`
    )
    await dumpRows(outbox)
    // A freshly started broker answers its first produce requests slowly (cold JIT): one discarded
    // producer run before the first round's, as bench:producer does.
    if (round === 1 && WARMUP) {
      const topic = await newTopic()
      try {
        const warm = await startClient(clientConfig('producer', table, topic.topic)).result<ThroughputResult>()
        console.log(`  warm-up        ${warm.rowsPerSec.toFixed(0).padStart(7)} rows/s (producer, not counted)`)
      } finally {
        await topic.delete().catch(() => undefined)
      }
    }
    const order = variants.map((_, i) => variants[(i + round - 1) % variants.length] as Variant)
    const runs = {} as Record<Variant, ThroughputResult>
    for (const variant of order) {
      const own = variant === 'relay' ? relayTopic : await newTopic()
      try {
        const run = await startClient(clientConfig(modeOf[variant], table, own.topic)).result<ThroughputResult>()
        if (run.failed !== 0) throw new Error(`${variant}: ${run.failed} events not acknowledged`)
        runs[variant] = run
      } finally {
        if (own !== relayTopic) await own.delete().catch(() => undefined)
      }
      const r = runs[variant]
      const b = r.breakdown
      console.log(
        `  ${variant.padEnd(14)} ${r.rowsPerSec.toFixed(0).padStart(7)} rows/s (${r.seconds.toFixed(2)} s, ${r.cpuUsPerEvent.toFixed(1)} µs CPU/event${
          b
            ? `, Postgres backend ${(r.pgBackendCpuUsPerEvent ?? Number.NaN).toFixed(1)} µs/event; per round ms: select ${(b.selectMs / b.rounds).toFixed(1)}, send ${(b.sendMs / b.rounds).toFixed(1)}, settle ${(b.settleMs / b.rounds).toFixed(1)}, other ${(b.otherMs / b.rounds).toFixed(1)}`
            : ''
        })`
      )
    }
    const left = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${outbox.names.tableSql}`)
    if (left.rows[0]?.n !== 0) throw new Error(`the relay left ${String(left.rows[0]?.n)} rows`)
    await pool.query(`DROP TABLE ${outbox.names.tableSql}, ${outbox.names.deadLettersSql}`)
    const ratios = {
      'relay/producer': runs.relay.rowsPerSec / runs.producer.rowsPerSec,
      'relay/producerSerial': runs.relay.rowsPerSec / runs.producerSerial.rowsPerSec,
      'relayFromStart/producerFromStart': runs.relay.fromStartRowsPerSec / runs.producer.fromStartRowsPerSec
    }
    console.log(
      `  ratios         ${JSON.stringify(ratios, (_k, v: unknown) => (typeof v === 'number' ? +v.toFixed(3) : v))}`
    )
    return { round, order, write, runs, ratios }
  } finally {
    await relayTopic.delete().catch(() => undefined)
  }
}

/** Nearest-rank percentile of unsorted values. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number
}

const r2 = (n: number) => Math.round(n * 100) / 100

async function latencyPhase() {
  const table = `${schema}.outbox_latency`
  const topic = await newTopic()
  const outbox = new Outbox({ pool, table, topic: topic.topic })
  await outbox.createTable()
  const client = startClient(clientConfig('latency', table, topic.topic))
  try {
    // One warm-up event: the relay connects to Postgres and Kafka and leads before the clock runs.
    await outbox.transaction(tx => outbox.add(tx, orderEvent(0, KEYS)))
    const ready = await client.nextLine()
    if (ready !== 'ready') throw new Error(`latency client said ${ready}`)
    const total = Math.round(LATENCY_RATE * LATENCY_SECONDS)
    const committedAt = new Map<string, number>()
    const transactionMs: number[] = []
    let next = 0
    const start = monotonicMs() + 10
    // Open loop: event j is due at start + j / rate, whoever writes it; a late writer does not wait.
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        for (let j = next++; j < total; j = next++) {
          const wait = start + (j * 1000) / LATENCY_RATE - monotonicMs()
          if (wait > 0) await sleep(wait)
          const event = { ...(events[j % events.length] as OutboxEvent), id: newEventId() }
          const began = monotonicMs()
          await outbox.transaction(tx => outbox.add(tx, event))
          const at = monotonicMs()
          committedAt.set(event.id, at)
          transactionMs.push(at - began)
        }
      })
    )
    const writeSeconds = (monotonicMs() - start) / 1000
    const deadline = Date.now() + 60_000
    const left = async () =>
      (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${outbox.names.tableSql}`)).rows[0]?.n
    while ((await left()) !== 0 && Date.now() < deadline) await sleep(20)
    client.stop()
    const result = await client.result<LatencyResult>()
    const acked: number[] = []
    const settled: number[] = []
    let missing = 0
    for (const [id, at] of committedAt) {
      const times = result.times[id]
      if (times === undefined) missing++
      else {
        acked.push(times[0] - at)
        settled.push(times[1] - at)
      }
    }
    if (missing > 0) throw new Error(`latency: ${missing} of ${total} events were not acknowledged`)
    const rounds = result.roundSizes.filter(n => n > 0)
    return {
      events: total,
      ratePerSec: r2(total / writeSeconds),
      writers: WRITERS,
      ackMs: {
        p50: r2(percentile(acked, 50)),
        p90: r2(percentile(acked, 90)),
        p99: r2(percentile(acked, 99)),
        max: r2(Math.max(...acked)),
        mean: r2(acked.reduce((a, b) => a + b, 0) / acked.length)
      },
      deletedMs: { p50: r2(percentile(settled, 50)), p99: r2(percentile(settled, 99)) },
      writerTransactionMs: { p50: r2(percentile(transactionMs, 50)), p99: r2(percentile(transactionMs, 99)) },
      relayRounds: rounds.length,
      emptyRounds: result.selects - rounds.length,
      eventsPerRound: r2(total / rounds.length),
      relayCpuUsPerEvent: r2((result.cpuMs * 1000) / total),
      relaySystemCpuUsPerEvent: r2((result.systemCpuMs * 1000) / total),
      pgBackendCpuUsPerEvent: r2((result.pgBackendCpuMs * 1000) / total),
      cpus: result.cpus
    }
  } finally {
    client.kill()
    await pool.query(`DROP TABLE IF EXISTS ${outbox.names.tableSql}, ${outbox.names.deadLettersSql}`)
    await topic.delete().catch(() => undefined)
  }
}

const rounds: Round[] = []
const failures: { round: number | 'latency'; error: string }[] = []
let latency: Awaited<ReturnType<typeof latencyPhase>> | undefined
try {
  await pool.query(`CREATE SCHEMA ${schema}`)
  for (let round = 1; round <= ROUNDS; round++) {
    console.log(`round ${round}/${ROUNDS}`)
    try {
      rounds.push(await oneRound(round))
    } catch (error) {
      // A failed round is recorded and left out of the ratios; the other rounds still count.
      failures.push({ round, error: String(error) })
      console.error(`  round ${round} FAILED: ${String(error)}`)
    }
  }
  if (LATENCY_SECONDS > 0) {
    console.log(`latency: ${LATENCY_RATE} single-event transactions per second for ${LATENCY_SECONDS} s`)
    try {
      latency = await latencyPhase()
      console.log(
        `  commit to ack  p50 ${latency.ackMs.p50} ms, p99 ${latency.ackMs.p99} ms, max ${latency.ackMs.max} ms (to deleted: p50 ${latency.deletedMs.p50}, p99 ${latency.deletedMs.p99}); ${latency.eventsPerRound} events per relay round, ${latency.relayCpuUsPerEvent} µs relay CPU/event`
      )
    } catch (error) {
      failures.push({ round: 'latency', error: String(error) })
      console.error(`  latency FAILED: ${String(error)}`)
    }
  }
} finally {
  await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined)
  await pool.end()
  await rm(rowsFile, { force: true })
  await kafka.release()
}

const perRound = (name: keyof Round['ratios']) => rounds.map(r => r.ratios[name])
const ratios = {
  'relay/producer': spread(perRound('relay/producer')),
  'relay/producerSerial': spread(perRound('relay/producerSerial')),
  'relayFromStart/producerFromStart': spread(perRound('relayFromStart/producerFromStart'))
}
const targets: Record<string, TargetEntry> = {
  'outbox.relay/producer': entry('outbox.relay/producer', perRound('relay/producer'))
}
const med = (pick: (r: Round) => number) => Math.round(median(rounds.map(pick)))
const medOf = (pick: (r: Round) => number) => r2(median(rounds.map(pick)))
const share = (key: keyof Breakdown) =>
  medOf(r => {
    const b = r.runs.relay.breakdown as Breakdown
    return (b[key] / (r.runs.relay.seconds * 1000)) * 100
  })
const perRoundMs = (key: keyof Breakdown) =>
  medOf(r => {
    const b = r.runs.relay.breakdown as Breakdown
    return b[key] / b.rounds
  })
const figures = {
  rowsPerSecond: {
    relay: med(r => r.runs.relay.rowsPerSec),
    producer: med(r => r.runs.producer.rowsPerSec),
    producerSerial: med(r => r.runs.producerSerial.rowsPerSec),
    write: med(r => r.write.rowsPerSec)
  },
  fromStartRowsPerSecond: {
    relay: med(r => r.runs.relay.fromStartRowsPerSec),
    producer: med(r => r.runs.producer.fromStartRowsPerSec),
    producerSerial: med(r => r.runs.producerSerial.fromStartRowsPerSec)
  },
  cpuUsPerEvent: {
    relay: medOf(r => r.runs.relay.cpuUsPerEvent),
    producer: medOf(r => r.runs.producer.cpuUsPerEvent),
    producerSerial: medOf(r => r.runs.producerSerial.cpuUsPerEvent),
    relayPostgresBackend: medOf(r => r.runs.relay.pgBackendCpuUsPerEvent ?? Number.NaN)
  },
  relayWindowPercent: {
    select: share('selectMs'),
    sendBatch: share('sendMs'),
    settle: share('settleMs'),
    other: share('otherMs')
  },
  relayMsPerRound: {
    select: perRoundMs('selectMs'),
    sendBatch: perRoundMs('sendMs'),
    settle: perRoundMs('settleMs'),
    other: perRoundMs('otherMs')
  },
  latencyP50Ms: latency?.ackMs.p50 ?? Number.NaN,
  latencyP99Ms: latency?.ackMs.p99 ?? Number.NaN,
  latency
}
const result = {
  benchmark: 'outbox',
  startedAt: startedAt.toISOString(),
  finishedAt: new Date().toISOString(),
  code,
  settings: {
    events: EVENTS,
    rounds: ROUNDS,
    writers: WRITERS,
    eventsPerTransaction: TX_EVENTS,
    batchSize: BATCH_SIZE,
    producerInFlight: IN_FLIGHT,
    partitions: PARTITIONS,
    keys: KEYS,
    payloadBytes,
    latencyRate: LATENCY_RATE,
    latencySeconds: LATENCY_SECONDS,
    relayPgOptions: RELAY_PG_OPTIONS ?? null,
    brokers: bootstrap
  },
  method:
    'relay, producer and producerSerial each in a process of its own on the client core (broker JVM on the other), ' +
    'interleaved in rounds with the order rotating; each times the same events after its first batch of BATCH_SIZE ' +
    '(relay: from its first published event until the table is empty; producers: after the first chunk is acknowledged). ' +
    'The write phase is timed separately and is not in the ratio. Latency: relay producer acknowledgement (sendBatch ' +
    'resolved, per event id) minus the return of the writer COMMIT, on the machine monotonic clock.',
  placement: kafka.placement,
  machine: machineFacts(loadBefore),
  targets,
  ratios,
  perRound: Object.fromEntries(Object.keys(ratios).map(name => [name, perRound(name as keyof Round['ratios'])])),
  figures,
  rounds,
  failures
}

console.log(`\nmedians of ${rounds.length} rounds`)
console.log(`  rows/s         ${JSON.stringify(figures.rowsPerSecond)}`)
console.log(`  CPU µs/event   ${JSON.stringify(figures.cpuUsPerEvent)}`)
console.log(`  relay window % ${JSON.stringify(figures.relayWindowPercent)}`)
console.log(`  relay ms/round ${JSON.stringify(figures.relayMsPerRound)}`)
console.log('\nratios (median of the per-round ratios, min..max):')
for (const [name, value] of Object.entries(ratios)) {
  console.log(`  ${name.padEnd(34)} ${value.median.toFixed(3)} (${value.min.toFixed(3)}..${value.max.toFixed(3)})`)
}
console.log('\ntargets:')
printTargets(targets, line => console.log(`  ${line}`))
const dir = join(import.meta.dirname, '..', 'results')
await mkdir(dir, { recursive: true })
const file = join(dir, `${process.env.RESULT_NAME || 'outbox'}.json`)
await writeFile(file, toJson(result))
console.log(`\nwrote ${file}`)
if (failures.length > 0) {
  console.error(`${failures.length} part(s) failed; the ratios leave them out`)
  process.exitCode = 1
}

/**
 * One run of bench/outbox in a process of its own (main.ts starts it under `taskset` on the client
 * core, so every run starts with a fresh heap and JIT): `client.ts <json ClientConfig>`. Prints one JSON
 * line with the figures (the last line); the latency run also prints `ready` and waits for `stop` on
 * stdin.
 *
 * - `relay`: an OutboxRelay (defaults: batches of 1,000, retention 0 so rows are deleted) drains a
 *   filled table. The timed window starts at its first `published` event (its first round, which
 *   connects to Postgres and Kafka and warms the JIT, is left out) and ends at the `published` event
 *   that brings the count to `events`. The process's CPU time over the window is divided by the rows
 *   in it; the CPU of the relay's Postgres backend (/proc/<pid>/schedstat) likewise. The relay's pg
 *   queries and its producer's sendBatch are timed by wrappers on the prototypes (a few calls per
 *   round of 1,000 rows), so the window splits into SELECT, sendBatch (Kafka), settle (BEGIN, DELETE,
 *   COMMIT) and the rest (building the records, the relay's own code, the event loop).
 * - `producer`, `producer-serial`: Kafkit's Producer, configured as the relay configures its own
 *   (idempotent, acks -1, lingerMs 0, bytes serde, every other option default), sends the same rows
 *   (read by main.ts from the outbox table: same keys, values, headers and event ids) built with the
 *   relay's own `recordOf`, with `sendBatch` in chunks of the relay's batch size: `producer` keeps up
 *   to `inFlight` chunks outstanding, `producer-serial` awaits each (the relay's rhythm without
 *   Postgres). The first chunk is sent before the window (connection, producer id, metadata, JIT), as
 *   the relay's first round is.
 * - `latency`: a relay left running; its producer's sendBatch is wrapped to take the time each event
 *   id is acknowledged, and its `published` events give the time the round's rows were deleted.
 */
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import pg from 'pg'
import { bytesSerde } from '../../src/message/serde.ts'
import { OutboxRelay } from '../../src/postgres/outbox-relay.ts'
import { recordOf, type OutboxRow } from '../../src/postgres/outbox-round.ts'
import { Producer } from '../../src/producer/producer.ts'
import type { SendOutcome } from '../../src/producer/types.ts'
import { allowedCpus } from '../lib/cpus.ts'
import { monotonicMs } from './events.ts'

export type ClientMode = 'relay' | 'producer' | 'producer-serial' | 'latency'

export interface ClientConfig {
  mode: ClientMode
  brokers: string[]
  database: string
  table: string
  topic: string
  /** Rows as main.ts read them from the table (producer modes). */
  rowsFile: string
  /** Events in the table (relay, producer modes). */
  events: number
  batchSize: number
  inFlight: number
  /** Libpq-style `options` of the relay's Postgres session (`-c name=value`), an experiment knob. */
  pgOptions: string | undefined
}

export interface Breakdown {
  selectMs: number
  sendMs: number
  settleMs: number
  otherMs: number
  rounds: number
}

export interface ThroughputResult {
  mode: ClientMode
  /** Rows (events) in the timed window: all but the first round's / chunk's. */
  rows: number
  seconds: number
  rowsPerSec: number
  cpuUsPerEvent: number
  /** Start (relay.start() / new Producer) to the last row acknowledged (relay: deleted), every row. */
  fromStartSeconds: number
  fromStartRowsPerSec: number
  /** Relay only: CPU of its Postgres backend per event over the window. */
  pgBackendCpuUsPerEvent?: number
  /** Relay only: where the window's wall-clock time went. */
  breakdown?: Breakdown
  failed: number
  cpus: string
  /** The window on the monotonic clock (ms), to cut a --cpu-prof profile to it. */
  window: [number, number]
}

export interface LatencyResult {
  mode: 'latency'
  /** Event id to [acknowledged, deleted] on the monotonic clock, ms. */
  times: Record<string, [number, number]>
  /** Events per round (per `published` event). */
  roundSizes: number[]
  /** SELECTs of unpublished rows (rounds, those that found nothing included). */
  selects: number
  cpuMs: number
  /** Of cpuMs, in the kernel (socket reads and writes). */
  systemCpuMs: number
  pgBackendCpuMs: number
  cpus: string
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} }

/** Wraps the producer's sendBatch: `after(outcomes, ms in sendBatch)` once Kafka answered. */
function onSendBatch(after: (outcomes: SendOutcome[], ms: number) => void): void {
  // Called with the producer as `this` below.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const original = Producer.prototype.sendBatch
  Producer.prototype.sendBatch = async function (this: Producer, ...args: Parameters<Producer['sendBatch']>) {
    const started = monotonicMs()
    const outcomes = await original.apply(this, args)
    after(outcomes, monotonicMs() - started)
    return outcomes
  }
}

/** Wraps pg's Client.query to time the relay's statements by kind; remembers the backend's pid. */
function onQuery(after: (kind: 'select' | 'settle' | 'other', ms: number) => void): { pid: () => number | null } {
  // Called with the client as `this` below.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const original = pg.Client.prototype.query as (...args: unknown[]) => unknown
  let pid: number | null = null
  pg.Client.prototype.query = function (this: pg.Client & { processID: number | null }, ...args: unknown[]) {
    pid ??= this.processID
    const text = typeof args[0] === 'string' ? args[0] : ''
    const kind = text.startsWith('SELECT id, event_id')
      ? 'select'
      : /^(BEGIN|COMMIT|ROLLBACK|DELETE|UPDATE)/.test(text)
        ? 'settle'
        : 'other'
    const started = monotonicMs()
    const result = original.apply(this, args)
    if (result instanceof Promise) {
      result.then(
        () => after(kind, monotonicMs() - started),
        () => undefined
      )
    }
    return result
  } as typeof pg.Client.prototype.query
  return { pid: () => pid }
}

/** CPU time of a process in ms from /proc/<pid>/schedstat (nanoseconds on a CPU), NaN when unreadable. */
function processCpuMs(pid: number | null): number {
  if (pid === null) return Number.NaN
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6
  } catch {
    return Number.NaN
  }
}

const cpuMs = (since?: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since)
  return (used.user + used.system) / 1000
}

function newRelay(config: ClientConfig): OutboxRelay {
  return new OutboxRelay({
    database: {
      connectionString: config.database,
      application_name: `kafkit-bench-${config.mode}`,
      ...(config.pgOptions ? { options: config.pgOptions } : {})
    },
    brokers: config.brokers,
    table: config.table,
    batchSize: config.batchSize,
    env: {},
    logger: quiet
  })
}

async function relayRun(config: ClientConfig): Promise<ThroughputResult> {
  const spent = { selectMs: 0, sendMs: 0, settleMs: 0, otherMs: 0, rounds: 0 }
  const session = onQuery((kind, ms) => {
    if (kind === 'select') spent.selectMs += ms
    else if (kind === 'settle') spent.settleMs += ms
  })
  onSendBatch((_outcomes, ms) => {
    spent.sendMs += ms
    spent.rounds++
  })
  const relay = newRelay(config)
  let published = 0
  let window: { at: number; cpu: NodeJS.CpuUsage; pgCpuMs: number; rows: number; spent: Breakdown } | undefined
  let end = 0
  const drained = new Promise<void>(resolve => {
    relay.on('published', ({ count }) => {
      published += count
      if (window === undefined) {
        window = {
          at: monotonicMs(),
          cpu: process.cpuUsage(),
          pgCpuMs: processCpuMs(session.pid()),
          rows: published,
          spent: { ...spent }
        }
      } else if (published >= config.events) {
        end = monotonicMs()
        resolve()
      }
    })
  })
  const started = monotonicMs()
  relay.start()
  const timeout = setTimeout(() => {
    console.error(`relay: ${published} of ${config.events} rows after 300 s, state ${relay.health.state}`)
    process.exit(1)
  }, 300_000)
  await drained
  clearTimeout(timeout)
  const cpu = cpuMs((window as NonNullable<typeof window>).cpu)
  const pgCpu = processCpuMs(session.pid())
  const w = window as NonNullable<typeof window>
  await relay.stop()
  const rows = published - w.rows
  const seconds = (end - w.at) / 1000
  const selectMs = spent.selectMs - w.spent.selectMs
  const sendMs = spent.sendMs - w.spent.sendMs
  const settleMs = spent.settleMs - w.spent.settleMs
  return {
    mode: 'relay',
    rows,
    seconds,
    rowsPerSec: rows / seconds,
    cpuUsPerEvent: (cpu * 1000) / rows,
    fromStartSeconds: (end - started) / 1000,
    fromStartRowsPerSec: published / ((end - started) / 1000),
    pgBackendCpuUsPerEvent: ((pgCpu - w.pgCpuMs) * 1000) / rows,
    breakdown: {
      selectMs,
      sendMs,
      settleMs,
      otherMs: end - w.at - selectMs - sendMs - settleMs,
      rounds: spent.rounds - w.spent.rounds
    },
    failed: config.events - published,
    cpus: allowedCpus(),
    window: [w.at, end]
  }
}

async function producerRun(config: ClientConfig, serial: boolean): Promise<ThroughputResult> {
  const rows = (JSON.parse(await readFile(config.rowsFile, 'utf8')) as (OutboxRow & { occurred_at: string })[]).map(
    row => ({ ...row, topic: config.topic, occurred_at: new Date(row.occurred_at) })
  )
  let failed = 0
  const count = (outcomes: SendOutcome[]) => {
    for (const outcome of outcomes) if (!outcome.ok) failed++
  }
  const started = monotonicMs()
  // As the relay configures its own producer (outbox-relay.ts).
  const producer = new Producer<Buffer>({
    lingerMs: 0,
    brokers: config.brokers,
    idempotent: true,
    acks: -1,
    valueSerde: bytesSerde,
    env: {}
  })
  const { batchSize } = config
  count(await producer.sendBatch(rows.slice(0, batchSize).map(recordOf)))
  const at = monotonicMs()
  const cpu = process.cpuUsage()
  const inFlight: Promise<void>[] = []
  for (let sent = batchSize; sent < rows.length; sent += batchSize) {
    const chunk = producer.sendBatch(rows.slice(sent, sent + batchSize).map(recordOf)).then(count)
    if (serial) await chunk
    else {
      inFlight.push(chunk)
      if (inFlight.length >= config.inFlight) await inFlight.shift()
    }
  }
  await Promise.all(inFlight)
  const end = monotonicMs()
  const used = cpuMs(cpu)
  await producer.close()
  const timed = rows.length - batchSize
  return {
    mode: serial ? 'producer-serial' : 'producer',
    rows: timed,
    seconds: (end - at) / 1000,
    rowsPerSec: timed / ((end - at) / 1000),
    cpuUsPerEvent: (used * 1000) / timed,
    fromStartSeconds: (end - started) / 1000,
    fromStartRowsPerSec: rows.length / ((end - started) / 1000),
    failed,
    cpus: allowedCpus(),
    window: [at, end]
  }
}

async function latencyRun(config: ClientConfig): Promise<LatencyResult> {
  const times: Record<string, [number, number]> = {}
  let lastIds: string[] = []
  onSendBatch(outcomes => {
    const at = monotonicMs()
    lastIds = []
    for (const outcome of outcomes) {
      const id = outcome.ok ? outcome.result.eventId : undefined
      if (id === undefined) continue
      times[id] = [at, Number.NaN]
      lastIds.push(id)
    }
  })
  let selects = 0
  const session = onQuery(kind => {
    if (kind === 'select') selects++
  })
  const relay = newRelay(config)
  const roundSizes: number[] = []
  let ready: () => void = () => undefined
  const warm = new Promise<void>(resolve => (ready = resolve))
  relay.on('published', ({ count }) => {
    const at = monotonicMs()
    for (const id of lastIds) (times[id] as [number, number])[1] = at
    lastIds = []
    roundSizes.push(count)
    ready()
  })
  relay.start()
  // The warm-up event main.ts wrote: connected to Postgres and Kafka, leading.
  await warm
  roundSizes.length = 0
  selects = 0
  const cpu = process.cpuUsage()
  const pgCpu = processCpuMs(session.pid())
  process.stdout.write('ready\n')
  for await (const line of createInterface({ input: process.stdin })) if (line.trim() === 'stop') break
  const result: LatencyResult = {
    mode: 'latency',
    times,
    roundSizes,
    selects,
    cpuMs: cpuMs(cpu),
    systemCpuMs: process.cpuUsage(cpu).system / 1000,
    pgBackendCpuMs: processCpuMs(session.pid()) - pgCpu,
    cpus: allowedCpus()
  }
  await relay.stop()
  return result
}

if (import.meta.main) {
  const config = JSON.parse(process.argv[2] ?? '{}') as ClientConfig
  const result =
    config.mode === 'relay'
      ? await relayRun(config)
      : config.mode === 'latency'
        ? await latencyRun(config)
        : await producerRun(config, config.mode === 'producer-serial')
  // Exit once written: the stdin reader of the latency run would keep the process alive.
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0))
}

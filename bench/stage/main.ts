/**
 * `npm run bench:stage`: a Stage (consume -> transform -> produce) exactly once and at least once,
 * against the raw client's own consume + produce loop, in one run (targets: exactlyOnce/atLeastOnce
 * >= 0.7, atLeastOnce/raw >= 0.85).
 *
 * ROUNDS rounds. Each round fills a fresh input topic of PARTITIONS partitions with RECORDS order lines
 * (records.ts: about 200 bytes of JSON, keys over KEYS customers), then runs the sides one after the
 * other, the order rotating from round to round, each in a process of its own on the client core
 * (client.ts explains each) with a fresh consumer group (from the earliest offset), a fresh output
 * topic of PARTITIONS partitions, and the same transform (one output per input, the value with one
 * field added, the same key):
 * - `exactlyOnce`: a Stage with `delivery: 'exactly-once'` and the STAGE_EOS options;
 * - `atLeastOnce`: a Stage with `delivery: 'at-least-once'` and the STAGE_ALO options;
 * - `raw`: @platformatic/kafka's Consumer stream and Producer `send`: outputs in batches of RAW_BATCH,
 *   RAW_IN_FLIGHT sends outstanding, the input offsets committed once their outputs are acknowledged;
 * - on request (SIDES), `kafkitBatch`: Kafkit's Consumer with a batch handler and one `sendBatch` of
 *   its Producer per batch (STAGE_BATCH options), what an at-least-once Stage with a batch path would be.
 * Each side is timed from the moment WARMUP inputs have settled (group joined, producers set up) until
 * the last input settled (its outputs acknowledged; exactly once: its transaction committed);
 * records/s and the client process's CPU µs per record over that window. Per round,
 * `exactlyOnce/atLeastOnce` and `atLeastOnce/raw` are records/s over records/s (`cpuRatios`: CPU per
 * record, the second side's over the first's); the report is the median of the rounds with min and
 * max. After each run the group's committed offsets are read back (they must reach the end of every
 * input partition) and the output topic's end offsets summed (exactly once: the outputs plus one
 * commit marker per transaction and output partition).
 *
 * The Stage settings (`STAGE_EOS`, `STAGE_ALO`, `STAGE_BATCH`: JSON of Stage options, replacing the
 * bench's settings below as a whole) are the ones docs/benchmarks.md argues for; `STAGE_EOS='{}'`
 * and `STAGE_ALO='{}'` run the Stage with every default (at least once, that is about 300 records/s:
 * use RECORDS=10000 then).
 *
 * Method (bench/lib/pinning.ts): the broker JVM (started here on its own port unless it runs already)
 * on one core; this process and every client process on the other. A broker that starts fresh answers
 * its first requests slowly (and creates its offsets and transaction state topics): one discarded
 * round, every side once on a topic of its own, comes before round 1 (WARMUP_RUN=0: none).
 *
 * Flags (or the environment variable in brackets): --records (RECORDS, 100000), --rounds (ROUNDS, 5),
 * --partitions (PARTITIONS, 6), --keys (KEYS, 1000), --warmup (WARMUP, 1000 inputs). Env: SIDES (comma
 * separated, default exactlyOnce,atLeastOnce,raw; also kafkitBatch), STAGE_EOS, STAGE_ALO, STAGE_BATCH,
 * RAW_BATCH (500), RAW_LINGER_MS (5), RAW_IN_FLIGHT (5), WARMUP_RUN, RESULT_NAME (default `stage`),
 * BENCH_NODE_FLAGS (flags for the client processes, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`; each
 * run's `window` is on the monotonic clock of the profile's timestamps, to cut a profile to it),
 * CLIENT_STDOUT=1 (echo the clients' stdout, e.g. for `--trace-gc`), KAFKA_BROKERS (an existing
 * cluster, not pinned) and the pinning variables of bench/lib/pinning.ts. Writes
 * bench/results/<RESULT_NAME>.json: `targets`, `ratios` and `cpuRatios` (median, min, max of the
 * per-round values), `perRound`, `figures` (medians per side), every round's runs and `failures`.
 */
import { spawn } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Admin, Producer } from '@platformatic/kafka'
import { uniqueName } from '../../src/testing/topics.ts'
import { committedRecords } from '../lib/offsets.ts'
import { numericSettings } from '../lib/settings.ts'
import { machineFacts } from '../lib/cpus.ts'
import { benchKafka, CLIENT_CPU, PINNING } from '../lib/pinning.ts'
import { codeState, entry, median, printTargets, spread, toJson, type TargetEntry } from '../lib/targets.ts'
import type { ClientConfig, ClientResult, RawSettings, Side, StageSettings, TransactionBreakdown } from './client.ts'
import { keyOf, orderLine } from './records.ts'

const flagNames = ['records', 'rounds', 'partitions', 'keys', 'warmup']
const setting = numericSettings(flagNames)
const RECORDS = setting('records', 100_000)
const ROUNDS = setting('rounds', 5)
const PARTITIONS = setting('partitions', 6)
const KEYS = setting('keys', 1000)
const WARMUP = setting('warmup', 1000)
const WARMUP_RUN = process.env.WARMUP_RUN !== '0'
if (RECORDS < 2 * WARMUP) throw new Error(`--records must be at least twice --warmup (${WARMUP})`)

const defaultSides: Side[] = ['exactlyOnce', 'atLeastOnce', 'raw']
const allSides: Side[] = [...defaultSides, 'kafkitBatch']
const sides = (process.env.SIDES ?? defaultSides.join(',')).split(',').filter(Boolean) as Side[]
for (const side of sides) if (!allSides.includes(side)) throw new Error(`SIDES: unknown side ${side}`)

/**
 * The Stage settings of the bench, as a user could set them (why, with the figures of the defaults:
 * docs/benchmarks.md, "Stages"). Both: the producer's `lingerMs` 0, since each input (at least once) or
 * each transaction (exactly once) waits for its outputs' acknowledgement, so a linger only adds to that
 * wait (outputs still share requests while the requests in flight are busy).
 * - Exactly once: the Stage's defaults (its producers do not linger; the buffer has room for a full
 *   transaction per partition being worked on and one queued behind it).
 * - At least once: partition concurrency, so a partition's inputs come as batches whose outputs go out
 *   in one sendBatch (in key mode each input's outputs are sent and awaited on their own: there, at
 *   least `limit: 1000` inputs in parallel are needed for outputs to share produce requests).
 */
const DEFAULT_EOS: StageSettings = {}
const DEFAULT_ALO: StageSettings = { concurrency: { mode: 'partition', limit: 8 } }
/** kafkitBatch (see client.ts): what the Stage at least once would be with a batch path. */
const DEFAULT_BATCH: StageSettings = { maxBufferedRecords: 6000, producer: { lingerMs: 0 } }
function stageSettings(name: string, fallback: StageSettings): StageSettings {
  const text = process.env[name]
  return text === undefined ? fallback : (JSON.parse(text) as StageSettings)
}
const STAGE: Record<Exclude<Side, 'raw'>, StageSettings> = {
  exactlyOnce: stageSettings('STAGE_EOS', DEFAULT_EOS),
  atLeastOnce: stageSettings('STAGE_ALO', DEFAULT_ALO),
  kafkitBatch: stageSettings('STAGE_BATCH', DEFAULT_BATCH)
}
const RAW: RawSettings = {
  batch: Number(process.env.RAW_BATCH ?? 500),
  lingerMs: Number(process.env.RAW_LINGER_MS ?? 5),
  inFlight: Number(process.env.RAW_IN_FLIGHT ?? 5)
}

const startedAt = new Date()
const loadBefore = loadavg()
const code = codeState()
const kafka = await benchKafka()
const bootstrap = kafka.bootstrap
const admin = new Admin({ clientId: 'bench-stage-admin', bootstrapBrokers: bootstrap })

async function createTopic(prefix: string): Promise<string> {
  const topic = uniqueName(prefix)
  await admin.createTopics({ topics: [topic], partitions: PARTITIONS, replicas: 1 })
  for (let i = 0; i < 100; i++) {
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true })
    if (metadata.topics.get(topic)?.partitionsCount === PARTITIONS) break
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return topic
}

async function endOffsets(topic: string): Promise<number[]> {
  const [listed] = await admin.listOffsets({
    topics: [
      { name: topic, partitions: Array.from({ length: PARTITIONS }, (_, i) => ({ partitionIndex: i, timestamp: -1n })) }
    ]
  })
  const ends = Array.from({ length: PARTITIONS }, () => 0)
  for (const p of listed?.partitions ?? []) ends[p.partitionIndex] = Number(p.offset)
  return ends
}

let valueBytes = Number.NaN

/** A fresh input topic with `total` order lines; returns each partition's end offset. */
async function fill(total: number): Promise<{ topic: string; ends: number[]; seconds: number }> {
  const topic = await createTopic('kafkit.bench.stage.in')
  const producer = new Producer({ clientId: 'bench-stage-fill', bootstrapBrokers: bootstrap, idempotent: true })
  const started = performance.now()
  let bytes = 0
  try {
    const inFlight: Promise<unknown>[] = []
    for (let from = 0; from < total; from += 1000) {
      const messages = []
      for (let i = from; i < Math.min(total, from + 1000); i++) {
        const value = Buffer.from(JSON.stringify(orderLine(i, KEYS)))
        bytes += value.length
        messages.push({ topic, key: Buffer.from(keyOf(i, KEYS)), value })
      }
      inFlight.push(producer.send({ messages, acks: -1 }))
      if (inFlight.length >= 5) await inFlight.shift()
    }
    await Promise.all(inFlight)
  } finally {
    await producer.close()
  }
  valueBytes = Math.round(bytes / total)
  const ends = await endOffsets(topic)
  const sum = ends.reduce((a, b) => a + b, 0)
  // Retried sends can land twice on a busy machine (bench:consumer sees it too); every side then
  // reads the same extra records, and counts by the end offsets.
  if (sum !== total) console.error(`${topic} holds ${sum} records (${sum - total} more than sent: retried sends)`)
  return { topic, ends, seconds: (performance.now() - started) / 1000 }
}

/** A client process (client.ts) under taskset on the client core; resolves with its last line. */
async function runSide(config: ClientConfig): Promise<ClientResult> {
  const extra = process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []
  const node = [
    process.execPath,
    '--conditions=development',
    ...extra,
    join(import.meta.dirname, 'client.ts'),
    JSON.stringify(config)
  ]
  const [command, ...args] = PINNING ? ['taskset', '-c', String(CLIENT_CPU), ...node] : node
  const child = spawn(command as string, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: string[] = []
  createInterface({ input: child.stdout }).on('line', line => {
    if (process.env.CLIENT_STDOUT) console.error(line)
    lines.push(line)
  })
  const exit = await new Promise<number | null>(resolve => child.on('close', resolve))
  if (exit !== 0) throw new Error(`${config.side} exited ${String(exit)}`)
  // The last JSON line (flags such as --trace-gc print to stdout too).
  return JSON.parse(lines.findLast(line => line.startsWith('{')) ?? '{}') as ClientResult
}

interface Run extends ClientResult {
  /** Inputs the group's committed offsets cover after the run (must be all). */
  committed: number
  /** Sum of the output topic's end offsets. */
  outputOffsets: number
}

async function oneSide(side: Side, input: string, ends: number[]): Promise<Run> {
  const output = await createTopic(`kafkit.bench.stage.out.${side}`)
  const group = uniqueName(`kafkit.bench.stage.${side}`)
  try {
    const result = await runSide({
      side,
      brokers: bootstrap,
      input,
      output,
      group,
      ends,
      warmup: WARMUP,
      stage: side === 'raw' ? {} : STAGE[side],
      raw: RAW
    })
    const committed = await committedRecords(admin, group, input, ends)
    const outputOffsets = (await endOffsets(output)).reduce((a, b) => a + b, 0)
    return { ...result, committed, outputOffsets }
  } finally {
    await admin.deleteTopics({ topics: [output] }).catch(() => undefined)
  }
}

type RatioName = 'exactlyOnce/atLeastOnce' | 'atLeastOnce/raw' | 'exactlyOnce/raw' | 'kafkitBatch/raw'
const pairs: Record<RatioName, [Side, Side]> = {
  'exactlyOnce/atLeastOnce': ['exactlyOnce', 'atLeastOnce'],
  'atLeastOnce/raw': ['atLeastOnce', 'raw'],
  'exactlyOnce/raw': ['exactlyOnce', 'raw'],
  'kafkitBatch/raw': ['kafkitBatch', 'raw']
}
/** The ratios whose two sides run. */
const ratioNames = (Object.keys(pairs) as RatioName[]).filter(name => pairs[name].every(side => sides.includes(side)))

interface Round {
  round: number
  order: Side[]
  fillSeconds: number
  runs: Partial<Record<Side, Run>>
  ratios: Partial<Record<RatioName, number>>
  cpuRatios: Partial<Record<RatioName, number>>
}

const f0 = (n: number) => n.toFixed(0)
function describe(run: Run): string {
  const tx = run.transactionMs
  return (
    `${f0(run.recordsPerSec).padStart(7)} rec/s (${run.seconds.toFixed(2)} s, ${run.cpuUsPerRecord.toFixed(1)} µs CPU/record; ` +
    `from first ${f0(run.fromFirstRecordsPerSec)} rec/s; start ${f0(run.startMs)} ms, commit tail ${f0(run.commitTailMs)} ms` +
    `${run.transactions ? `, ${run.transactions} transactions` : ''}${run.duplicates ? `, ${run.duplicates} duplicates` : ''})` +
    (tx && tx.count > 0
      ? `\n                 per transaction ms: produce ${(tx.produce / tx.count).toFixed(1)}, offsets ${(tx.offsets / tx.count).toFixed(1)}, ` +
        `commit ${(tx.commit / tx.count).toFixed(1)}, between ${(tx.between / tx.count).toFixed(1)} (${tx.count} in the window)`
      : '')
  )
}

async function oneRound(round: number): Promise<Round> {
  const { topic, ends, seconds: fillSeconds } = await fill(RECORDS)
  const inputs = ends.reduce((a, b) => a + b, 0)
  console.log(`  fill           ${inputs} records in ${fillSeconds.toFixed(2)} s (partitions ${ends.join(', ')})`)
  try {
    const order = sides.map((_, i) => sides[(i + round - 1) % sides.length] as Side)
    const runs: Partial<Record<Side, Run>> = {}
    for (const side of order) {
      const run = await oneSide(side, topic, ends)
      console.log(`  ${side.padEnd(14)} ${describe(run)}`)
      if (run.committed !== inputs) throw new Error(`${side}: the group committed ${run.committed} of ${inputs} inputs`)
      runs[side] = run
    }
    const ratio = (a: Side, b: Side, of: (r: Run) => number) =>
      runs[a] && runs[b] ? of(runs[a]) / of(runs[b]) : Number.NaN
    const ratios: Partial<Record<RatioName, number>> = {}
    const cpuRatios: Partial<Record<RatioName, number>> = {}
    for (const name of ratioNames) {
      const [a, b] = pairs[name]
      ratios[name] = ratio(a, b, r => r.recordsPerSec)
      // CPU: the other side's µs per record over this one's (higher is better for the first side).
      cpuRatios[name] = ratio(b, a, r => r.cpuUsPerRecord)
    }
    const show = (o: object) => JSON.stringify(o, (_k, v: unknown) => (typeof v === 'number' ? +v.toFixed(3) : v))
    console.log(`  ratios         ${show(ratios)}`)
    console.log(`  CPU ratios     ${show(cpuRatios)}`)
    return { round, order, fillSeconds, runs, ratios, cpuRatios }
  } finally {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined)
  }
}

const rounds: Round[] = []
const failures: { round: number; error: string }[] = []
try {
  if (WARMUP_RUN) {
    // A fresh broker creates its offsets and transaction state topics and compiles its hot paths on
    // the first runs (its transactional ones take longest: 20,000 inputs left the first rounds of
    // exactlyOnce 30-40 % slower than the last): one discarded round.
    const { topic, ends } = await fill(RECORDS)
    try {
      for (const side of sides) {
        const run = await oneSide(side, topic, ends)
        console.log(`warm-up ${side.padEnd(14)} ${f0(run.recordsPerSec)} rec/s (not counted)`)
      }
    } finally {
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined)
    }
  }
  for (let round = 1; round <= ROUNDS; round++) {
    console.log(`round ${round}/${ROUNDS}`)
    try {
      rounds.push(await oneRound(round))
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error)
      console.error(`round ${round} failed: ${text}`)
      failures.push({ round, error: text })
    }
  }
} finally {
  await admin.close()
  await kafka.release()
}

const perRound = (name: RatioName, of: 'ratios' | 'cpuRatios' = 'ratios') => rounds.map(r => r[of][name] ?? Number.NaN)
const round3 = (n: number) => Math.round(n * 1000) / 1000
const ratios = Object.fromEntries(
  ratioNames.map(name => {
    const s = spread(perRound(name))
    return [name, { median: round3(s.median), min: round3(s.min), max: round3(s.max) }]
  })
)
const cpuRatios = Object.fromEntries(
  ratioNames.map(name => {
    const s = spread(perRound(name, 'cpuRatios'))
    return [name, { median: round3(s.median), min: round3(s.min), max: round3(s.max) }]
  })
)
const targets: Record<string, TargetEntry> = {}
for (const name of ['exactlyOnce/atLeastOnce', 'atLeastOnce/raw'] as const)
  if (ratioNames.includes(name)) targets[`stage.${name}`] = entry(`stage.${name}`, perRound(name))

const medianOf = (of: (r: Run) => number) =>
  Object.fromEntries(
    sides.map(side => [
      side,
      round3(median(rounds.map(r => (r.runs[side] ? of(r.runs[side]) : Number.NaN)).filter(Number.isFinite)))
    ])
  )
const figures = {
  recordsPerSec: medianOf(r => Math.round(r.recordsPerSec)),
  cpuUsPerRecord: medianOf(r => r.cpuUsPerRecord),
  fromFirstRecordsPerSec: medianOf(r => Math.round(r.fromFirstRecordsPerSec)),
  fromFirstCpuUsPerRecord: medianOf(r => r.fromFirstCpuUsPerRecord),
  startMs: medianOf(r => Math.round(r.startMs)),
  commitTailMs: medianOf(r => r.commitTailMs),
  transactions: medianOf(r => r.transactions),
  produceRequests: medianOf(r => r.produceRequests ?? Number.NaN),
  /** exactlyOnce: ms per transaction of the window, by phase (client.ts instrumentTransactions). */
  transactionMs: Object.fromEntries(
    (['produce', 'offsets', 'commit', 'between'] as const).map(phase => [
      phase,
      round3(
        median(
          rounds
            .map(r => r.runs.exactlyOnce?.transactionMs)
            .filter(tx => tx !== undefined && tx.count > 0)
            .map(tx => (tx as TransactionBreakdown)[phase] / (tx as TransactionBreakdown).count)
        )
      )
    ])
  ),
  peakRssMb: medianOf(r => r.peakRssMb)
}

const result = {
  startedAt: startedAt.toISOString(),
  finishedAt: new Date().toISOString(),
  code,
  settings: {
    records: RECORDS,
    valueBytes,
    rounds: ROUNDS,
    partitions: PARTITIONS,
    keys: KEYS,
    warmup: WARMUP,
    warmupRun: WARMUP_RUN,
    sides,
    stage: STAGE,
    raw: RAW,
    brokers: bootstrap
  },
  method:
    'exactlyOnce (Stage), atLeastOnce (Stage) and raw (@platformatic/kafka Consumer stream + Producer send, batched, ' +
    'offsets committed after the acknowledgement) each in a process of its own on the client core (broker JVM on the other), ' +
    'interleaved in rounds with the order rotating, the same input topic per round, a fresh group and output topic each; ' +
    'each timed from WARMUP settled inputs to the last input settled (outputs acknowledged; ' +
    'exactly once: transaction committed); records/s and client CPU µs per record over that window; ratios per round, ' +
    'median with min and max.',
  placement: kafka.placement,
  machine: machineFacts(loadBefore),
  targets,
  ratios,
  cpuRatios,
  perRound: Object.fromEntries(ratioNames.map(name => [name, perRound(name).map(round3)])),
  figures,
  rounds,
  failures
}

console.log(`\nmedians of ${rounds.length} rounds`)
console.log(`  records/s        ${JSON.stringify(figures.recordsPerSec)}`)
console.log(`  CPU µs/record    ${JSON.stringify(figures.cpuUsPerRecord)}`)
console.log(`  from first rec/s ${JSON.stringify(figures.fromFirstRecordsPerSec)}`)
console.log('\nratios of records/s (median of the per-round ratios, min..max):')
for (const [name, value] of Object.entries(ratios)) {
  console.log(`  ${name.padEnd(24)} ${value.median.toFixed(3)} (${value.min.toFixed(3)}..${value.max.toFixed(3)})`)
}
console.log('CPU per record, the other side over the first (min..max):')
for (const [name, value] of Object.entries(cpuRatios)) {
  console.log(`  ${name.padEnd(24)} ${value.median.toFixed(3)} (${value.min.toFixed(3)}..${value.max.toFixed(3)})`)
}
console.log('\ntargets:')
printTargets(targets, line => console.log(`  ${line}`))
const dir = join(import.meta.dirname, '..', 'results')
await mkdir(dir, { recursive: true })
const file = join(dir, `${process.env.RESULT_NAME || 'stage'}.json`)
await writeFile(file, toJson(result))
console.log(`\nwrote ${file} after ${((Date.now() - startedAt.getTime()) / 60_000).toFixed(1)} min`)
if (failures.length > 0) {
  console.error(`${failures.length} round(s) failed; the ratios leave them out`)
  process.exitCode = 1
}

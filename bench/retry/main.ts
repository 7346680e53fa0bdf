/**
 * `npm run bench:retry`: healthy-record throughput of a consumer with retry tiers while 10% of the records fail
 * into the retry tiers, against the same run with no failures (target: withFailures/noFailures >= 0.9),
 * and against a plain Consumer without retry tiers (what the retry flow costs when nothing fails).
 *
 * Two workloads:
 * - `io` (the target's): the handler awaits WORK_MS of simulated I/O with LIMIT calls at once (key
 *   ordering), so throughput is bound by the handler's I/O, as in a service that calls a database or an
 *   API: it shows whether failing records hold up healthy ones;
 * - `cpu` (on request): no I/O (WORK_MS 0, CPU_LIMIT calls), so throughput is bound by the CPU of the
 *   client's core: it shows what the extra produce + consume of each retried record costs.
 *
 * Each run gets its own topic, filled with the same records (VALUE_BYTES of JSON with an id, keys over
 * KEYS), and fresh groups. In `withFailures` every FAIL_EVERY-th record fails transiently on the origin
 * (MAX_RETRIES in-place retries first) and succeeds on the first tier (TIERS ms), so the tier consumers
 * work during the run. Healthy throughput = records that never fail / (last of them handled - first
 * record handled). The run then waits for every retried record to succeed (DRAIN=0: it does not) and
 * reports how long that took. ROUNDS rounds, the variants interleaved (each round runs every variant
 * once, the order rotating); the target ratio is computed within each round and reported as the median
 * of the rounds with its spread (bench/lib/targets.ts).
 *
 * Method (bench/lib/pinning.ts): the broker JVM runs on one core, this process (the consumers) on the
 * other. The target is a throughput ratio of an I/O-bound handler; CPU per record is reported beside it.
 *
 * Env: WORKLOADS (io; cpu on request), VARIANTS (noFailures,withFailures; plain on request), MESSAGES
 * (20000, io), CPU_MESSAGES (50000), PARTITIONS (6), KEYS (1000), VALUE_BYTES (256), WORK_MS (5), LIMIT
 * (16), CPU_LIMIT (64), ORDERING (key|partition, default key), FAIL_EVERY (10), TIERS (1000,2000),
 * MAX_RETRIES (0), PER_KEY (1: per-key ordering in the runs with retry tiers), ROUNDS (5), DRAIN (0:
 * do not wait for the retried records), KAFKA_BROKERS (an existing cluster, not pinned) and the pinning
 * variables of bench/lib/pinning.ts. Writes bench/results/retry.json with every run, medians, `targets`,
 * `ratios` and `perRound`.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { machineFacts } from '../lib/cpus.ts'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Admin, Producer } from '@platformatic/kafka'
import { Consumer } from '../../src/consumer/consumer.ts'
import { TransientError } from '../../src/handling/errors.ts'
import type { MessageHandler } from '../../src/handling/types.ts'
import { uniqueName } from '../../src/testing/topics.ts'
import { benchKafka } from '../lib/pinning.ts'
import { codeState, entry, median, printTargets, spread, toJson, type TargetEntry } from '../lib/targets.ts'

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const MESSAGES = env('MESSAGES', 20_000)
const CPU_MESSAGES = env('CPU_MESSAGES', 50_000)
const PARTITIONS = env('PARTITIONS', 6)
const KEYS = env('KEYS', 1000)
const VALUE_BYTES = env('VALUE_BYTES', 256)
const ORDERING = (process.env.ORDERING ?? 'key') as 'key' | 'partition'
const FAIL_EVERY = env('FAIL_EVERY', 10)
const TIERS = (process.env.TIERS ?? '1000,2000').split(',').map(Number)
const MAX_RETRIES = env('MAX_RETRIES', 0)
const PER_KEY = process.env.PER_KEY === '1'
const ROUNDS = env('ROUNDS', 5)
const DRAIN = process.env.DRAIN !== '0'

type Variant = 'plain' | 'noFailures' | 'withFailures'
const variants = (process.env.VARIANTS ?? 'noFailures,withFailures').split(',').filter(Boolean) as Variant[]
const workloads = {
  io: { messages: MESSAGES, workMs: env('WORK_MS', 5), limit: env('LIMIT', 16) },
  cpu: { messages: CPU_MESSAGES, workMs: 0, limit: env('CPU_LIMIT', 64) }
}
type Workload = keyof typeof workloads
const chosen = (process.env.WORKLOADS ?? 'io').split(',').filter(Boolean) as Workload[]

const kafka = await benchKafka()
const bootstrap = kafka.bootstrap
const admin = new Admin({ clientId: 'bench-retry-admin', bootstrapBrokers: bootstrap })
const quiet = { debug() {}, info() {}, warn() {}, error: (fields: object, message: string) => void [fields, message] }
const failing = (id: number) => FAIL_EVERY > 0 && id % FAIL_EVERY === 0
const failingOf = (messages: number) => Math.ceil(messages / FAIL_EVERY)

async function fill(topic: string, total: number): Promise<void> {
  await admin.createTopics({ topics: [topic], partitions: PARTITIONS, replicas: 1 })
  const producer = new Producer({ clientId: 'bench-retry-fill', bootstrapBrokers: bootstrap, idempotent: true })
  const pad = 'x'.repeat(Math.max(0, VALUE_BYTES - 40))
  try {
    const inFlight: Promise<unknown>[] = []
    for (let sent = 0; sent < total; sent += 1000) {
      const messages = Array.from({ length: Math.min(1000, total - sent) }, (_v, i) => {
        const id = sent + i
        return {
          topic,
          key: Buffer.from(`key-${String(id % KEYS).padStart(4, '0')}`),
          value: Buffer.from(JSON.stringify({ id, pad }))
        }
      })
      inFlight.push(producer.send({ messages, acks: -1 }))
      if (inFlight.length >= 4) await inFlight.shift()
    }
    await Promise.all(inFlight)
  } finally {
    await producer.close()
  }
}

async function dropTopics(origin: string): Promise<void> {
  const topics = (await admin.listTopics()).filter(name => name === origin || name.startsWith(`${origin}.`))
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined)
}

interface RunResult {
  workload: Workload
  variant: Variant
  round: number
  healthyPerSec: number
  /** First record handled to last healthy record handled. */
  healthySeconds: number
  /** First record handled to the last retried record succeeding (withFailures). */
  drainSeconds: number | undefined
  retriedOnTiers: number
  handlings: number
  /** CPU time of this process (user + system) per record, start to drained, broker excluded. */
  cpuUsPerRecord: number
}

async function run(workload: Workload, variant: Variant, round: number): Promise<RunResult> {
  const { messages, workMs, limit } = workloads[workload]
  const failingTotal = FAIL_EVERY > 0 ? failingOf(messages) : 0
  const healthyTotal = messages - failingTotal
  const topic = uniqueName(`bench-retry-${workload}-${variant}`)
  await fill(topic, messages)
  let first = 0
  let lastHealthy = 0
  let lastRetried = 0
  let healthy = 0
  let retried = 0
  let handlings = 0
  const seenHealthy = new Set<number>()
  const seenRetried = new Set<number>()
  const handler: MessageHandler<{ id: number }> = async message => {
    if (first === 0) first = performance.now()
    handlings++
    if (workMs > 0) await sleep(workMs)
    const { id } = message.value
    const onOrigin = message.topic === topic
    if (variant === 'withFailures' && failing(id)) {
      if (onOrigin) throw new TransientError(`record ${id} fails once`)
      if (!seenRetried.has(id)) {
        seenRetried.add(id)
        retried++
        lastRetried = performance.now()
      }
      return
    }
    if (!failing(id) && !seenHealthy.has(id)) {
      seenHealthy.add(id)
      healthy++
      lastHealthy = performance.now()
    }
  }
  const common = {
    brokers: bootstrap,
    groupId: uniqueName(`bench-retry-${variant}`),
    topics: [topic],
    startOffset: 'earliest' as const,
    maxRetries: MAX_RETRIES,
    concurrency: { mode: ORDERING, limit },
    logger: quiet,
    env: {},
    handler
  }
  const consumer =
    variant === 'plain'
      ? new Consumer<{ id: number }>(common)
      : new Consumer<{ id: number }>({ ...common, retry: { tiers: TIERS, perKeyOrdering: PER_KEY } })
  const cpuBefore = process.cpuUsage()
  await consumer.start()
  const deadline = Date.now() + 600_000
  const expectRetried = variant === 'withFailures' && DRAIN ? failingTotal : 0
  while ((healthy < healthyTotal || retried < expectRetried) && Date.now() < deadline) await sleep(20)
  const cpu = process.cpuUsage(cpuBefore)
  await consumer.stop()
  await dropTopics(topic)
  if (healthy < healthyTotal || retried < expectRetried) {
    throw new Error(
      `${variant}: only ${healthy}/${healthyTotal} healthy and ${retried}/${expectRetried} retried records`
    )
  }
  const healthySeconds = (lastHealthy - first) / 1000
  return {
    workload,
    variant,
    round,
    healthyPerSec: healthyTotal / healthySeconds,
    healthySeconds,
    drainSeconds: variant === 'withFailures' && DRAIN ? (lastRetried - first) / 1000 : undefined,
    retriedOnTiers: retried,
    handlings,
    cpuUsPerRecord: (cpu.user + cpu.system) / messages
  }
}

const startedAt = new Date()
const loadBefore = loadavg()
const code = codeState()
const runs: RunResult[] = []
const failures: { workload: Workload; variant: Variant; round: number; error: string }[] = []
try {
  for (const workload of chosen) {
    for (let round = 1; round <= ROUNDS; round++) {
      const order = variants.map((_v, i) => variants[(i + round - 1) % variants.length] as Variant)
      for (const variant of order) {
        let result: RunResult
        try {
          result = await run(workload, variant, round)
        } catch (error) {
          // One failed run is recorded and leaves its round's ratio out; the other runs still count.
          failures.push({ workload, variant, round, error: String(error) })
          console.error(`${workload} round ${round} ${variant.padEnd(12)} FAILED: ${String(error)}`)
          continue
        }
        runs.push(result)
        console.error(
          `${workload} round ${round} ${variant.padEnd(12)} ${result.healthyPerSec.toFixed(0).padStart(7)} healthy rec/s (${result.healthySeconds.toFixed(2)} s, ${result.cpuUsPerRecord.toFixed(0)} us CPU/record)${result.drainSeconds === undefined ? '' : `, retries drained after ${result.drainSeconds.toFixed(2)} s`}`
        )
      }
    }
  }
} finally {
  await admin.close()
  await kafka.release()
}

const medians: Record<string, Partial<Record<Variant, number>>> = {}
const cpuUsPerRecord: Record<string, Partial<Record<Variant, number>>> = {}
const perRound: Record<string, number[]> = {}
const ratios: Record<string, ReturnType<typeof spread>> = {}
const targets: Record<string, TargetEntry> = {}
const has = (...wanted: Variant[]) => wanted.every(v => variants.includes(v))
for (const workload of chosen) {
  const of = (variant: Variant) => runs.filter(r => r.workload === workload && r.variant === variant)
  const inRound = (variant: Variant, round: number) =>
    of(variant).find(r => r.round === round)?.healthyPerSec ?? Number.NaN
  const rounds = Array.from({ length: ROUNDS }, (_, i) => i + 1)
  medians[workload] = Object.fromEntries(variants.map(v => [v, median(of(v).map(r => r.healthyPerSec))]))
  cpuUsPerRecord[workload] = Object.fromEntries(variants.map(v => [v, median(of(v).map(r => r.cpuUsPerRecord))]))
  // The io workload carries the issue's target under its plain name.
  const prefix = workload === 'io' ? '' : `${workload}:`
  const pairs: [Variant, Variant][] = [
    ['withFailures', 'noFailures'],
    ['noFailures', 'plain']
  ]
  for (const [a, b] of pairs) {
    if (!has(a, b)) continue
    const name = `${prefix}${a}/${b}`
    perRound[name] = rounds.map(round => inRound(a, round) / inRound(b, round))
    ratios[name] = spread(perRound[name])
  }
  if (workload === 'io' && has('withFailures', 'noFailures')) {
    targets['retry.withFailures/noFailures'] = entry(
      'retry.withFailures/noFailures',
      perRound['withFailures/noFailures'] as number[]
    )
  }
  console.log(`\n${workload}: healthy records/s (median of ${ROUNDS}), CPU µs per record`)
  for (const variant of variants) {
    console.log(
      `  ${variant.padEnd(14)} ${(medians[workload][variant] ?? Number.NaN).toFixed(0).padStart(8)} ${(cpuUsPerRecord[workload][variant] ?? Number.NaN).toFixed(1).padStart(8)}`
    )
  }
}
console.log('\nratios (median of the per-round ratios, min..max):')
for (const [name, value] of Object.entries(ratios)) {
  console.log(
    `  ${name.padEnd(30)} ${value.median.toFixed(3)} (${value.min.toFixed(3)}..${value.max.toFixed(3)})   per round ${perRound[name]?.map(r => r.toFixed(3)).join(', ') ?? '-'}`
  )
}
console.log('\ntargets:')
printTargets(targets, line => console.log(`  ${line}`))

await mkdir(join(import.meta.dirname, '..', 'results'), { recursive: true })
const file = join(import.meta.dirname, '..', 'results', 'retry.json')
await writeFile(
  file,
  toJson({
    benchmark: 'retry',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    code,
    settings: {
      workloads: Object.fromEntries(chosen.map(w => [w, workloads[w]])),
      variants,
      partitions: PARTITIONS,
      keys: KEYS,
      valueBytes: VALUE_BYTES,
      ordering: ORDERING,
      failEvery: FAIL_EVERY,
      tiersMs: TIERS,
      maxRetries: MAX_RETRIES,
      perKeyOrdering: PER_KEY,
      rounds: ROUNDS,
      drain: DRAIN,
      brokers: bootstrap
    },
    placement: kafka.placement,
    machine: machineFacts(loadBefore),
    targets,
    medians,
    cpuUsPerRecord,
    ratios,
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

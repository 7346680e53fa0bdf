/**
 * `npm run bench`: the producer, consumer, retry, sink, outbox and stage benchmarks one after the other against one
 * local Kafka (started here with its JVM pinned to one core, see bench/lib/pinning.ts; every benchmark
 * and its client processes run on the other core), then bench/results/summary.json with every target
 * of the issue (`ratios`: median of the per-round values, min, max, target, met) and the figures behind
 * them (`figures`), and a table of the targets at the end.
 *
 * Each benchmark is its own program (`npm run bench:producer` etc.) run here with its defaults; their
 * environment variables pass through (MESSAGES, ROUNDS, ... apply to every benchmark that reads them,
 * so set them per benchmark only when running one). BENCHES picks a subset (default
 * producer,consumer,retry,sink,outbox,stage). The exit code is 1 when a benchmark failed, not when a target is missed.
 */
import { spawn } from 'node:child_process'
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { machineFacts } from './lib/cpus.ts'
import { join } from 'node:path'
import { benchKafka } from './lib/pinning.ts'
import { codeState, printTargets, toJson, TARGETS, type TargetEntry } from './lib/targets.ts'

const all = ['producer', 'consumer', 'retry', 'sink', 'outbox', 'stage'] as const
type Bench = (typeof all)[number]
const chosen = (process.env.BENCHES ?? all.join(',')).split(',').filter(Boolean)
const unknown = chosen.filter(name => !(all as readonly string[]).includes(name))
if (unknown.length > 0)
  throw new Error(`BENCHES names unknown benchmark(s) ${unknown.join(', ')}; known: ${all.join(', ')}`)
const benches = all.filter(name => chosen.includes(name))
const resultsDir = join(import.meta.dirname, 'results')

const startedAt = new Date()
const loadBefore = loadavg()
const code = codeState()
const kafka = await benchKafka()

interface Ran {
  exitCode: number | null
  seconds: number
  result: Record<string, unknown> | undefined
}
const ran: Partial<Record<Bench, Ran>> = {}

async function runBench(name: Bench): Promise<Ran> {
  const started = performance.now()
  console.error(`\n=== bench:${name} ===`)
  // The broker runs already: each benchmark finds it on its port, pins it (again) and leaves it running.
  const child = spawn(process.execPath, ['--conditions=development', join(import.meta.dirname, name, 'main.ts')], {
    env: { ...process.env },
    stdio: ['ignore', 'inherit', 'inherit']
  })
  const exitCode = await new Promise<number | null>(resolve => child.on('close', resolve))
  const seconds = (performance.now() - started) / 1000
  let result: Record<string, unknown> | undefined
  try {
    const parsed = JSON.parse(await readFile(join(resultsDir, `${name}.json`), 'utf8')) as Record<string, unknown>
    // Only a file this run wrote.
    if (typeof parsed.startedAt === 'string' && new Date(parsed.startedAt) >= startedAt) result = parsed
  } catch {
    result = undefined
  }
  console.error(`=== bench:${name} exited ${String(exitCode)} after ${seconds.toFixed(0)} s ===`)
  return { exitCode, seconds, result }
}

try {
  for (const name of benches) ran[name] = await runBench(name)
} finally {
  await kafka.release()
}

const ratios: Record<string, TargetEntry | { missing: string; target: number }> = {}
for (const key of Object.keys(TARGETS)) {
  const bench = key.split('.')[0] as Bench
  if (!benches.includes(bench)) continue
  const targets = ran[bench]?.result?.targets as Record<string, TargetEntry> | undefined
  ratios[key] = targets?.[key] ?? {
    missing: `bench:${bench} ${ran[bench]?.result ? 'reported no figure for it' : 'wrote no results'}`,
    target: (TARGETS[key] as { target: number }).target
  }
}
const pick = (bench: Bench, ...fields: string[]) => {
  const result = ran[bench]?.result
  if (!result) return undefined
  return Object.fromEntries(fields.filter(f => f in result).map(f => [f, result[f]]))
}
const figures = {
  producer: pick('producer', 'settings', 'medians', 'cpuRatios', 'throughputRatios', 'failures'),
  consumer: pick('consumer', 'settings', 'medians', 'cpuRatios', 'throughputRatios', 'peakRssMb', 'failures'),
  retry: pick('retry', 'settings', 'medians', 'cpuUsPerRecord', 'ratios', 'failures'),
  sink: pick('sink', 'rows', 'batchSize', 'rounds', 'rowsPerSecond', 'ratios'),
  outbox: pick('outbox', 'settings', 'figures', 'ratios', 'failures'),
  stage: pick('stage', 'settings', 'figures', 'ratios', 'cpuRatios', 'failures')
}
const summary = {
  startedAt: startedAt.toISOString(),
  finishedAt: new Date().toISOString(),
  code,
  method:
    'broker JVM pinned to one core (taskset), every client process to the other; clients interleaved in rounds; ' +
    'each ratio computed within a round, reported as the median of the rounds with min and max. Producer and ' +
    'consumer client ratios are by CPU time per message of the client process (process.cpuUsage over the timed ' +
    'window), other over Kafkit, higher is better for Kafkit; keyParallel, retry, sink, outbox and stage ratios are by throughput.',
  basis: Object.fromEntries(Object.entries(TARGETS).map(([key, t]) => [key, t.basis])),
  placement: kafka.placement,
  machine: machineFacts(loadBefore),
  benches: Object.fromEntries(
    Object.entries(ran).map(([name, r]) => [name, { exitCode: r.exitCode, seconds: Math.round(r.seconds) }])
  ),
  ratios,
  figures
}
await mkdir(resultsDir, { recursive: true })
await writeFile(join(resultsDir, 'summary.json'), toJson(summary))

console.log(
  `\nsummary (commit ${code.commit.slice(0, 12)}${code.localChanges.length ? ', src with local changes' : ''})`
)
const complete = Object.fromEntries(
  Object.entries(ratios).filter((e): e is [string, TargetEntry] => 'median' in e[1])
) as Record<string, TargetEntry>
printTargets(complete)
for (const [key, value] of Object.entries(ratios)) if ('missing' in value) console.log(`${key}: ${value.missing}`)
const minutes = (Date.now() - startedAt.getTime()) / 60_000
console.log(`\nwrote ${join(resultsDir, 'summary.json')} after ${minutes.toFixed(1)} min`)
if (Object.values(ran).some(r => r.exitCode !== 0)) process.exitCode = 1

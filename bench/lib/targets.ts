/**
 * The targets, and the one shape every benchmark reports them in: the median of the per-round
 * values with their spread (min..max), the target, and whether the median meets it. Per-round values are
 * ratios of two clients measured in the same round (interleaved runs), so a load that comes and goes on
 * the shared machine hits both sides of a ratio alike.
 */
import { execFileSync } from 'node:child_process'

export interface Target {
  target: number
  /** `higher`: the median must be >= target; `lower`: <= target. */
  better: 'higher' | 'lower'
  /** What the per-round value is. */
  basis: string
}

const cpu = 'CPU µs per message of the client process, the other client over this one, per round'
export const TARGETS: Record<string, Target> = {
  'producer.kafkit/raw': { target: 0.95, better: 'higher', basis: `${cpu}; sendBatch; lowest over none and lz4` },
  'producer.kafkit/kafkajs': { target: 2, better: 'higher', basis: `${cpu}; sendBatch; lowest over none and lz4` },
  'producer.kafkitDefaults/raw': {
    target: 0.7,
    better: 'higher',
    basis: `${cpu}; send(message(...)) per message, every default; lowest over none and lz4`
  },
  'producer.kafkitDefaults/kafkajs': {
    target: 1.5,
    better: 'higher',
    basis: `${cpu}; send(message(...)) per message, every default; lowest over none and lz4`
  },
  'consumer.kafkit-batch/raw': { target: 0.9, better: 'higher', basis: `${cpu}; batch handler` },
  'consumer.kafkit/raw': { target: 0.8, better: 'higher', basis: `${cpu}; partition-ordered handler` },
  'consumer.kafkit/kafkajs': { target: 2, better: 'higher', basis: `${cpu}; partition-ordered vs eachMessage` },
  'consumer.keyParallel/partitionOrdered': {
    target: 40,
    better: 'higher',
    basis: 'msg/s, key-ordered (limit 64) over partition-ordered, 5 ms handler, per round'
  },
  'consumer.peakRssMb': {
    target: 300,
    better: 'lower',
    basis:
      'peak RSS MB of the Kafkit consumer process under 1,000,000 records of lag, highest of partition-ordered and key-ordered (64), per round'
  },
  'retry.withFailures/noFailures': {
    target: 0.9,
    better: 'higher',
    basis: 'healthy records/s with 10 % failing into retry tiers over none failing, 5 ms handler, per round'
  },
  'sink.idempotent/copy': {
    target: 0.5,
    better: 'higher',
    basis: 'rows/s Kafka to Postgres (idempotent) over COPY of the same rows (mean of the COPYs around it), per round'
  },
  'sink.exactlyOnce/copy': {
    target: 0.5,
    better: 'higher',
    basis: 'rows/s Kafka to Postgres (exactly-once) over COPY of the same rows (mean of the COPYs around it), per round'
  },
  'outbox.relay/producer': {
    target: 0.5,
    better: 'higher',
    basis:
      "rows/s of the outbox relay draining a filled table over msgs/s of Kafkit's Producer sending the same events (sendBatch, 5 chunks in flight), each after its first batch, per round"
  },
  'stage.exactlyOnce/atLeastOnce': {
    target: 0.7,
    better: 'higher',
    basis:
      'records/s of an exactly-once Stage over an at-least-once Stage, the same inputs and transform (one output per input), each after 1,000 inputs until the last settled, per round'
  },
  'stage.atLeastOnce/raw': {
    target: 0.85,
    better: 'higher',
    basis:
      "records/s of an at-least-once Stage over the raw client's consume + produce loop (batched sends, offsets committed once acknowledged), the same inputs and transform, per round"
  }
}

export interface TargetEntry {
  median: number
  min: number
  max: number
  target: number
  met: boolean
  better: 'higher' | 'lower'
  rounds: number[]
}

export function median(values: number[]): number {
  const sorted = values.filter(v => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** Median, min and max of the per-round values (NaN rounds, e.g. a failed run, left out). */
export function spread(values: number[]): { median: number; min: number; max: number } {
  const finite = values.filter(v => Number.isFinite(v))
  return {
    median: median(finite),
    min: finite.length ? Math.min(...finite) : Number.NaN,
    max: finite.length ? Math.max(...finite) : Number.NaN
  }
}

const round3 = (n: number) => (Number.isFinite(n) ? Math.round(n * 1000) / 1000 : Number.NaN)

/** The entry of `key` (a key of TARGETS) from its per-round values. */
export function entry(key: string, rounds: number[]): TargetEntry {
  const goal = TARGETS[key]
  if (!goal) throw new Error(`no target named ${key}`)
  const s = spread(rounds)
  const met = goal.better === 'higher' ? s.median >= goal.target : s.median <= goal.target
  return {
    median: round3(s.median),
    min: round3(s.min),
    max: round3(s.max),
    target: goal.target,
    met: Number.isFinite(s.median) && met,
    better: goal.better,
    rounds: rounds.map(round3)
  }
}

/**
 * Of several candidate entries for one key (e.g. one per compression), the one with the lowest median:
 * the target must hold for each.
 */
export function lowest(key: string, candidates: Record<string, number[]>): TargetEntry & { of: string } {
  let worst: (TargetEntry & { of: string }) | undefined
  for (const [of, rounds] of Object.entries(candidates)) {
    const e = { ...entry(key, rounds), of }
    if (!worst || !(e.median >= worst.median)) worst = e
  }
  if (!worst) throw new Error(`no candidates for ${key}`)
  return worst
}

/** Prints the entries as a table (key, median, spread, target, met). */
export function printTargets(entries: Record<string, TargetEntry>, write = (line: string) => console.log(line)): void {
  const rows = Object.entries(entries).map(([key, e]) => [
    key,
    fmt(e.median),
    `${fmt(e.min)}..${fmt(e.max)}`,
    `${e.better === 'higher' ? '>=' : '<='} ${e.target}`,
    e.met ? 'yes' : 'NO'
  ])
  const header = ['key', 'median', 'spread', 'target', 'met']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] as string).length)))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 || i === 4 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join('  ')
  write(line(header))
  for (const row of rows) write(line(row))
}

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return '-'
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2)
}

/** The commit measured, and the files under src/ with local changes (the code the clients import). */
export function codeState(): { commit: string; localChanges: string[] } {
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd: import.meta.dirname, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  let commit = 'unknown'
  let localChanges: string[] = []
  try {
    commit = git('rev-parse', 'HEAD').trim()
    // --no-optional-locks: read only, never refresh the index under another process's feet.
    localChanges = git('--no-optional-locks', 'status', '--porcelain', '--', '../../src').split('\n').filter(Boolean)
  } catch {
    // not a git checkout
  }
  return { commit, localChanges }
}

/** JSON.stringify for results: NaN as null. */
export function toJson(value: unknown): string {
  return `${JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' && Number.isNaN(v) ? null : v), 2)}\n`
}

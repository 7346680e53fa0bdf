/**
 * The end of a run: every requested file must be in the store exactly once (one PUT, the source's
 * content) with exactly one result, or in the dead-letter topic exactly once with its reason; never
 * both, never neither. Prints the table and the verdict; returns the problems (none: balanced).
 */
import type { DeadLetterEntry } from 'kafkit'
import type { FileServerStats, ServedFile } from './file-server.ts'
import type { PipelineSnapshot, Topics } from './pipeline.ts'
import type { StoreStats, StoredObject } from './store.ts'
import type { DownloadCounters, UploadResult } from './workers.ts'

export interface RunFacts {
  files: ServedFile[]
  objects: ReadonlyMap<string, StoredObject>
  results: ReadonlyMap<string, UploadResult[]>
  deadLetters: DeadLetterEntry[]
  topics: Topics
  tiers: string[]
  snapshot: PipelineSnapshot
  counters: DownloadCounters
  server: FileServerStats
  store: StoreStats
}

/** One dead letter as the run reads it: which file, which stage gave up, and why. */
interface DeadFile {
  fileId: string
  stage: string
  kind: string
  attempts: number
  reason: string
}

function deadFiles(facts: RunFacts): DeadFile[] {
  const stageOf = new Map([
    [facts.topics.pending, 'download'],
    [facts.topics.cached, 'upload']
  ])
  const files = facts.deadLetters.map(entry => ({
    fileId: entry.key?.toString('utf8') ?? '(no key)',
    stage: entry.info ? (stageOf.get(entry.info.originTopic) ?? entry.info.originTopic) : 'unknown',
    kind: entry.info?.errorKind ?? 'foreign',
    attempts: entry.info?.attempts ?? 0,
    reason: entry.info?.errorMessage ?? entry.foreignReason ?? ''
  }))
  return files.sort((a, b) => a.fileId.localeCompare(b.fileId))
}

const group = <T>(items: T[], key: (item: T) => string) => {
  const map = new Map<string, T[]>()
  for (const item of items) map.set(key(item), [...(map.get(key(item)) ?? []), item])
  return map
}

/** Per file: where it ended up. Each list holds the file ids in that situation. */
function classify(facts: RunFacts, dead: Map<string, DeadFile[]>) {
  const requested = new Set(facts.files.map(file => file.fileId))
  const is = (test: (file: ServedFile, puts: number, deadCount: number, results: number) => boolean) =>
    facts.files
      .filter(file =>
        test(
          file,
          facts.objects.get(file.fileId)?.puts ?? 0,
          dead.get(file.fileId)?.length ?? 0,
          facts.results.get(file.fileId)?.length ?? 0
        )
      )
      .map(file => file.fileId)
  return {
    storedOnce: is((_, puts) => puts === 1),
    deadOnce: is((_, puts, deadCount) => deadCount === 1 && puts === 0),
    duplicateUploads: is((_, puts) => puts > 1),
    deadTwice: is((_, _p, deadCount) => deadCount > 1),
    both: is((_, puts, deadCount) => puts > 0 && deadCount > 0),
    missing: is((_, puts, deadCount) => puts === 0 && deadCount === 0),
    withoutResult: is((_, puts, _d, results) => puts > 0 && results === 0),
    repeatedResults: is((_, _p, _d, results) => results > 1),
    resultWithoutObject: is((_, puts, _d, results) => puts === 0 && results > 0),
    wrongContent: is(file => {
      const stored = facts.objects.get(file.fileId)
      return stored !== undefined && stored.sha256 !== file.sha256
    }),
    notFoundStored: is((file, puts) => file.expected === 'missing' && puts > 0),
    downStored: is((file, puts) => file.expected === 'down' && puts > 0),
    unrequested: [...new Set([...facts.objects.keys(), ...dead.keys()])].filter(id => !requested.has(id))
  }
}

/** A short name for why a file was dead-lettered. */
function why(file: DeadFile): string {
  if (file.stage === 'download' && file.reason.includes(' 404 ')) return '404 Not Found at the source (permanent)'
  if (file.stage === 'download' && file.kind === 'transient') return 'still failing after the last retry tier'
  return `${file.stage}, ${file.kind}`
}

function reasonsOf(dead: DeadFile[]): string {
  const byReason = group(dead, why)
  return [...byReason].map(([reason, files]) => `${reason}: ${files.length}`).join('; ') || '-'
}

function printStages(facts: RunFacts, dead: DeadFile[]): void {
  const { snapshot: s, counters: c, server, store } = facts
  const injected = server.injected
  const rows: [string, number, string][] = [
    ['requested (pending)', facts.files.length, ''],
    [
      'downloaded (cached)',
      s.downloaded,
      `${c.attempts} attempts: ${c.unavailable} × 503, ${c.timeouts} timed out, ${c.resets} reset, ${c.notFound} × 404`
    ],
    [
      'sent to the retry tiers',
      s.toTiers.reduce((a, b) => a + b, 0),
      facts.tiers.map((tier, i) => `${tier}: ${s.toTiers[i] ?? 0}`).join(', ')
    ],
    ['uploaded (store)', s.uploaded, `${store.puts} PUTs: ${store.created} new, ${store.repeated} repeated`],
    ['results', [...facts.results.values()].reduce((n, list) => n + list.length, 0), ''],
    ['dead-lettered', dead.length, reasonsOf(dead)]
  ]
  console.log(`  ${'records'.padEnd(30)}${'count'.padStart(7)}`)
  for (const [name, count, note] of rows) console.log(`  ${name.padEnd(30)}${String(count).padStart(7)}  ${note}`)
  console.log(
    `  (the file server failed ${injected.unavailable + injected.stall + injected.reset} of ${server.requests} requests on purpose: ` +
      `${injected.unavailable} × 503, ${injected.stall} stalled, ${injected.reset} reset; ${server.notFound} × 404, ${server.down} × 503 of files that are down)`
  )
}

function printDeadLetters(dead: DeadFile[]): void {
  if (dead.length === 0) return
  console.log(`\n  dead letters (file, stage, kind, attempts, reason):`)
  for (const file of dead.slice(0, 12)) {
    console.log(
      `    ${file.fileId.padEnd(16)} ${file.stage.padEnd(9)} ${file.kind.padEnd(10)} ${String(file.attempts).padStart(2)}  ${file.reason}`
    )
  }
  if (dead.length > 12) console.log(`    ... and ${dead.length - 12} more`)
}

/** Prints the reconciliation; returns what does not add up (empty: everything is accounted for). */
export function reconcile(facts: RunFacts): string[] {
  const dead = deadFiles(facts)
  const byFile = group(dead, file => file.fileId)
  const c = classify(facts, byFile)
  printStages(facts, dead)
  const perFile: [string, string[], boolean][] = [
    ['stored once', c.storedOnce, true],
    ['dead-lettered once', c.deadOnce, true],
    ['uploaded more than once', c.duplicateUploads, false],
    ['dead-lettered more than once', c.deadTwice, false],
    ['stored and dead-lettered', c.both, false],
    ['stored without a result', c.withoutResult, false],
    ['more than one result', c.repeatedResults, false],
    ['a result but not stored', c.resultWithoutObject, false],
    ['stored content differs', c.wrongContent, false],
    ['404 at the source, yet stored', c.notFoundStored, false],
    ['always 503, yet stored', c.downStored, false],
    ['not requested, yet there', c.unrequested, false],
    ['missing', c.missing, false]
  ]
  console.log(`\n  ${'files'.padEnd(30)}${'count'.padStart(7)}`)
  for (const [name, ids, fine] of perFile) {
    const shown = !fine && ids.length > 0 ? `  ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''}` : ''
    console.log(`  ${name.padEnd(30)}${String(ids.length).padStart(7)}${shown}`)
  }
  printDeadLetters(dead)
  const wrong = perFile.filter(([, ids, fine]) => !fine && ids.length > 0).map(([name, ids]) => `${ids.length} ${name}`)
  const total = c.storedOnce.length + c.deadOnce.length
  if (total !== facts.files.length && wrong.length === 0) wrong.push(`${total} of ${facts.files.length} accounted for`)
  return wrong
}

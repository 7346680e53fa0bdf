/**
 * The end of a run: every requested file must be in the store (the source's content) with a result, or
 * in the dead-letter topic with its reason; never both, never neither. A plain run has no repeats: one
 * PUT, one result, one dead letter per file. Workers killed and restarted (at-least-once stages) may
 * do an input's work again: a second PUT of the same content, a second result, a second dead letter of
 * the same file for the same reason. `checkFiles` counts those as repeats when they are allowed; other
 * content, a lost file, a file both stored and dead-lettered stay problems either way.
 */
import type { DeadLetterEntry } from 'kafkit'
import type { FileServerStats, ServedFile } from './file-server.ts'
import type { PipelineSnapshot, Topics } from './pipeline.ts'
import type { StoreStats, StoredObject } from './store.ts'
import type { DownloadCounters, UploadResult } from './workers.ts'

/** Where the files ended up: the store, the results, the dead-letter topic. */
export interface FileFacts {
  files: ServedFile[]
  objects: ReadonlyMap<string, StoredObject>
  results: ReadonlyMap<string, UploadResult[]>
  deadLetters: DeadLetterEntry[]
  topics: Topics
}

/** A run in one process: the files, and what the workers, the file server and the store counted. */
export interface RunFacts extends FileFacts {
  tiers: string[]
  snapshot: PipelineSnapshot
  counters: DownloadCounters
  server: FileServerStats
  store: StoreStats
}

export interface CheckOptions {
  /**
   * `refused` (default): a repeated PUT, result or dead letter is a problem. `allowed`: workers were
   * killed, so it is a repeat (counted in `repeats`), as long as it repeats the same content or reason.
   */
  repeats?: 'refused' | 'allowed'
}

/** One situation of the per-file table: the files in it, and whether that is fine. */
export interface FileRow {
  name: string
  ids: string[]
  fine: boolean
}

export interface FileCheck {
  rows: FileRow[]
  /** What does not add up, one line per situation (none: everything is accounted for). */
  problems: string[]
  /** Distinct files in the store, and distinct files dead-lettered (not stored). */
  stored: number
  deadLettered: number
  /** Records beyond the first of a file: PUTs accepted again, results, dead letters. */
  repeats: { puts: number; results: number; deadLetters: number }
  dead: DeadFile[]
}

/** One dead letter as the run reads it: which file, which stage gave up, and why. */
export interface DeadFile {
  fileId: string
  stage: string
  kind: string
  attempts: number
  reason: string
}

function deadFiles(facts: FileFacts): DeadFile[] {
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

/**
 * Whether a dead letter gives the file's reason: a 404 at once for a missing file, a 503 after the last
 * tier for a file that is down; a file the source serves only when it still failed transiently after
 * every tier (a high --transient-rate).
 */
function reasonFits(file: ServedFile, dead: DeadFile): boolean {
  const download = (kind: string) => dead.stage === 'download' && dead.kind === kind
  switch (file.expected) {
    case 'missing':
      return download('permanent') && / 404 /.test(dead.reason)
    case 'down':
      return download('transient') && / 503 /.test(dead.reason)
    case 'stored':
      return download('transient')
  }
}

/** Per file: where it ended up. Each list holds the file ids in that situation. */
function classify(facts: FileFacts, dead: Map<string, DeadFile[]>) {
  const requested = new Set(facts.files.map(file => file.fileId))
  const is = (test: (file: ServedFile, puts: number, dead: DeadFile[], results: UploadResult[]) => boolean) =>
    facts.files
      .filter(file =>
        test(
          file,
          facts.objects.get(file.fileId)?.puts ?? 0,
          dead.get(file.fileId) ?? [],
          facts.results.get(file.fileId) ?? []
        )
      )
      .map(file => file.fileId)
  const sameReason = (letters: DeadFile[]) =>
    new Set(letters.map(letter => `${letter.stage}\u0000${letter.kind}\u0000${letter.reason}`)).size === 1
  return {
    storedOnce: is((_, puts) => puts === 1),
    deadOnce: is((_, puts, letters) => letters.length === 1 && puts === 0),
    duplicateUploads: is((_, puts) => puts > 1),
    deadAgain: is((_, _p, letters) => letters.length > 1 && sameReason(letters)),
    deadForOtherReasons: is((_, _p, letters) => letters.length > 1 && !sameReason(letters)),
    both: is((_, puts, letters) => puts > 0 && letters.length > 0),
    missing: is((_, puts, letters) => puts === 0 && letters.length === 0),
    withoutResult: is((_, puts, _d, results) => puts > 0 && results.length === 0),
    repeatedResults: is((_, _p, _d, results) => results.length > 1),
    resultWithoutObject: is((_, puts, _d, results) => puts === 0 && results.length > 0),
    wrongContent: is(file => {
      const stored = facts.objects.get(file.fileId)
      return stored !== undefined && stored.sha256 !== file.sha256
    }),
    wrongResult: is((file, _p, _d, results) => results.some(result => result.sha256 !== file.sha256)),
    notFoundStored: is((file, puts) => file.expected === 'missing' && puts > 0),
    downStored: is((file, puts) => file.expected === 'down' && puts > 0),
    wrongReason: is((file, _p, letters) => letters.some(letter => !reasonFits(file, letter))),
    unrequested: [...new Set([...facts.objects.keys(), ...dead.keys(), ...facts.results.keys()])].filter(
      id => !requested.has(id)
    )
  }
}

const extra = (counts: Iterable<number>) => [...counts].reduce((sum, n) => sum + Math.max(0, n - 1), 0)

/** Where every file ended up, and what does not add up. */
export function checkFiles(facts: FileFacts, options: CheckOptions = {}): FileCheck {
  const repeatsFine = options.repeats === 'allowed'
  const dead = deadFiles(facts)
  const byFile = group(dead, file => file.fileId)
  const c = classify(facts, byFile)
  const rows: FileRow[] = [
    { name: 'stored once', ids: c.storedOnce, fine: true },
    { name: 'dead-lettered once', ids: c.deadOnce, fine: true },
    { name: 'uploaded more than once', ids: c.duplicateUploads, fine: repeatsFine },
    { name: 'dead-lettered more than once', ids: c.deadAgain, fine: repeatsFine },
    { name: 'dead-lettered, reasons differ', ids: c.deadForOtherReasons, fine: false },
    { name: 'stored and dead-lettered', ids: c.both, fine: false },
    { name: 'stored without a result', ids: c.withoutResult, fine: false },
    { name: 'more than one result', ids: c.repeatedResults, fine: repeatsFine },
    { name: 'a result but not stored', ids: c.resultWithoutObject, fine: false },
    { name: 'stored content differs', ids: c.wrongContent, fine: false },
    { name: 'a result of other content', ids: c.wrongResult, fine: false },
    { name: '404 at the source, yet stored', ids: c.notFoundStored, fine: false },
    { name: 'always 503, yet stored', ids: c.downStored, fine: false },
    { name: 'dead-lettered for another reason', ids: c.wrongReason, fine: false },
    { name: 'not requested, yet there', ids: c.unrequested, fine: false },
    { name: 'missing', ids: c.missing, fine: false }
  ]
  const problems = rows.filter(row => !row.fine && row.ids.length > 0).map(row => `${row.ids.length} ${row.name}`)
  const requested = new Set(facts.files.map(file => file.fileId))
  const stored = facts.files.filter(file => facts.objects.has(file.fileId)).length
  const deadLettered = facts.files.filter(file => byFile.has(file.fileId) && !facts.objects.has(file.fileId)).length
  const total = stored + deadLettered
  if (total !== facts.files.length && problems.length === 0) {
    problems.push(`${total} of ${facts.files.length} accounted for`)
  }
  const ofRequested = <T>(map: ReadonlyMap<string, T>) => [...map].filter(([id]) => requested.has(id))
  const repeats = {
    puts: extra(ofRequested(facts.objects).map(([, object]) => object.puts)),
    results: extra(ofRequested(facts.results).map(([, results]) => results.length)),
    deadLetters: extra(ofRequested(byFile).map(([, letters]) => letters.length))
  }
  return { rows, problems, stored, deadLettered, repeats, dead }
}

/** The per-file table: a line per situation with its count, and the first files of each one that is not fine. */
export function formatFiles(check: FileCheck): string[] {
  const lines = [`${'files'.padEnd(32)}${'count'.padStart(7)}`]
  for (const { name, ids, fine } of check.rows) {
    const shown = !fine && ids.length > 0 ? `  ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''}` : ''
    lines.push(`${name.padEnd(32)}${String(ids.length).padStart(7)}${shown}`)
  }
  return lines
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

/** Prints the reconciliation of a run in one process (no repeats allowed); returns what does not add up. */
export function reconcile(facts: RunFacts): string[] {
  const check = checkFiles(facts)
  printStages(facts, check.dead)
  console.log('')
  for (const line of formatFiles(check)) console.log(`  ${line}`)
  printDeadLetters(check.dead)
  return check.problems
}

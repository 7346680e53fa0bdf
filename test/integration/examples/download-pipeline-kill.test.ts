/**
 * The download pipeline (examples/download-pipeline) with its stages as processes of their own
 * (worker.ts: two download workers and one upload worker), SIGKILLed again and again while files are
 * requested and moved, each restarted at once under its instance id. The file server, the store and
 * the result processor run in the test process. At the end every requested file is in the store with
 * the source's content and a result, or in the dead-letter topic with its reason (the 404s and the
 * files that are always down); nothing both, nothing missing. A killed worker may do an input's work
 * again (the stages are at-least-once): a second PUT of the same content, a second result or dead
 * letter of the same file are repeats, counted and reported, not failures.
 *
 * The control feeds the example's reconciliation made-up outcomes: a missing file, a file both stored
 * and dead-lettered, other content, and repeats where none are allowed must each be reported.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { setTimeout as delay } from 'node:timers/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Admin } from '@platformatic/kafka'
import { listDeadLetters, retryTopicNames, type DeadLetterEntry, type DeadLetterInfo } from 'kafkit'
import { startFileServer, type ServedFile } from '../../../examples/download-pipeline/file-server.ts'
import {
  createTopics,
  exampleLogger,
  groupsOf,
  keepResults,
  requestDownloads,
  resultProcessor,
  topicsOf,
  type Topics
} from '../../../examples/download-pipeline/pipeline.ts'
import { checkFiles, formatFiles, type FileFacts } from '../../../examples/download-pipeline/reconcile.ts'
import { startStore, type StoredObject } from '../../../examples/download-pipeline/store.ts'
import type { UploadResult } from '../../../examples/download-pipeline/workers.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { sleep } from '../../helpers/wait.ts'

const FILES = Number(process.env.DOWNLOAD_KILL_FILES ?? 150)
const KILLS = Number(process.env.DOWNLOAD_KILLS ?? 10)
const TIERS = ['1s', '2s']
/**
 * In-place retries of the download stage: 5 attempts before tier 1, so that a file the source serves
 * (20% transient failures) rarely needs a tier. A kill between a tier write and the commit of its input
 * runs the input again, and the tier's copy is then a second try of a file that may be stored
 * meanwhile; should that copy fail in both tiers too, the file is stored and dead-lettered (a true
 * outcome of at-least-once, not a fault). With 2 retries that would be about one run in a hundred (an
 * estimate), with 4 well under one in a thousand. The files that are down still go through both tiers.
 */
const RETRIES = 4
const WAVES = 10
const workerFile = fileURLToPath(new URL('../../../examples/download-pipeline/worker.ts', import.meta.url))

/** A worker process under its instance id, started again after every kill. */
interface WorkerSlot {
  id: string
  args: string[]
  child: ChildProcess
  /** The exit code (null: ended by a signal). */
  exited: Promise<number | null>
  /** Resolves once the worker has joined its group and runs (it handles SIGTERM from then on). */
  started: Promise<void>
  kills: number
}

/** What the groups of the run have not committed yet, summed over every topic they read (0: all done). */
async function uncommitted(admin: Admin, reads: [group: string, topic: string][]): Promise<number> {
  const topics = [...new Set(reads.map(([, topic]) => topic))]
  const metadata = await admin.metadata({ topics, forceUpdate: true })
  const listed = await admin.listOffsets({
    topics: topics.map(name => ({
      name,
      partitions: Array.from({ length: metadata.topics.get(name)?.partitionsCount ?? 0 }, (_, partitionIndex) => ({
        partitionIndex,
        timestamp: -1n
      }))
    }))
  })
  let behind = 0n
  for (const [group, topic] of reads) {
    const [offsets] = await admin.listConsumerGroupOffsets({ groups: [group] })
    const committed = new Map(
      (offsets?.topics.find(t => t.name === topic)?.partitions ?? []).map(p => [p.partitionIndex, p.committedOffset])
    )
    for (const { partitionIndex, offset } of listed.find(t => t.name === topic)?.partitions ?? []) {
      const at = committed.get(partitionIndex) ?? -1n
      behind += offset - (at < 0n ? 0n : at)
    }
  }
  return Number(behind)
}

test(`download pipeline: workers SIGKILLed ${KILLS} times over ${FILES} files, each stored once or dead-lettered once`, async t => {
  const begun = performance.now()
  const brokers = bootstrapServers()
  const run = `kill${Date.now().toString(36)}${randomBytes(3).toString('hex')}`
  const topics = topicsOf(run)
  const groups = groupsOf(run)
  const tierTopics = retryTopicNames(topics.pending, { tiers: TIERS, dlqTopic: topics.dlq }).tiers.map(t => t.topic)
  const cacheDir = await mkdtemp(join(tmpdir(), 'xact-kill-cache-'))
  const storeDir = await mkdtemp(join(tmpdir(), 'xact-kill-store-'))
  const server = await startFileServer({ files: FILES, transientRate: 0.2, missingEvery: 15, downEvery: 25 })
  const store = await startStore(storeDir)
  const admin = new Admin({ clientId: 'kafkit-download-kill-test', bootstrapBrokers: brokers })
  const slots: WorkerSlot[] = []
  const logs: string[] = []
  t.after(async () => {
    for (const slot of slots) slot.child.kill('SIGKILL')
    await Promise.all(slots.map(slot => slot.exited))
    await Promise.all([server.close(), store.close()])
    await admin
      .deleteTopics({ topics: [topics.pending, topics.cached, topics.results, topics.dlq, ...tierTopics] })
      .catch(() => undefined)
    await admin.close()
    await Promise.all([rm(cacheDir, { recursive: true, force: true }), rm(storeDir, { recursive: true, force: true })])
  })
  await createTopics(brokers, topics, TIERS)

  // The result processor, here: every result the upload workers produce, by file.
  const results = new Map<string, UploadResult[]>()
  const stages = { tiers: TIERS, tierDelaysMs: [1000, 2000], retries: RETRIES, timeoutMs: 1000, concurrency: 16 }
  const processor = resultProcessor(
    { brokers, run, topics, options: stages, logger: exampleLogger },
    keepResults(results)
  )
  await processor.start()
  t.after(() => processor.stop())

  // The stage workers, each a process of its own.
  const common = ['--run', run, '--tiers', TIERS.join(','), '--retries', String(RETRIES), '--timeout', '1s']
  const launch = (slot: Omit<WorkerSlot, 'child' | 'exited' | 'started'>): WorkerSlot => {
    const child = spawn(
      process.execPath,
      ['--conditions=development', workerFile, ...slot.args, ...common, '--instance', slot.id],
      { env: { ...process.env, KAFKA_BROKERS: brokers.join(',') }, stdio: ['ignore', 'pipe', 'pipe'] }
    )
    let ready = () => {}
    const started = new Promise<void>(resolve => (ready = resolve))
    const keep = (chunk: string) => {
      for (const line of chunk.trimEnd().split('\n')) logs.push(`${slot.id}: ${line}`)
      if (/\] started \(run /.test(chunk)) ready()
    }
    child.stdout?.setEncoding('utf8').on('data', keep)
    child.stderr?.setEncoding('utf8').on('data', keep)
    return { ...slot, child, exited: once(child, 'exit').then(([code]) => code as number | null), started }
  }
  slots.push(
    launch({ id: 'download-1', args: ['--role', 'download', '--cache-dir', cacheDir], kills: 0 }),
    launch({ id: 'download-2', args: ['--role', 'download', '--cache-dir', cacheDir], kills: 0 }),
    launch({ id: 'upload-1', args: ['--role', 'upload', '--store', store.url], kills: 0 })
  )

  // The requests arrive in waves while the workers are being killed.
  const requesting = (async () => {
    const perWave = Math.ceil(FILES / WAVES)
    for (let from = 0; from < FILES; from += perWave) {
      const wave = server.files.slice(from, from + perWave)
      await requestDownloads(
        brokers,
        topics.pending,
        wave.map(({ fileId }) => ({ fileId, url: server.urlOf(fileId) }))
      )
      await sleep(1500)
    }
  })()

  // A random worker SIGKILLed every 1-2 s and started again at once (each one at least once).
  for (let kill = 0; kill < KILLS; kill++) {
    await sleep(1000 + Math.random() * 1000)
    const spared = slots.filter(slot => slot.kills === 0)
    const pool = spared.length >= KILLS - kill ? spared : slots
    const index = slots.indexOf(pool[Math.floor(Math.random() * pool.length)] ?? (slots[0] as WorkerSlot))
    const slot = slots[index] as WorkerSlot
    slot.child.kill('SIGKILL')
    await slot.exited
    slots[index] = launch({ ...slot, kills: slot.kills + 1 })
  }
  await requesting
  const killsDone = (performance.now() - begun) / 1000

  // Settled: every file has a result or a dead letter, and every group has committed all it read.
  const reads: [string, string][] = [
    [groups.download, topics.pending],
    ...tierTopics.map((topic): [string, string] => [`${groups.download}${topic.slice(topics.pending.length)}`, topic]),
    [groups.upload, topics.cached],
    [groups.results, topics.results]
  ]
  let deadLetters: DeadLetterEntry[]
  let behind: number
  const deadline = Date.now() + 40_000
  for (;;) {
    deadLetters = (await listDeadLetters({ brokers, topic: topics.dlq })).entries
    const dead = new Set(deadLetters.map(entry => entry.key?.toString('utf8')))
    const accounted = server.files.filter(file => results.has(file.fileId) || dead.has(file.fileId)).length
    behind = accounted === FILES ? await uncommitted(admin, reads) : -1
    if (behind === 0 || Date.now() > deadline) break
    await sleep(1000)
  }
  const settled = (performance.now() - begun) / 1000

  // Stopped gracefully (once the last ones started again have started), then the dead-letter topic as it stands.
  await Promise.all(slots.map(slot => Promise.race([slot.started, delay(20_000, undefined, { ref: false })])))
  for (const slot of slots) slot.child.kill('SIGTERM')
  const codes = await Promise.all(
    slots.map(slot => Promise.race([slot.exited, delay(20_000, 'still running', { ref: false })]))
  )
  await processor.stop()
  deadLetters = (await listDeadLetters({ brokers, topic: topics.dlq })).entries

  const check = checkFiles(
    { files: server.files, objects: store.objects, results, deadLetters, topics },
    { repeats: 'allowed' }
  )
  const dueDead = server.files.filter(file => file.expected !== 'stored')
  const ranOut = check.dead.filter(dead => server.files.find(f => f.fileId === dead.fileId)?.expected === 'stored')
  const numbers = {
    files: FILES,
    kills: Object.fromEntries(slots.map(slot => [slot.id, slot.kills])),
    stored: check.stored,
    deadLettered: check.deadLettered,
    deadLetterRecords: deadLetters.length,
    // Files the source serves that still failed on every attempt (transient failures only): dead letters too.
    ranOutOfRetries: ranOut.map(dead => `${dead.fileId} (${dead.kind}, ${dead.attempts} attempts): ${dead.reason}`),
    repeats: check.repeats,
    puts: store.stats,
    fileServer: { requests: server.stats.requests, injected: server.stats.injected, notFound: server.stats.notFound },
    seconds: { killsDone, settled, total: (performance.now() - begun) / 1000 }
  }
  t.diagnostic(JSON.stringify(numbers))
  const detail = [...formatFiles(check), '', ...logs.slice(-40)].join('\n')
  assert.deepEqual(check.problems, [], detail)
  assert.equal(behind, 0, `every group committed all it read (settled after ${settled.toFixed(1)} s)\n${detail}`)
  assert.equal(check.stored + check.deadLettered, FILES)
  assert.equal(store.stats.conflicts, 0, 'no PUT with other content than the stored one')
  assert.equal(
    slots.reduce((sum, slot) => sum + slot.kills, 0),
    KILLS
  )
  for (const file of dueDead) {
    assert.ok(!store.objects.has(file.fileId), `${file.fileId} (${file.expected}) is not stored`)
    assert.ok(
      check.dead.some(dead => dead.fileId === file.fileId),
      `${file.fileId} (${file.expected}) is dead-lettered`
    )
  }
  assert.deepEqual(codes, [0, 0, 0], `every worker stopped gracefully on SIGTERM\n${logs.slice(-40).join('\n')}`)
})

// The control: made-up outcomes of three files fed to the example's reconciliation.
const served = (n: number, expected: ServedFile['expected']): ServedFile => ({
  fileId: `file-0000${n}.bin`,
  size: 100,
  sha256: `sha-${n}`,
  expected
})
const files = [served(1, 'stored'), served(2, 'stored'), served(3, 'missing')]
const controlTopics: Topics = topicsOf('control')
const object = (sha256: string, puts = 1): StoredObject => ({ puts, sha256, size: 100 })
const result = (n: number): UploadResult => ({ fileId: `file-0000${n}.bin`, status: 'stored', sha256: `sha-${n}` })

function deadLetter(n: number, kind: DeadLetterInfo['errorKind'], reason: string): DeadLetterEntry {
  const at = new Date(0)
  const info: DeadLetterInfo = {
    version: 1,
    originTopic: controlTopics.pending,
    originPartition: 0,
    originOffset: BigInt(n),
    originTimestamp: at,
    consumerGroup: 'control',
    errorKind: kind,
    errorClass: kind === 'permanent' ? 'PermanentError' : 'TransientError',
    errorCode: undefined,
    errorMessage: reason,
    errorStack: undefined,
    attempts: 1,
    firstFailureAt: at,
    lastFailureAt: at,
    deadLetteredAt: at
  }
  return {
    partition: 0,
    offset: BigInt(n),
    key: Buffer.from(`file-0000${n}.bin`),
    value: null,
    headers: new Map(),
    headerEntries: [],
    info
  }
}

const notFound = (n: number) => deadLetter(n, 'permanent', `GET /files/file-0000${n}.bin answered 404 Not Found`)

/** Two files stored with one result each, the third dead-lettered for its 404; `change` alters that. */
function facts(
  change: (f: FileFacts & { objects: Map<string, StoredObject>; results: Map<string, UploadResult[]> }) => void
) {
  const f = {
    files,
    objects: new Map([
      ['file-00001.bin', object('sha-1')],
      ['file-00002.bin', object('sha-2')]
    ]),
    results: new Map([
      ['file-00001.bin', [result(1)]],
      ['file-00002.bin', [result(2)]]
    ]),
    deadLetters: [notFound(3)],
    topics: controlTopics
  }
  change(f)
  return f
}

test('control: the reconciliation reports a missing file, a file stored and dead-lettered, other content, refused repeats', () => {
  assert.deepEqual(checkFiles(facts(() => {})).problems, [], 'the made-up run balances as it is')

  const missing = checkFiles(
    facts(f => {
      f.objects.delete('file-00002.bin')
      f.results.delete('file-00002.bin')
    }),
    { repeats: 'allowed' }
  )
  assert.deepEqual(missing.problems, ['1 missing'])

  const both = checkFiles(
    facts(f => f.deadLetters.push(deadLetter(1, 'transient', 'GET answered 503'))),
    {
      repeats: 'allowed'
    }
  )
  assert.deepEqual(both.problems, ['1 stored and dead-lettered'])

  const other = checkFiles(
    facts(f => f.objects.set('file-00001.bin', object('sha-other'))),
    { repeats: 'allowed' }
  )
  assert.deepEqual(other.problems, ['1 stored content differs'])

  const lostResult = checkFiles(
    facts(f => f.results.delete('file-00001.bin')),
    { repeats: 'allowed' }
  )
  assert.deepEqual(lostResult.problems, ['1 stored without a result'])

  const wrongReason = checkFiles(
    facts(f => (f.deadLetters = [deadLetter(3, 'transient', 'GET answered 503')])),
    { repeats: 'allowed' }
  )
  assert.deepEqual(wrongReason.problems, ['1 dead-lettered for another reason'])

  // Repeats after a kill: the same content PUT again, a second result, a second dead letter for the same reason.
  const repeated = (f: FileFacts & { objects: Map<string, StoredObject>; results: Map<string, UploadResult[]> }) => {
    f.objects.set('file-00001.bin', object('sha-1', 2))
    f.results.set('file-00001.bin', [result(1), result(1)])
    f.deadLetters.push(notFound(3))
  }
  const allowed = checkFiles(facts(repeated), { repeats: 'allowed' })
  assert.deepEqual(allowed.problems, [])
  assert.deepEqual(allowed.repeats, { puts: 1, results: 1, deadLetters: 1 })
  assert.equal(allowed.stored + allowed.deadLettered, 3)
  assert.deepEqual(checkFiles(facts(repeated)).problems, [
    '1 uploaded more than once',
    '1 dead-lettered more than once',
    '1 more than one result'
  ])
})

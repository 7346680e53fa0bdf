/**
 * A download pipeline on Kafkit's `Stage`, with real I/O on loopback: a file server that fails like a
 * real one, a cache directory, and an object store.
 *
 *   xact.downloads.pending ─▶ download worker ─▶ xact.downloads.cached ─▶ upload worker
 *     ─▶ xact.downloads.results ─▶ result processor
 *
 * The download worker is a Stage (at-least-once: its `cached` record is produced and acknowledged
 * before the request is committed) with retry tiers on `xact.downloads.pending.retry.<delay>`; the
 * upload worker is a Stage too; the result processor is a Consumer. Both stages dead-letter into
 * `xact.downloads.dlq`. Every run has its own topics (the names get a suffix of the run) and its own
 * temporary directories (removed at the end).
 *
 * It ends with a reconciliation: every requested file is in the store exactly once with one result, or
 * in the dead-letter topic exactly once with its reason; it exits with 1 when anything is off.
 * With the default tiers (5m, 10m, 20m, 40m) a file that needs a tier takes at least 5 minutes; pass
 * seconds for a quick run:
 *
 *   npm run example:download-pipeline -- --files 200 --tiers 1s,2s,4s --transient-rate 0.2 --missing-every 25
 *
 * Here all three workers run in this one process. worker.ts runs one of them in a process of its own,
 * against the topics, file server and store of a run that exists (see there).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { listDeadLetters, retryTopicNames, type DeadLetterEntry } from 'kafkit'
import { useKafka } from 'kafkit/testing'
import { startFileServer, type FileServer } from './file-server.ts'
import { readOptions, usage, type PipelineOptions } from './options.ts'
import { createPipeline, createTopics, exampleLogger, requestDownloads, topicsOf, type Pipeline } from './pipeline.ts'
import { reconcile } from './reconcile.ts'
import { startStore } from './store.ts'

function optionsOrExit(): PipelineOptions {
  try {
    return readOptions()
  } catch (error) {
    console.error(`${(error as Error).message}\nusage: ${usage}`)
    process.exit(2)
  }
}
const options = optionsOrExit()
const started = performance.now()
const elapsed = () => (performance.now() - started) / 1000
const say = (line: string) => console.log(`[${elapsed().toFixed(1).padStart(5)} s] ${line}`)

// Kafka, the run's topics (the retry tiers and the dead-letter topic too).
const kafka = await useKafka({ log: line => console.error(line) })
const brokers = kafka.brokers
const run = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`
const topics = topicsOf(run)
await createTopics(brokers, topics, options.tiers)
const tierTopics = retryTopicNames(topics.pending, { tiers: options.tiers, dlqTopic: topics.dlq }).tiers
say(`Kafka ${brokers.join(',')}; topics ${topics.pending}, ${topics.cached}, ${topics.results}`)
say(`retry tiers ${tierTopics.map(tier => tier.topic).join(', ')}; dead letters ${topics.dlq}`)

// The file server, the cache directory and the store.
const cacheDir = await mkdtemp(join(tmpdir(), 'xact-downloads-cache-'))
const storeDir = await mkdtemp(join(tmpdir(), 'xact-downloads-store-'))
const server = await startFileServer(options)
const store = await startStore(storeDir)
const totalBytes = server.files.reduce((sum, file) => sum + file.size, 0)
const every = (k: number, what: string) => (k > 0 ? `, every ${k}th file is ${what}` : '')
say(
  `file server ${server.url}: ${options.files} files, ${(totalBytes / 2 ** 20).toFixed(1)} MiB; ` +
    `${Math.round(options.transientRate * 100)}% of requests fail transiently` +
    `${every(options.missingEvery, 'missing (404)')}${every(options.downEvery, 'down (always 503)')}`
)
say(`store ${store.url} (objects in ${storeDir}); cache ${cacheDir}`)

const pipeline = createPipeline({ brokers, run, topics, options, cacheDir, storeUrl: store.url, logger: exampleLogger })
await pipeline.start()
say('workers started: download (Stage, retry tiers), upload (Stage), result processor (Consumer)')
await requestAll(server)

/** One `pending` record per file, keyed by its id. */
async function requestAll(files: FileServer): Promise<void> {
  await requestDownloads(
    brokers,
    topics.pending,
    files.files.map(({ fileId }) => ({ fileId, url: files.urlOf(fileId) }))
  )
  say(`requested ${files.files.length} downloads on ${topics.pending}`)
}

// Progress every second, until every file is stored with its result or dead-lettered (or the deadline).
let lastLine = ''
function progress(force = false): void {
  const s = pipeline.snapshot()
  const line =
    `downloaded ${s.downloaded}/${options.files} · in retry ${s.inRetry} (sent to tiers: ${s.toTiers.join('/')}) · ` +
    `uploaded ${s.uploaded} · results ${s.results} · dead-lettered ${s.deadLettered.download + s.deadLettered.upload} · ` +
    `file server ${server.stats.requests} requests`
  if (force || line !== lastLine) say(line)
  lastLine = line
}

function settled(p: Pipeline): boolean {
  const s = p.snapshot()
  const dead = s.deadLettered.download + s.deadLettered.upload
  return s.results + dead >= options.files && s.inRetry === 0 && s.inFlight === 0
}

const ticker = setInterval(progress, 1000)
const deadline = Date.now() + options.deadlineMs
while (!settled(pipeline) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
clearInterval(ticker)
progress(true)
const finished = settled(pipeline)
const pipelineSeconds = elapsed()
const leftOver = pipeline.snapshot()
if (!finished) {
  say(
    `gave up waiting after ${options.deadlineMs / 1000} s (--deadline): ${leftOver.inRetry} in a retry tier, ${leftOver.inFlight} in flight`
  )
}
await pipeline.stop()

// The dead-letter topic as it stands, read with the same code as `kafkit dlq list`.
const deadLetters: DeadLetterEntry[] = (await listDeadLetters({ brokers, topic: topics.dlq })).entries

console.log(`\nReconciliation (run ${run}, ${options.files} files, tiers ${options.tiers.join(', ')})`)
const wrong = reconcile({
  files: server.files,
  objects: store.objects,
  results: pipeline.results,
  deadLetters,
  topics,
  tiers: options.tiers,
  snapshot: pipeline.snapshot(),
  counters: pipeline.counters,
  server: server.stats,
  store: store.stats
})
const s = pipeline.snapshot()
const mib = pipeline.counters.bytes / 2 ** 20
console.log(
  `\n  timing: ${pipelineSeconds.toFixed(1)} s ${finished ? 'until the last file settled' : 'until the run gave up'}, ` +
    `${mib.toFixed(1)} MiB downloaded (${(mib / pipelineSeconds).toFixed(1)} MiB/s), whole run ${elapsed().toFixed(1)} s`
)
if (wrong.length === 0) {
  const stored = store.objects.size
  console.log(
    `  balanced: ${options.files} requested = ${stored} stored once + ${deadLetters.length} dead-lettered once; ` +
      `${s.results} results; 0 duplicate uploads, 0 missing`
  )
} else {
  console.log(`  NOT BALANCED: ${wrong.join('; ')}`)
}
console.log(`  all accounted for: ${wrong.length === 0 ? 'yes' : 'NO'}`)

const local = brokers.join(',') === '127.0.0.1:9092'
console.log(`\nThe dead letters stay in ${topics.dlq}:`)
console.log(`  npx kafkit dlq list ${topics.dlq}${local ? '' : ` --brokers ${brokers.join(',')}`}`)
await Promise.all([server.close(), store.close()])
await Promise.all([rm(cacheDir, { recursive: true, force: true }), rm(storeDir, { recursive: true, force: true })])
await kafka.release()
if (wrong.length > 0) process.exitCode = 1

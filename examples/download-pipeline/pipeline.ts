/**
 * The three workers of the pipeline, its topics, and what the workers have done so far:
 *
 *   pending ─▶ download (Stage, retry tiers) ─▶ cached ─▶ upload (Stage) ─▶ results ─▶ result processor (Consumer)
 *
 * Both stages dead-letter into one topic. The download stage retries a transient failure in place
 * (`maxRetries`), then through the retry tiers on `<pending>.retry.<delay>`, then dead-letters it; a
 * permanent failure (404) is dead-lettered at once. The upload stage has in-place retries only.
 *
 * Each worker can run on its own (worker.ts, one process per worker) or all three together
 * (`createPipeline`, main.ts): the groups and topics are named by the run, so workers of one run find
 * each other wherever they run.
 */
import {
  Consumer,
  Producer,
  Stage,
  ensureRetryTopics,
  ensureTopics,
  message,
  type ConsumerMetrics,
  type HandlingLogger
} from 'kafkit'
import type { StageSettings } from './options.ts'
import {
  downloadTransform,
  newDownloadCounters,
  uploadTransform,
  type CachedFile,
  type DownloadCounters,
  type DownloadRequest,
  type UploadResult
} from './workers.ts'

export interface Topics {
  pending: string
  cached: string
  results: string
  dlq: string
}

/** The topics of a run. */
export const topicsOf = (run: string): Topics => ({
  pending: `xact.downloads.pending-${run}`,
  cached: `xact.downloads.cached-${run}`,
  results: `xact.downloads.results-${run}`,
  dlq: `xact.downloads.dlq-${run}`
})

/** The consumer groups of a run's workers (the download stage's tiers: `<download>.retry.<delay>`). */
export const groupsOf = (run: string) => ({
  download: `xact.downloads.download-${run}`,
  upload: `xact.downloads.upload-${run}`,
  results: `xact.downloads.results-${run}`
})

/** Creates the run's topics: pending, cached and results, the retry tiers of pending and the dead-letter topic. */
export async function createTopics(brokers: string[], topics: Topics, tiers: string[]): Promise<void> {
  await ensureTopics({ brokers }, [
    { name: topics.pending, partitions: 6 },
    { name: topics.cached, partitions: 6 },
    { name: topics.results, partitions: 6 }
  ])
  await ensureRetryTopics({ brokers }, topics.pending, tiers, { dlqTopic: topics.dlq })
}

/** One `pending` record per file, keyed by its id. */
export async function requestDownloads(brokers: string[], topic: string, requests: DownloadRequest[]): Promise<void> {
  const producer = new Producer<DownloadRequest>({ brokers, topic })
  try {
    const messages = requests.map(request =>
      message<DownloadRequest>(request).key(request.fileId).eventType('xact.downloads.requested')
    )
    for (const outcome of await producer.sendBatch(messages)) if (!outcome.ok) throw outcome.error
  } finally {
    await producer.close()
  }
}

/**
 * Kafkit's components log through this: errors are printed, except records that reached the
 * dead-letter topic (its offset is known): those are expected here and listed in the reconciliation.
 */
export const exampleLogger: HandlingLogger = {
  debug() {},
  info() {},
  warn() {},
  error: (fields: object, text: string) => {
    if (!('dlqOffset' in fields)) console.error(`kafkit: ${text} ${JSON.stringify(fields)}`)
  }
}

/** What every worker of a run is built with. */
export interface WorkerInit {
  brokers: string[]
  run: string
  topics: Topics
  options: StageSettings
  logger: HandlingLogger
  /**
   * A worker in a process of its own: its id in the group (static membership), so that the process
   * restarted under the same id takes its partitions back at once, without waiting for a rebalance.
   */
  instance?: string | undefined
  /** Create missing dead-letter and retry topics at start (default); off: they must exist (createTopics). */
  ensureTopics?: boolean
}

export interface PipelineInit extends WorkerInit {
  cacheDir: string
  storeUrl: string
}

/** Counts of records, as the workers' metrics and the result processor have them now. */
export interface PipelineSnapshot {
  downloaded: number
  /** Records written to each retry tier (tier 1 first). */
  toTiers: number[]
  /** Records on a retry tier, not yet handled there. */
  inRetry: number
  uploaded: number
  /** Distinct files with a result. */
  results: number
  deadLettered: { download: number; upload: number }
  inFlight: number
}

export interface Pipeline {
  download: Stage<DownloadRequest, CachedFile>
  upload: Stage<CachedFile, UploadResult>
  processor: Consumer<UploadResult>
  /** Every result record the processor received, by file id. */
  results: Map<string, UploadResult[]>
  counters: DownloadCounters
  start(): Promise<void>
  stop(): Promise<void>
  snapshot(): PipelineSnapshot
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0)

/** Records that left a retry tier: handled, refused by a business rule, moved on (next tier or DLQ). */
const leftTier = (tier: ConsumerMetrics) => tier.processed + tier.business + tier.rerouted + tier.deadLettered

function snapshotOf(download: ConsumerMetrics, upload: ConsumerMetrics, results: number): PipelineSnapshot {
  const retry = download.retry
  const tiers = retry?.tiers ?? []
  const toTiers = tiers.map(tier => retry?.routed.toTier[tier.tier] ?? 0)
  return {
    downloaded: download.processed + sum(tiers.map(tier => tier.processed)),
    toTiers,
    inRetry: sum(toTiers) - sum(tiers.map(leftTier)),
    uploaded: upload.processed,
    results,
    deadLettered: { download: download.deadLettered + (retry?.routed.deadLettered ?? 0), upload: upload.deadLettered },
    inFlight: download.inFlight + sum(tiers.map(tier => tier.inFlight)) + upload.inFlight
  }
}

/** The options all three workers share: each reads its topic from the start, one dead-letter topic. */
function commonOptions(init: WorkerInit) {
  return {
    brokers: init.brokers,
    startOffset: 'earliest' as const,
    dlqTopic: init.topics.dlq,
    concurrency: { mode: 'key' as const, limit: init.options.concurrency },
    retryBackoff: { baseMs: 100, maxMs: 1000 },
    logger: init.logger,
    ...(init.ensureTopics === undefined ? {} : { ensureTopics: init.ensureTopics }),
    // Static membership, with a short session: a worker that is gone for good hands its partitions on soon.
    ...(init.instance === undefined
      ? {}
      : { groupInstanceId: init.instance, sessionTimeoutMs: 6000, heartbeatIntervalMs: 500 })
  }
}

export function downloadStage(
  init: WorkerInit & { cacheDir: string },
  counters: DownloadCounters
): Stage<DownloadRequest, CachedFile> {
  const { options } = init
  return new Stage<DownloadRequest, CachedFile>({
    ...commonOptions(init),
    groupId: groupsOf(init.run).download,
    topics: [init.topics.pending],
    outputTopic: init.topics.cached,
    delivery: 'at-least-once',
    maxRetries: options.retries,
    // Tier topics `<pending>.retry.<delay>` (the default topicTemplate `{topic}.retry.{delay}`).
    retry: { tiers: options.tiers },
    transform: downloadTransform({ cacheDir: init.cacheDir, timeoutMs: options.timeoutMs, counters })
  })
}

export function uploadStage(init: WorkerInit & { storeUrl: string }): Stage<CachedFile, UploadResult> {
  return new Stage<CachedFile, UploadResult>({
    ...commonOptions(init),
    groupId: groupsOf(init.run).upload,
    topics: [init.topics.cached],
    outputTopic: init.topics.results,
    delivery: 'at-least-once',
    maxRetries: 3,
    transform: uploadTransform({ storeUrl: init.storeUrl, timeoutMs: init.options.timeoutMs })
  })
}

/** The result processor: hands every result it receives to `onResult`. */
export function resultProcessor(init: WorkerInit, onResult: (result: UploadResult) => void): Consumer<UploadResult> {
  return new Consumer<UploadResult>({
    ...commonOptions(init),
    groupId: groupsOf(init.run).results,
    topics: [init.topics.results],
    handler: ({ value }) => {
      onResult(value)
      return Promise.resolve()
    }
  })
}

/** Every result of `results` by file id, kept in `into`. */
export const keepResults =
  (into: Map<string, UploadResult[]>) =>
  (result: UploadResult): void => {
    into.set(result.fileId, [...(into.get(result.fileId) ?? []), result])
  }

/** All three workers in this process. */
export function createPipeline(init: PipelineInit): Pipeline {
  const counters = newDownloadCounters()
  const results = new Map<string, UploadResult[]>()
  const download = downloadStage(init, counters)
  const upload = uploadStage(init)
  const processor = resultProcessor(init, keepResults(results))
  return {
    download,
    upload,
    processor,
    results,
    counters,
    // The download stage first: it creates (or checks) the retry tiers and the shared dead-letter topic.
    start: async () => {
      await download.start()
      await Promise.all([upload.start(), processor.start()])
    },
    stop: async () => {
      await download.stop()
      await upload.stop()
      await processor.stop()
    },
    snapshot: () => snapshotOf(download.metrics(), upload.metrics(), results.size)
  }
}

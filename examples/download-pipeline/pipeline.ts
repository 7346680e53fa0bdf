/**
 * The three workers of the pipeline and what they have done so far:
 *
 *   pending ─▶ download (Stage, retry tiers) ─▶ cached ─▶ upload (Stage) ─▶ results ─▶ result processor (Consumer)
 *
 * Both stages dead-letter into one topic. The download stage retries a transient failure in place
 * (`maxRetries`), then through the retry tiers on `<pending>.retry.<delay>`, then dead-letters it; a
 * permanent failure (404) is dead-lettered at once. The upload stage has in-place retries only.
 */
import { Consumer, Stage, type ConsumerMetrics, type HandlingLogger } from 'kafkit'
import type { PipelineOptions } from './options.ts'
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

export interface PipelineInit {
  brokers: string[]
  run: string
  topics: Topics
  options: PipelineOptions
  cacheDir: string
  storeUrl: string
  logger: HandlingLogger
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
function commonOptions(init: PipelineInit) {
  return {
    brokers: init.brokers,
    startOffset: 'earliest' as const,
    dlqTopic: init.topics.dlq,
    concurrency: { mode: 'key' as const, limit: init.options.concurrency },
    retryBackoff: { baseMs: 100, maxMs: 1000 },
    logger: init.logger
  }
}

function downloadStage(init: PipelineInit, counters: DownloadCounters): Stage<DownloadRequest, CachedFile> {
  const { options } = init
  return new Stage<DownloadRequest, CachedFile>({
    ...commonOptions(init),
    groupId: `xact.downloads.download-${init.run}`,
    topics: [init.topics.pending],
    outputTopic: init.topics.cached,
    delivery: 'at-least-once',
    maxRetries: options.retries,
    // Tier topics `<pending>.retry.<delay>` (the default topicTemplate `{topic}.retry.{delay}`).
    retry: { tiers: options.tiers },
    transform: downloadTransform({ cacheDir: init.cacheDir, timeoutMs: options.timeoutMs, counters })
  })
}

function uploadStage(init: PipelineInit): Stage<CachedFile, UploadResult> {
  return new Stage<CachedFile, UploadResult>({
    ...commonOptions(init),
    groupId: `xact.downloads.upload-${init.run}`,
    topics: [init.topics.cached],
    outputTopic: init.topics.results,
    delivery: 'at-least-once',
    maxRetries: 3,
    transform: uploadTransform({ storeUrl: init.storeUrl, timeoutMs: init.options.timeoutMs })
  })
}

/** The result processor: keeps every result it receives, by file id. */
function resultProcessor(init: PipelineInit, results: Map<string, UploadResult[]>): Consumer<UploadResult> {
  return new Consumer<UploadResult>({
    ...commonOptions(init),
    groupId: `xact.downloads.results-${init.run}`,
    topics: [init.topics.results],
    handler: ({ value }) => {
      results.set(value.fileId, [...(results.get(value.fileId) ?? []), value])
      return Promise.resolve()
    }
  })
}

export function createPipeline(init: PipelineInit): Pipeline {
  const counters = newDownloadCounters()
  const results = new Map<string, UploadResult[]>()
  const download = downloadStage(init, counters)
  const upload = uploadStage(init)
  const processor = resultProcessor(init, results)
  return {
    download,
    upload,
    processor,
    results,
    counters,
    // The download stage first: it creates the retry tiers and the shared dead-letter topic.
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

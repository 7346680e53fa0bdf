/**
 * One worker of the download pipeline in a process of its own, against the topics of a run that
 * exists (its topics created, its file server and store running; main.ts runs all three workers in one
 * process instead): the download stage, the upload stage, or the result processor. The processes of a
 * role share its work (one consumer group per role and run); a process stopped or killed and started
 * again under the same `--instance` takes its partitions back at once (static membership).
 *
 *   node --conditions=development examples/download-pipeline/worker.ts --role download --run <id> \
 *     --cache-dir <dir> --tiers 1s,2s --instance download-1
 *   node --conditions=development examples/download-pipeline/worker.ts --role upload --run <id> \
 *     --store http://127.0.0.1:<port> --instance upload-1
 *   node --conditions=development examples/download-pipeline/worker.ts --role results --run <id>
 *
 * The download worker needs the tiers the topics were created with. The result processor prints one
 * line per result (`result <file> <sha256>`). SIGTERM or SIGINT stops a worker gracefully: its
 * in-flight inputs finish and are committed.
 */
import { readWorkerOptions, workerUsage, type WorkerOptions } from './options.ts'
import { downloadStage, exampleLogger, resultProcessor, topicsOf, uploadStage, type WorkerInit } from './pipeline.ts'
import { newDownloadCounters, type DownloadCounters } from './workers.ts'

function optionsOrExit(): WorkerOptions {
  try {
    return readWorkerOptions()
  } catch (error) {
    console.error(`${(error as Error).message}\nusage: ${workerUsage}`)
    process.exit(2)
  }
}
const options = optionsOrExit()
const name = `${options.role} worker${options.instance === undefined ? '' : ` ${options.instance}`}`
const say = (line: string) => console.log(`[${name}] ${line}`)

const init: WorkerInit = {
  brokers: options.brokers,
  run: options.run,
  topics: topicsOf(options.run),
  options,
  logger: exampleLogger,
  instance: options.instance,
  ensureTopics: false
}

function counted(counters: DownloadCounters): string {
  const c = counters
  return `${c.attempts} attempts, ${c.downloaded} downloaded (${(c.bytes / 2 ** 20).toFixed(1)} MiB); failed: ${c.unavailable} × 503, ${c.timeouts} timed out, ${c.resets} reset, ${c.notFound} × 404`
}

/** What a Stage and a Consumer have in common, as far as this process needs. */
interface Worker {
  start(): Promise<void>
  stop(): Promise<void>
  done(): Promise<void>
}

/** The worker of the role, and what it says when it stops. */
function workerOf(): { worker: Worker; summary: () => string } {
  const { cacheDir, storeUrl } = options
  switch (options.role) {
    case 'download': {
      const counters = newDownloadCounters()
      const stage = downloadStage({ ...init, cacheDir: cacheDir ?? '' }, counters)
      return { worker: stage, summary: () => counted(counters) }
    }
    case 'upload': {
      const stage = uploadStage({ ...init, storeUrl: storeUrl ?? '' })
      return {
        worker: stage,
        summary: () => `${stage.metrics().processed} uploaded, ${stage.metrics().deadLettered} dead-lettered`
      }
    }
    case 'results': {
      let results = 0
      const processor = resultProcessor(init, result => {
        results++
        console.log(`result ${result.fileId} ${result.sha256}`)
      })
      return { worker: processor, summary: () => `${results} results` }
    }
  }
}

const { worker, summary } = workerOf()
let stopping: Promise<void> | undefined
const stop = () => {
  stopping ??= worker.stop()
  return stopping
}
process.once('SIGTERM', () => void stop())
process.once('SIGINT', () => void stop())
try {
  await worker.start()
  say(`started (run ${options.run})`)
  await worker.done()
  await stop()
  say(`stopped: ${summary()}`)
} catch (error) {
  console.error(`[${name}] failed: ${error instanceof Error ? error.message : String(error)}`)
  await stop().catch(() => undefined)
  process.exitCode = 1
}

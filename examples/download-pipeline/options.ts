/** The command lines of the download pipeline, checked: a clear message for anything they cannot use. */
import { parseArgs } from 'node:util'
import { retryTopicNames } from 'kafkit'

/** What the stages are run with (the whole pipeline and a worker of its own alike). */
export interface StageSettings {
  /** As given (`5m`, `30s`, ...): the consumer's `retry.tiers`. */
  tiers: string[]
  tierDelaysMs: number[]
  retries: number
  timeoutMs: number
  concurrency: number
}

export interface PipelineOptions extends StageSettings {
  files: number
  transientRate: number
  missingEvery: number
  downEvery: number
  deadlineMs: number
}

export type WorkerRole = 'download' | 'upload' | 'results'

/** One worker in a process of its own (worker.ts), against the topics of an existing run. */
export interface WorkerOptions extends StageSettings {
  role: WorkerRole
  run: string
  brokers: string[]
  /** Where the download worker writes the files (the upload worker reads them by the path in each record). */
  cacheDir: string | undefined
  /** The object store the upload worker PUTs to. */
  storeUrl: string | undefined
  /** Static membership: a worker restarted under the same id gets its partitions back at once. */
  instance: string | undefined
}

export const usage = `npm run example:download-pipeline -- [--files 200] [--transient-rate 0.2] [--missing-every 25]
    [--down-every 0] [--tiers 5m,10m,20m,40m] [--retries 2] [--timeout 2s] [--concurrency 16] [--deadline 2h]`

export const workerUsage = `node --conditions=development examples/download-pipeline/worker.ts --role download|upload|results
    --run <id> [--brokers host:port,...] [--cache-dir <dir>] [--store <url>] [--instance <id>]
    [--tiers 5m,10m,20m,40m] [--retries 2] [--timeout 2s] [--concurrency 16]`

function whole(name: string, text: string | undefined, min: number): number {
  const value = Number(text)
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`--${name} must be a whole number of at least ${min}, got "${text}"`)
  }
  return value
}

function share(name: string, text: string | undefined): number {
  const value = Number(text)
  if (!Number.isFinite(value) || value < 0 || value >= 1) {
    throw new Error(`--${name} must be a share from 0 up to (not including) 1, got "${text}"`)
  }
  return value
}

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** `250ms`, `2s`, `1.5s`, `10m`, `2h`, or a plain number of milliseconds. */
function duration(name: string, text: string | undefined): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text ?? '')
  const ms = match ? Number(match[1]) * (units[match[2] ?? 'ms'] ?? 1) : NaN
  if (!(ms >= 1)) throw new Error(`--${name} must be a duration such as 500ms, 2s or 10m, got "${text}"`)
  return Math.round(ms)
}

/** The options of the stages, with their defaults: one parser for both command lines. */
const stageArgs = {
  tiers: { type: 'string', default: '5m,10m,20m,40m' },
  retries: { type: 'string', default: '2' },
  timeout: { type: 'string', default: '2s' },
  concurrency: { type: 'string', default: '16' }
} as const

function stageSettings(values: { tiers: string; retries: string; timeout: string; concurrency: string }) {
  const tiers = values.tiers.split(',').map(tier => tier.trim())
  // The delays as the consumer reads them (Kafkit's own parsing: an unreadable tier is refused here).
  let tierDelaysMs: number[]
  try {
    tierDelaysMs = retryTopicNames('check', { tiers }).tiers.map(tier => tier.delayMs)
  } catch (error) {
    throw new Error(`--tiers: ${(error as Error).message}`, { cause: error })
  }
  return {
    tiers,
    tierDelaysMs,
    retries: whole('retries', values.retries, 0),
    timeoutMs: duration('timeout', values.timeout),
    concurrency: whole('concurrency', values.concurrency, 1)
  }
}

export function readOptions(args: string[] = process.argv.slice(2)): PipelineOptions {
  const { values } = parseArgs({
    args,
    options: {
      ...stageArgs,
      files: { type: 'string', default: '200' },
      'transient-rate': { type: 'string', default: '0.2' },
      'missing-every': { type: 'string', default: '25' },
      'down-every': { type: 'string', default: '0' },
      deadline: { type: 'string' }
    }
  })
  const stages = stageSettings(values)
  const allTiers = stages.tierDelaysMs.reduce((sum, ms) => sum + ms, 0)
  return {
    ...stages,
    files: whole('files', values.files, 1),
    transientRate: share('transient-rate', values['transient-rate']),
    missingEvery: whole('missing-every', values['missing-every'], 0),
    downEvery: whole('down-every', values['down-every'], 0),
    // Long enough for a file to go through every tier, plus two minutes.
    deadlineMs: values.deadline === undefined ? allTiers + 120_000 : duration('deadline', values.deadline)
  }
}

const roles: readonly WorkerRole[] = ['download', 'upload', 'results']

/** Brokers: --brokers, else KAFKA_BROKERS, else the local Kafka's default address. */
export function readWorkerOptions(args: string[] = process.argv.slice(2)): WorkerOptions {
  const { values } = parseArgs({
    args,
    options: {
      ...stageArgs,
      role: { type: 'string' },
      run: { type: 'string' },
      brokers: { type: 'string', default: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092' },
      'cache-dir': { type: 'string' },
      store: { type: 'string' },
      instance: { type: 'string' }
    }
  })
  const role = roles.find(known => known === values.role)
  if (!role) throw new Error(`--role must be one of ${roles.join(', ')}, got "${values.role ?? ''}"`)
  if (!values.run || !/^[\w-]+$/.test(values.run)) {
    throw new Error(`--run must name the run whose topics to use (letters, digits, - and _), got "${values.run ?? ''}"`)
  }
  if (role === 'download' && !values['cache-dir']) throw new Error('--cache-dir is needed by the download worker')
  if (role === 'upload' && !values.store)
    throw new Error('--store (the object store URL) is needed by the upload worker')
  if (values.store !== undefined && !URL.canParse(values.store)) {
    throw new Error(`--store must be a URL, got "${values.store}"`)
  }
  const brokers = values.brokers
    .split(',')
    .map(broker => broker.trim())
    .filter(Boolean)
  if (brokers.length === 0) throw new Error('--brokers must name at least one broker')
  return {
    ...stageSettings(values),
    role,
    run: values.run,
    brokers,
    cacheDir: values['cache-dir'],
    storeUrl: values.store?.replace(/\/+$/, ''),
    instance: values.instance
  }
}

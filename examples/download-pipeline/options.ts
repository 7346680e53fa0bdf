/** The command line of the download pipeline, checked: a clear message for anything it cannot use. */
import { parseArgs } from 'node:util'
import { retryTopicNames } from 'kafkit'

export interface PipelineOptions {
  files: number
  transientRate: number
  missingEvery: number
  downEvery: number
  /** As given (`5m`, `30s`, ...): the consumer's `retry.tiers`. */
  tiers: string[]
  tierDelaysMs: number[]
  retries: number
  timeoutMs: number
  concurrency: number
  deadlineMs: number
}

export const usage = `npm run example:download-pipeline -- [--files 200] [--transient-rate 0.2] [--missing-every 25]
    [--down-every 0] [--tiers 5m,10m,20m,40m] [--retries 2] [--timeout 2s] [--concurrency 16] [--deadline 2h]`

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

export function readOptions(args: string[] = process.argv.slice(2)): PipelineOptions {
  const { values } = parseArgs({
    args,
    options: {
      files: { type: 'string', default: '200' },
      'transient-rate': { type: 'string', default: '0.2' },
      'missing-every': { type: 'string', default: '25' },
      'down-every': { type: 'string', default: '0' },
      tiers: { type: 'string', default: '5m,10m,20m,40m' },
      retries: { type: 'string', default: '2' },
      timeout: { type: 'string', default: '2s' },
      concurrency: { type: 'string', default: '16' },
      deadline: { type: 'string' }
    }
  })
  const tiers = values.tiers.split(',').map(tier => tier.trim())
  // The delays as the consumer reads them (Kafkit's own parsing: an unreadable tier is refused here).
  let tierDelaysMs: number[]
  try {
    tierDelaysMs = retryTopicNames('check', { tiers }).tiers.map(tier => tier.delayMs)
  } catch (error) {
    throw new Error(`--tiers: ${(error as Error).message}`, { cause: error })
  }
  const allTiers = tierDelaysMs.reduce((sum, ms) => sum + ms, 0)
  return {
    files: whole('files', values.files, 1),
    transientRate: share('transient-rate', values['transient-rate']),
    missingEvery: whole('missing-every', values['missing-every'], 0),
    downEvery: whole('down-every', values['down-every'], 0),
    tiers,
    tierDelaysMs,
    retries: whole('retries', values.retries, 0),
    timeoutMs: duration('timeout', values.timeout),
    concurrency: whole('concurrency', values.concurrency, 1),
    // Long enough for a file to go through every tier, plus two minutes.
    deadlineMs: values.deadline === undefined ? allTiers + 120_000 : duration('deadline', values.deadline)
  }
}

/**
 * The transforms of the two stages and the records between them.
 *
 * - Download: fetches a file (a timeout per attempt, and the handler's signal, which aborts when the
 *   stage stops), writes it to the cache directory and outputs a `cached` record. A 503, a timeout or
 *   a connection reset is a TransientError (retried in place, then through the retry tiers); a 404 is
 *   a PermanentError (dead-lettered at once, with the reason).
 * - Upload: reads the cached file, checks its sha256, PUTs it to the store and outputs a `result`.
 *
 * Both outputs are keyed by the file id and carry an event id made from it, so a repeated output (a
 * stage that ran an input again after a crash) has the same event id as the first one.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PermanentError, TransientError, message, isKafkitError, type StageTransform } from 'kafkit'

/** On `xact.downloads.pending`: one file to download. */
export interface DownloadRequest {
  fileId: string
  url: string
}

/** On `xact.downloads.cached`: a file downloaded into the cache. */
export interface CachedFile {
  fileId: string
  path: string
  sha256: string
  size: number
}

/** On `xact.downloads.results`: a file stored. */
export interface UploadResult {
  fileId: string
  status: 'stored'
  sha256: string
}

/** What the download worker saw, per attempt. */
export interface DownloadCounters {
  attempts: number
  downloaded: number
  bytes: number
  unavailable: number
  timeouts: number
  resets: number
  notFound: number
}

export const newDownloadCounters = (): DownloadCounters => ({
  attempts: 0,
  downloaded: 0,
  bytes: 0,
  unavailable: 0,
  timeouts: 0,
  resets: 0,
  notFound: 0
})

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

/**
 * The attempt's signal: the handler's (the stage stops, the partition is revoked) or the timeout.
 * `timedOut()` tells which one fired.
 */
function attemptSignal(signal: AbortSignal, timeoutMs: number) {
  const timeout = AbortSignal.timeout(timeoutMs)
  return { signal: AbortSignal.any([signal, timeout]), timedOut: () => timeout.aborted && !signal.aborted }
}

/** How an attempt failed, in the errors' `details.failure`: what the download worker counts. */
type Failure = 'unavailable' | 'timeout' | 'reset' | 'not-found' | 'refused'

/** What a failed fetch means: handler errors as they are, a timeout, everything else a reset connection. */
function fetchFailure(error: unknown, what: string, timedOut: boolean, timeoutMs: number): Error {
  if (isKafkitError(error)) return error
  if (timedOut) {
    return new TransientError(`${what}: no answer within ${timeoutMs} ms`, {
      cause: error,
      details: { failure: 'timeout' }
    })
  }
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : undefined
  const code = (cause as { code?: string } | undefined)?.code ?? cause?.message
  const text = error instanceof Error ? error.message : String(error)
  return new TransientError(`${what}: connection reset (${text}${code ? `: ${code}` : ''})`, {
    cause: error,
    details: { failure: 'reset' }
  })
}

/** A non-2xx answer: 5xx and 429 transient, 404 and the other 4xx permanent. */
function statusFailure(what: string, res: Response): Error {
  const text = `${what} answered ${res.status} ${res.statusText}`
  if (res.status >= 500 || res.status === 429) return new TransientError(text, { details: { failure: 'unavailable' } })
  const failure: Failure = res.status === 404 ? 'not-found' : 'refused'
  return new PermanentError(text, { details: { failure } })
}

/** GET the file: its bytes, or a TransientError / PermanentError that says what went wrong. */
async function fetchFile(url: string, context: { signal: AbortSignal }, timeoutMs: number): Promise<Buffer> {
  const attempt = attemptSignal(context.signal, timeoutMs)
  const what = `GET ${new URL(url).pathname}`
  try {
    const res = await fetch(url, { signal: attempt.signal })
    if (!res.ok) {
      await res.body?.cancel()
      throw statusFailure(what, res)
    }
    const body = Buffer.from(await res.arrayBuffer())
    const length = Number(res.headers.get('content-length') ?? body.length)
    if (body.length !== length) {
      throw new TransientError(`${what}: ${body.length} of ${length} bytes arrived`, { details: { failure: 'reset' } })
    }
    return body
  } catch (error) {
    if (context.signal.aborted) throw error // stopping: the stage leaves the input to be read again
    throw fetchFailure(error, what, attempt.timedOut(), timeoutMs)
  }
}

function count(counters: DownloadCounters, error: unknown): void {
  const failure = isKafkitError(error) ? (error.details.failure as Failure | undefined) : undefined
  if (failure === 'unavailable') counters.unavailable++
  else if (failure === 'timeout') counters.timeouts++
  else if (failure === 'reset') counters.resets++
  else if (failure === 'not-found') counters.notFound++
}

export function downloadTransform(options: {
  cacheDir: string
  timeoutMs: number
  counters: DownloadCounters
}): StageTransform<DownloadRequest, CachedFile> {
  const { cacheDir, timeoutMs, counters } = options
  return async ({ value }, context) => {
    counters.attempts++
    let body: Buffer
    try {
      body = await fetchFile(value.url, context, timeoutMs)
    } catch (error) {
      count(counters, error)
      throw error
    }
    const path = join(cacheDir, value.fileId)
    // Written aside and renamed: the cache never holds a partial file under its name.
    const part = `${path}.${randomBytes(4).toString('hex')}.part`
    await writeFile(part, body)
    await rename(part, path)
    counters.downloaded++
    counters.bytes += body.length
    const cached: CachedFile = { fileId: value.fileId, path, sha256: sha256(body), size: body.length }
    return message(cached).key(value.fileId).eventType('xact.downloads.cached').eventId(`cached:${value.fileId}`)
  }
}

async function readCached(file: CachedFile): Promise<Buffer> {
  let body: Buffer
  try {
    body = await readFile(file.path)
  } catch (error) {
    throw new PermanentError(`the cached file ${file.path} cannot be read`, { cause: error })
  }
  const actual = sha256(body)
  if (actual !== file.sha256) {
    throw new PermanentError(`the cached file ${file.path} has sha256 ${actual}, the record says ${file.sha256}`)
  }
  return body
}

export function uploadTransform(options: {
  storeUrl: string
  timeoutMs: number
}): StageTransform<CachedFile, UploadResult> {
  const { storeUrl, timeoutMs } = options
  return async ({ value }, context) => {
    const body = await readCached(value)
    const attempt = attemptSignal(context.signal, timeoutMs)
    const url = `${storeUrl}/objects/${encodeURIComponent(value.fileId)}`
    const what = `PUT /objects/${value.fileId}`
    let res: Response
    try {
      const headers = { 'content-type': 'application/octet-stream' }
      res = await fetch(url, { method: 'PUT', body, headers, signal: attempt.signal })
      await res.text()
    } catch (error) {
      if (context.signal.aborted) throw error
      throw fetchFailure(error, what, attempt.timedOut(), timeoutMs)
    }
    if (!res.ok) throw statusFailure(what, res)
    const result: UploadResult = { fileId: value.fileId, status: 'stored', sha256: value.sha256 }
    return message(result).key(value.fileId).eventType('xact.downloads.stored').eventId(`stored:${value.fileId}`)
  }
}

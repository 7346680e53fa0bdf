/**
 * Where the downloads come from: a local HTTP file server (node:http on 127.0.0.1, an ephemeral port)
 * serving generated files with fixed content (the same bytes for a file number on every run, from a
 * few KB to about 1 MB). It fails like a real origin does:
 *
 * - transiently, a share of all requests (`transientRate`), in turn: a 503, a response that never
 *   comes (the client's timeout ends it), and a connection reset in the middle of the body;
 * - permanently, every `missingEvery`-th file: 404 Not Found on every request;
 * - for good but not permanently, every `downEvery`-th file (0: none): 503 on every request, so it
 *   goes through every retry tier and ends in the dead-letter topic as a transient failure.
 *
 * It counts what it did, so the run can compare the failures injected with those the workers saw.
 */
import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export type InjectedFailure = 'unavailable' | 'stall' | 'reset'
/** What should become of a file: stored, or dead-lettered because it is missing or always unavailable. */
export type Expected = 'stored' | 'missing' | 'down'

export interface FileServerOptions {
  files: number
  transientRate: number
  missingEvery: number
  downEvery: number
}

export interface ServedFile {
  fileId: string
  size: number
  sha256: string
  expected: Expected
}

export interface FileServerStats {
  requests: number
  served: number
  notFound: number
  /** 503s of files that are down (not counted in `injected`). */
  down: number
  injected: Record<InjectedFailure, number>
}

export interface FileServer {
  url: string
  files: ServedFile[]
  stats: FileServerStats
  urlOf(fileId: string): string
  close(): Promise<void>
}

const MIN_SIZE = 2048
const SIZE_DOUBLINGS = 9 // 2 KiB · 2^9 = 1 MiB

export const fileIdOf = (n: number): string => `file-${String(n).padStart(5, '0')}.bin`

/** A fixed mix of a whole number (the same on every run). */
function mix(n: number): number {
  let x = (n + 0x9e3779b9) | 0
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35)
  return (x ^ (x >>> 16)) >>> 0
}

/** The bytes of file number `n`: its size spread evenly on a log scale from 2 KiB to 1 MiB. */
export function contentOf(n: number): Buffer {
  const size = Math.round(MIN_SIZE * 2 ** ((mix(n) / 2 ** 32) * SIZE_DOUBLINGS))
  const bytes = Buffer.alloc(Math.ceil(size / 4) * 4)
  let x = mix(n + 1_000_003) || 1
  for (let i = 0; i < bytes.length; i += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    bytes.writeUInt32LE(x >>> 0, i)
  }
  return bytes.subarray(0, size)
}

function expectedOf(n: number, options: FileServerOptions): Expected {
  if (options.missingEvery > 0 && n % options.missingEvery === 0) return 'missing'
  if (options.downEvery > 0 && n % options.downEvery === 0) return 'down'
  return 'stored'
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

/** The files of the run, numbered 1..files, with their bytes. */
function generate(options: FileServerOptions): { files: ServedFile[]; contents: Map<string, Buffer> } {
  const contents = new Map<string, Buffer>()
  const files: ServedFile[] = []
  for (let n = 1; n <= options.files; n++) {
    const bytes = contentOf(n)
    const fileId = fileIdOf(n)
    contents.set(fileId, bytes)
    files.push({ fileId, size: bytes.length, sha256: sha256(bytes), expected: expectedOf(n, options) })
  }
  return { files, contents }
}

/** Answers `GET /files/<id>`: the file, or the failure it is due. */
function fileHandler(options: FileServerOptions, files: ServedFile[], contents: Map<string, Buffer>) {
  const byId = new Map(files.map(file => [file.fileId, file]))
  const stats: FileServerStats = { requests: 0, served: 0, notFound: 0, down: 0, injected: blank() }
  const kinds: InjectedFailure[] = ['unavailable', 'stall', 'reset']
  let injections = 0
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    stats.requests++
    const fileId = /^\/files\/([\w.-]+)$/.exec(req.url ?? '')?.[1] ?? ''
    const file = byId.get(fileId)
    const bytes = contents.get(fileId)
    if (req.method !== 'GET' || !file || !bytes || file.expected === 'missing') {
      stats.notFound++
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no such file: ${req.url}\n`)
    } else if (file.expected === 'down') {
      stats.down++
      res.writeHead(503, { 'content-type': 'text/plain' }).end('this file is unavailable\n')
    } else if (Math.random() < options.transientRate) {
      const kind = kinds[injections++ % kinds.length] ?? 'unavailable'
      stats.injected[kind]++
      fail(kind, req, res, bytes)
    } else {
      stats.served++
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length }).end(bytes)
    }
  }
  return { handle, stats }
}

/** Starts the server on an ephemeral port of 127.0.0.1. */
export async function startFileServer(options: FileServerOptions): Promise<FileServer> {
  const { files, contents } = generate(options)
  const { handle, stats } = fileHandler(options, files, contents)
  const server = createServer(handle)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    files,
    stats,
    urlOf: fileId => `${url}/files/${fileId}`,
    close: () => {
      server.closeAllConnections() // the stalled responses too
      return new Promise(resolve => server.close(() => resolve()))
    }
  }
}

const blank = (): Record<InjectedFailure, number> => ({ unavailable: 0, stall: 0, reset: 0 })

/** One injected transient failure. */
function fail(kind: InjectedFailure, req: IncomingMessage, res: ServerResponse, bytes: Buffer): void {
  switch (kind) {
    case 'unavailable':
      res.writeHead(503, { 'content-type': 'text/plain' }).end('busy, try again later\n')
      return
    case 'stall':
      // No answer at all: the client gives up after its timeout and closes the connection.
      return
    case 'reset':
      // Half the body, then the connection is torn down.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length })
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => req.socket.destroy())
      return
  }
}

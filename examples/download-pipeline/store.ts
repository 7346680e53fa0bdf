/**
 * Where the uploads go: a small object store on loopback (node:http, an ephemeral port) that accepts
 * `PUT /objects/<name>` and writes each object to a directory. A second PUT of an object with the same
 * content is idempotent (200, nothing changes) but it is counted: the reconciliation reports every
 * object put more than once, as a duplicate upload (or as a repeat, when workers were killed and ran
 * an input again). A PUT with other content than the stored one is refused (409).
 */
import { createHash, randomBytes } from 'node:crypto'
import { rename, writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'

export interface StoredObject {
  /** Every PUT of this object that was accepted (201 or 200). */
  puts: number
  sha256: string
  size: number
}

export interface StoreStats {
  puts: number
  created: number
  repeated: number
  conflicts: number
}

export interface Store {
  url: string
  objects: ReadonlyMap<string, StoredObject>
  stats: StoreStats
  close(): Promise<void>
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function answer(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

/** Starts the store; objects are written to `dir`. */
export async function startStore(dir: string): Promise<Store> {
  const objects = new Map<string, StoredObject>()
  const stats: StoreStats = { puts: 0, created: 0, repeated: 0, conflicts: 0 }

  async function put(name: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req)
    const sha256 = createHash('sha256').update(body).digest('hex')
    stats.puts++
    const stored = objects.get(name)
    if (stored && stored.sha256 !== sha256) {
      stats.conflicts++
      return answer(res, 409, { error: `${name} exists with other content (sha256 ${stored.sha256})` })
    }
    if (stored) {
      stored.puts++
      stats.repeated++
      return answer(res, 200, { name, sha256, status: 'unchanged' })
    }
    // Counted before the write, so a concurrent PUT of the same object counts as the second one.
    objects.set(name, { puts: 1, sha256, size: body.length })
    try {
      const part = join(dir, `.${name}.${randomBytes(4).toString('hex')}`)
      await writeFile(part, body)
      await rename(part, join(dir, name))
    } catch (error) {
      objects.delete(name)
      throw error
    }
    stats.created++
    answer(res, 201, { name, sha256, status: 'created' })
  }

  const server = createServer((req, res) => {
    const name = /^\/objects\/([\w][\w.-]*)$/.exec(req.url ?? '')?.[1]
    if (req.method !== 'PUT' || name === undefined)
      return answer(res, 404, { error: `no route ${req.method} ${req.url}` })
    put(name, req, res).catch((error: unknown) => answer(res, 500, { error: String(error) }))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    objects,
    stats,
    close: () => {
      server.closeAllConnections()
      return new Promise(resolve => server.close(() => resolve()))
    }
  }
}

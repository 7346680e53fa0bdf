/**
 * Redis for the integration tests. `ensureRedis()` makes sure a server answers on 127.0.0.1:6379 and
 * starts one (a daemon, no persistence) when nothing does, so a fresh machine needs only
 * `redis-server` installed. `startRedisServer()` runs a server of the test's own on a spare port, for
 * tests that kill it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { promisify } from 'node:util'
import { waitFor } from './wait.ts'

export const REDIS_PORT = 6379
export const redisUrl = (): string => `redis://127.0.0.1:${REDIS_PORT}`

const serverArgs = (port: number) => ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no']

/** Whether a Redis server answers PING on 127.0.0.1:`port`. */
export function pingRedis(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise(resolve => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    let reply = ''
    const done = (ok: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), timeoutMs)
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1')
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'))
    })
    socket.on('error', () => done(false))
  })
}

function missingServer(error: unknown): Error {
  return (error as { code?: unknown }).code === 'ENOENT'
    ? new Error('redis-server is not installed: install it (apt-get install redis-server) to run the Redis tests')
    : (error as Error)
}

/** Starts a daemonized redis-server on 6379 unless one answers there already. */
export async function ensureRedis(): Promise<void> {
  if (await pingRedis(REDIS_PORT)) return
  try {
    await promisify(execFile)('redis-server', ['--daemonize', 'yes', ...serverArgs(REDIS_PORT)])
  } catch (error) {
    throw missingServer(error)
  }
  await waitFor(() => pingRedis(REDIS_PORT, 200), 10_000, `redis-server on ${REDIS_PORT}`, 100)
}

/** A port nothing listens on right now. */
function sparePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

export interface TestRedisServer {
  port: number
  url: string
  /** Sends `signal` to the server (SIGKILL: a crash) and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** A new server on the same port (after `kill`). */
  restart(): Promise<void>
}

async function spawnServer(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', serverArgs(port), { stdio: 'ignore' })
  const failed = new Promise<never>((_resolve, reject) => child.once('error', error => reject(missingServer(error))))
  failed.catch(() => undefined)
  await Promise.race([waitFor(() => pingRedis(port, 200), 10_000, `redis-server on ${port}`, 50), failed])
  return child
}

/** A redis-server of the caller's own on a spare port; stop it with `kill()` (also after the test). */
export async function startRedisServer(): Promise<TestRedisServer> {
  const port = await sparePort()
  let child = await spawnServer(port)
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill(signal)
    await exited
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    async restart() {
      await kill('SIGKILL')
      child = await spawnServer(port)
    }
  }
}

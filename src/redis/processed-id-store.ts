/**
 * `RedisProcessedIdStore`: the idempotent consumer's processed ids in Redis, shared by every worker on
 * it. One string key per (scope, id): `claimed` with the lease as its expiry, then `processed` with the
 * store's `ttl`. A claim is `SET key claimed NX PX lease` and, when the key exists, a read of its value,
 * both in one Lua script (atomic, one round trip); a release deletes the key only while it is still
 * `claimed` (a Lua script too), so it never forgets a processed id.
 *
 * Every call either answers within `timeout` or fails with a transient `KAFKIT_STORE_UNAVAILABLE`:
 * the store waits for the connection to be ready (never queueing a command for a later reconnect),
 * fails at once when connecting fails, and bounds the command itself. With `url` the store owns its
 * client and configures it that way (no offline queue, no resend after a reconnect, connect and command
 * timeouts); `close()` quits it. A borrowed `client` is left open. A password in the url never appears
 * in an error message.
 */
import { createHash } from 'node:crypto'
import { Redis, type Cluster } from 'ioredis'
import { ConfigError, isKafkitError, KafkitError } from '../errors/kafkit-error.ts'
import { TransientError } from '../handling/errors.ts'
import type { ClaimResult, ProcessedIdStore } from '../handling/processed-id-store.ts'
import {
  redisProcessedIdStoreOptions,
  type RedisProcessedIdStoreConfig,
  type RedisProcessedIdStoreOptions
} from './options.ts'

const COMPONENT = 'redis processed-id store'

export type RedisProcessedIdStoreInit = RedisProcessedIdStoreOptions &
  (
    | {
        /** An ioredis client (or cluster) you own: the store never closes it. */
        client: Redis | Cluster
        url?: undefined
      }
    | {
        /** `redis://[user:password@]host:port[/db]` or `rediss://...`: the store creates, owns and closes its client. */
        url: string
        client?: undefined
      }
  )

/** The commands the store sends, typed once for both a Redis and a Cluster client. */
interface Commands {
  status: string
  evalsha(sha: string, keys: number, ...args: (string | number)[]): Promise<unknown>
  eval(script: string, keys: number, ...args: (string | number)[]): Promise<unknown>
  set(key: string, value: string, mode: 'PX', ms: number): Promise<unknown>
  connect(): Promise<void>
  quit(): Promise<unknown>
  disconnect(): void
  on(event: string, listener: (...args: never[]) => void): unknown
  off(event: string, listener: (...args: never[]) => void): unknown
}

interface Script {
  lua: string
  sha: string
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') }
}

/** 1 when this call claimed the key, else the key's value. */
const CLAIM = script(
  "if redis.call('SET', KEYS[1], 'claimed', 'NX', 'PX', ARGV[1]) then return 1 end return redis.call('GET', KEYS[1])"
)
/** Deletes the key only while it is a claim (a processed id stays). */
const RELEASE = script("if redis.call('GET', KEYS[1]) == 'claimed' then return redis.call('DEL', KEYS[1]) end return 0")

/** The lease in whole milliseconds; a lease that is not a positive number is a programming error. */
function leaseOf(leaseMs: number): number {
  if (!Number.isFinite(leaseMs) || leaseMs <= 0) {
    throw new ConfigError(`processed-id store lease: got ${leaseMs}, expected a positive number of milliseconds`)
  }
  return Math.max(1, Math.ceil(leaseMs))
}

/** The password of a url (raw and decoded), to scrub from messages; none for a url without one. */
function secretsOf(url: string): string[] {
  try {
    const { password } = new URL(url)
    return password ? [...new Set([password, decodeURIComponent(password)])] : []
  } catch {
    return []
  }
}

function ownedClient(url: string, timeout: number): Redis {
  if (!/^rediss?:\/\/[^\s]+$/.test(url)) {
    throw new ConfigError(`${COMPONENT}: \`url\` must be redis://host:port or rediss://host:port (value not shown)`, {
      details: { component: COMPONENT, key: 'url' }
    })
  }
  const client = new Redis(url, {
    lazyConnect: true,
    // A command sent while disconnected fails at once instead of waiting for a reconnect, and one in
    // flight when the connection drops is failed, never sent again later behind the caller's back.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: timeout,
    commandTimeout: timeout,
    retryStrategy: times => Math.min(times * 100, 1000)
  })
  // Connection errors reach the callers through the store; without a listener ioredis would print them.
  client.on('error', () => undefined)
  return client
}

export class RedisProcessedIdStore implements ProcessedIdStore, AsyncDisposable {
  readonly config: Readonly<RedisProcessedIdStoreConfig>
  readonly #client: Commands
  readonly #owned: boolean
  readonly #secrets: string[]
  #connecting: Promise<void> | undefined
  #closed = false

  constructor(init: RedisProcessedIdStoreInit) {
    const { client, url, ...options } = init
    this.config = redisProcessedIdStoreOptions.resolve(options)
    if ((client === undefined) === (url === undefined)) {
      throw new ConfigError(`${COMPONENT}: pass exactly one of \`client\` (an ioredis client you own) and \`url\``, {
        details: { component: COMPONENT, key: client === undefined ? 'client' : 'url' }
      })
    }
    this.#owned = url !== undefined
    this.#secrets = url === undefined ? [] : secretsOf(url)
    this.#client = (url === undefined ? client : ownedClient(url, this.config.timeout)) as unknown as Commands
  }

  /** The Redis key of an id: `<keyPrefix><scope>:<id>`, with `%` and `:` in the scope escaped. */
  keyFor(scope: string, id: string): string {
    return `${this.config.keyPrefix}${scope.replaceAll('%', '%25').replaceAll(':', '%3A')}:${id}`
  }

  claim(scope: string, id: string, leaseMs: number): Promise<ClaimResult> {
    const lease = leaseOf(leaseMs)
    const key = this.keyFor(scope, id)
    return this.#run('claim', scope, id, async () => {
      const value = await this.#script(CLAIM, key, lease)
      if (value === 1) return 'claimed'
      if (value === 'processed') return 'processed'
      if (value === 'claimed') return 'in-progress'
      throw new KafkitError(
        'KAFKIT_STORE_UNAVAILABLE',
        `${COMPONENT}: key ${key} holds a value that is not a processed-id entry; choose a keyPrefix no other data uses`,
        { retryable: false, details: { operation: 'claim', scope, id, key } }
      )
    })
  }

  complete(scope: string, id: string): Promise<void> {
    const key = this.keyFor(scope, id)
    return this.#run('complete', scope, id, async () => {
      await this.#client.set(key, 'processed', 'PX', this.config.ttl)
    })
  }

  release(scope: string, id: string): Promise<void> {
    const key = this.keyFor(scope, id)
    return this.#run('release', scope, id, async () => {
      await this.#script(RELEASE, key)
    })
  }

  /** Quits the client the store created from `url` (a borrowed client stays open); idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (!this.#owned) return
    const client = this.#client
    if (client.status === 'ready') await this.#bounded(client.quit()).catch(() => undefined)
    if (client.status !== 'end') client.disconnect()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  async #script(script: Script, key: string, ...args: (string | number)[]): Promise<unknown> {
    try {
      return await this.#client.evalsha(script.sha, 1, key, ...args)
    } catch (error) {
      // The server's script cache is empty (a restart, SCRIPT FLUSH): send the script itself once.
      if (!/NOSCRIPT/.test(String((error as Error | null)?.message))) throw error
      return this.#client.eval(script.lua, 1, key, ...args)
    }
  }

  async #run<T>(operation: string, scope: string, id: string, work: () => Promise<T>): Promise<T> {
    try {
      if (this.#closed) throw new Error('the store is closed')
      return await this.#bounded(this.#ready().then(work))
    } catch (error) {
      throw this.#error(error, operation, { scope, id })
    }
  }

  /** Resolves once the client is ready; rejects at the first connection error, at its end, or after `timeout`. */
  #ready(): Promise<void> {
    const client = this.#client
    if (client.status === 'ready') return Promise.resolve()
    if (client.status === 'end') return Promise.reject(new Error('the Redis connection is closed'))
    this.#connecting ??= new Promise<void>((resolve, reject) => {
      const finish = (error?: Error) => {
        clearTimeout(timer)
        client.off('ready', onReady)
        client.off('error', onError)
        client.off('end', onEnd)
        this.#connecting = undefined
        if (error) reject(error)
        else resolve()
      }
      const onReady = () => finish()
      const onError = (error: Error) => finish(error)
      const onEnd = () => finish(new Error('the Redis connection is closed'))
      const timer = setTimeout(
        () => finish(new Error(`not connected within ${this.config.timeout} ms (status ${client.status})`)),
        this.config.timeout
      )
      client.on('ready', onReady)
      client.on('error', onError)
      client.on('end', onEnd)
      if (client.status === 'wait') client.connect().catch(() => undefined)
    })
    return this.#connecting
  }

  /** `work`, or a rejection once `timeout` has passed without an answer. */
  #bounded<T>(work: Promise<T>): Promise<T> {
    const { timeout } = this.config
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer within ${timeout} ms`)), timeout)
    })
    return Promise.race([work, expired]).finally(() => clearTimeout(timer))
  }

  /** A failure as a KafkitError: transient unless the keys hold other data or the user lacks permission. */
  #error(error: unknown, operation: string, details: Record<string, unknown>): KafkitError {
    if (isKafkitError(error)) return error
    const all = { operation, ...details }
    const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
    let reason = typeof message === 'string' && message !== '' ? message : String(error)
    if (typeof code === 'string' && !reason.includes(code)) reason += ` (${code})`
    for (const secret of this.#secrets) reason = reason.replaceAll(secret, '[redacted]')
    if (/^(WRONGTYPE|NOPERM)/.test(reason)) {
      return new KafkitError(
        'KAFKIT_STORE_UNAVAILABLE',
        `${COMPONENT}: ${operation} was refused: ${reason}; choose a keyPrefix no other data uses, and allow the user SET, EVALSHA and EVAL on it`,
        { cause: error, retryable: false, details: all }
      )
    }
    return new TransientError(
      `${COMPONENT}: ${operation} failed, Redis is unavailable: ${reason}`,
      { cause: error, details: all },
      'KAFKIT_STORE_UNAVAILABLE'
    )
  }
}

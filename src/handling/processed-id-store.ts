/**
 * Where the idempotent consumer remembers which events it processed. The contract is an atomic claim
 * with a lease, so two workers that get the same event (a redelivery after a rebalance, a duplicate
 * send) never both run it: `claim` answers `claimed` to exactly one caller until that caller
 * `complete`s (processed, remembered for the store's retention) or `release`s it (failed: claimable
 * again), or until the lease expires (the claimer crashed). Ids are scoped (the consumer group by
 * default), since two services processing the same event must each process it once.
 *
 * `InMemoryProcessedIdStore` is for one process (tests, a single worker, deduplicating redeliveries
 * within a process); it is bounded by entries and time. Shared stores (Redis, Postgres) implement the
 * same interface in their own packages.
 */
import { ConfigError } from '../errors/kafkit-error.ts'

export type ClaimResult = 'claimed' | 'processed' | 'in-progress'

export interface ProcessedIdStore {
  /** Atomically: `processed` if done before, `in-progress` if another unexpired claim holds it, else claims it. */
  claim(scope: string, id: string, leaseMs: number): Promise<ClaimResult>
  /** Marks a claimed id processed. */
  complete(scope: string, id: string): Promise<void>
  /** Gives up a claim after a failure, so a retry may claim it again. */
  release(scope: string, id: string): Promise<void>
  close?(): Promise<void>
}

export interface InMemoryProcessedIdStoreOptions {
  /** Most ids kept; the oldest are forgotten first. Default 100,000. */
  maxEntries?: number
  /** How long a processed id is remembered. Default 24 h. */
  ttlMs?: number
  now?: () => number
}

interface Entry {
  processed: boolean
  expiresAt: number
}

export class InMemoryProcessedIdStore implements ProcessedIdStore, AsyncDisposable {
  readonly #entries = new Map<string, Entry>()
  readonly #maxEntries: number
  readonly #ttlMs: number
  readonly #now: () => number

  constructor(options: InMemoryProcessedIdStoreOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 100_000
    this.#ttlMs = options.ttlMs ?? 24 * 60 * 60 * 1000
    this.#now = options.now ?? Date.now
    for (const [key, value, min] of [
      ['maxEntries', this.#maxEntries, 1],
      ['ttlMs', this.#ttlMs, 0]
    ] as const) {
      if (!Number.isInteger(value) || value < min) {
        throw new ConfigError(
          `in-memory processed-id store option \`${key}\`: got ${JSON.stringify(value)}, expected a whole number >= ${min}`,
          { details: { component: 'in-memory processed-id store', key } }
        )
      }
    }
  }

  /** Ids currently remembered (claimed or processed). */
  get size(): number {
    return this.#entries.size
  }

  claim(scope: string, id: string, leaseMs: number): Promise<ClaimResult> {
    const key = `${scope}\u0000${id}`
    const now = this.#now()
    const entry = this.#entries.get(key)
    if (entry && entry.expiresAt > now) return Promise.resolve(entry.processed ? 'processed' : 'in-progress')
    this.#entries.delete(key)
    this.#entries.set(key, { processed: false, expiresAt: now + leaseMs })
    this.#evict(now)
    return Promise.resolve('claimed')
  }

  complete(scope: string, id: string): Promise<void> {
    const key = `${scope}\u0000${id}`
    // Re-inserted so the Map's order stays roughly the order of expiry.
    this.#entries.delete(key)
    this.#entries.set(key, { processed: true, expiresAt: this.#now() + this.#ttlMs })
    this.#evict(this.#now())
    return Promise.resolve()
  }

  release(scope: string, id: string): Promise<void> {
    const key = `${scope}\u0000${id}`
    if (this.#entries.get(key)?.processed === false) this.#entries.delete(key)
    return Promise.resolve()
  }

  close(): Promise<void> {
    this.#entries.clear()
    return Promise.resolve()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  #evict(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && entry.expiresAt > now) break
      this.#entries.delete(key)
    }
  }
}

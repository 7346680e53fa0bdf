/**
 * The small database surface the Postgres sink needs, so that it runs on a `pg` Pool (the production
 * case, with the COPY bulk path) and on an embedded PGlite (the log-pipeline example's fallback, no
 * COPY from the client). `pgPoolDatabase` borrows a pool; `pgliteDatabase` wraps anything shaped like
 * PGlite without importing it. A session is one connection for the length of a callback, so a
 * transaction's statements share it.
 */
import type { Pool, PoolClient } from 'pg'
import { copyFromStdin } from './copy-from.ts'

export interface SqlResult<R> {
  rows: R[]
  rowCount: number
}

export interface SqlSession {
  query<R = Record<string, unknown>>(text: string, values?: readonly unknown[]): Promise<SqlResult<R>>
  /**
   * Runs `COPY ... FROM STDIN` with the given text-format chunks, or a script of statements with one
   * such COPY among them (one round trip, one implicit transaction); resolves with the row count of the
   * last data statement. Absent when the driver cannot.
   */
  copyFrom?: ((statement: string, chunks: Iterable<string>, signal?: AbortSignal) => Promise<number>) | undefined
}

export interface SqlDatabase {
  /** Runs `work` on one connection; the connection is returned (or discarded when broken) afterwards. */
  withSession<T>(work: (session: SqlSession) => Promise<T>, signal?: AbortSignal): Promise<T>
  /** Closes what the adapter owns (a borrowed pool is left open). */
  close(): Promise<void>
}

/** A `pg` Pool as a SqlDatabase; `owned` pools are ended by `close()`. */
export function pgPoolDatabase(pool: Pool, options: { owned?: boolean } = {}): SqlDatabase {
  return {
    async withSession(work, signal) {
      signal?.throwIfAborted()
      const client: PoolClient = await pool.connect()
      let broken: Error | undefined
      // A client whose socket died emits 'error'; without a listener that would crash the process.
      const onError = (error: Error) => {
        broken = error
      }
      client.on('error', onError)
      const session: SqlSession = {
        async query<R>(text: string, values?: readonly unknown[]) {
          const result = await client.query(text, values === undefined ? undefined : [...values])
          return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 }
        },
        copyFrom: (statement, chunks, copySignal) => copyFromStdin(client, statement, chunks, copySignal)
      }
      try {
        return await work(session)
      } catch (error) {
        // After a failed statement the connection may be mid-transaction or dead: never reuse it.
        broken ??= error as Error
        throw error
      } finally {
        client.off('error', onError)
        client.release(broken)
      }
    },
    async close() {
      if (options.owned) await pool.end()
    }
  }
}

/** What `pgliteDatabase` needs of a PGlite instance (structural: kafkit does not import PGlite). */
export interface PGliteLike {
  query<R>(text: string, values?: unknown[]): Promise<{ rows: R[]; affectedRows?: number }>
  close?(): Promise<void>
}

/**
 * An embedded PGlite as a SqlDatabase. PGlite is one connection, so sessions are queued: a
 * transaction never interleaves with another. No COPY FROM STDIN: the sink uses multi-row INSERT.
 */
export function pgliteDatabase(db: PGliteLike, options: { owned?: boolean } = {}): SqlDatabase {
  let queue: Promise<unknown> = Promise.resolve()
  return {
    withSession<T>(work: (session: SqlSession) => Promise<T>, signal?: AbortSignal): Promise<T> {
      const run = async (): Promise<T> => {
        signal?.throwIfAborted()
        const session: SqlSession = {
          async query<R>(text: string, values?: readonly unknown[]) {
            const result = await db.query<R>(text, values === undefined ? undefined : [...values])
            return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length }
          }
        }
        try {
          return await work(session)
        } catch (error) {
          // Leave no transaction open on the shared connection.
          await db.query('ROLLBACK').catch(() => undefined)
          throw error
        }
      }
      const result = queue.then(run, run)
      queue = result.catch(() => undefined)
      return result
    },
    async close() {
      if (options.owned) await db.close?.()
    }
  }
}

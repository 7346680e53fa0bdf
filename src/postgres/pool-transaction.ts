/**
 * One transaction on a client checked out of a `pg` pool: BEGIN, the work, COMMIT; ROLLBACK when the
 * work throws. A connection cut while the client is checked out emits 'error' on it (without a
 * listener that would crash the process); the statement in flight fails too, and the client is then
 * discarded instead of going back to the pool. `own` wraps the helper's own statements (connect,
 * BEGIN, COMMIT), e.g. to give their failures a code, and leaves the work's errors as they are.
 */
import type { Pool, PoolClient } from 'pg'

export async function inPoolTransaction<T>(
  pool: Pool,
  work: (tx: PoolClient) => Promise<T>,
  own: <R>(statement: () => Promise<R>) => Promise<R> = statement => statement()
): Promise<T> {
  const client = await own(() => pool.connect())
  let broken: Error | undefined
  const onError = (error: Error) => {
    broken = error
  }
  client.on('error', onError)
  try {
    await own(() => client.query('BEGIN'))
    const result = await work(client)
    await own(() => client.query('COMMIT'))
    return result
  } catch (error) {
    await client.query('ROLLBACK').catch((rollbackError: unknown) => {
      broken = rollbackError as Error
    })
    throw error
  } finally {
    client.off('error', onError)
    client.release(broken)
  }
}

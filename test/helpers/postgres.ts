/** The machine's PostgreSQL cluster for the outage tests: stop, start or restart it, and wait until it answers. */
import { execFileSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import pg from 'pg'
import { databaseUrl } from './env.ts'
import { waitFor } from './wait.ts'

export function postgresCluster(action: 'start' | 'stop' | 'restart'): void {
  const version = readdirSync('/etc/postgresql')[0]
  if (!version) throw new Error('no PostgreSQL cluster in /etc/postgresql')
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', action], { stdio: 'ignore' })
}

/** Does the database at DATABASE_URL answer a query now? */
export async function postgresReady(): Promise<boolean> {
  const client = new pg.Client({ connectionString: databaseUrl() })
  try {
    await client.connect()
    await client.query('SELECT 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** Restarts the cluster (every connection cut) and waits until it answers again. */
export async function restartPostgres(): Promise<void> {
  postgresCluster('restart')
  await waitFor(postgresReady, 30_000, 'PostgreSQL to accept connections after the restart')
}

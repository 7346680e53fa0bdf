/**
 * A real ClickHouse server for the sink tests, without Docker: Debian's `clickhouse-server` package
 * (installed with apt-get when its binaries are missing; tests and CI run as root on Debian), started
 * as a background process bound to 127.0.0.1 on ports of its own (HTTP 18123, native 19000) with its
 * own config and data under the Kafkit cache, recorded by PID, waited for on `/ping`, and stopped by
 * that PID. With `CLICKHOUSE_URL` set, that server is used instead and nothing is started.
 *
 * One server per test file (a start takes a few seconds); a second caller in the same process reuses
 * it. Each test uses a database of its own (`createTestDatabase`), dropped in `t.after`.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, openSync, closeSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { createClient, ClickHouseLogLevel, type ClickHouseClient } from '@clickhouse/client'
import { uniqueName } from '../../src/testing/topics.ts'
import { eventually } from './wait.ts'

export const CLICKHOUSE_HTTP_PORT = 18123
export const CLICKHOUSE_TCP_PORT = 19000

export interface TestClickHouse {
  url: string
  /** The server's PID (undefined for CLICKHOUSE_URL, which is never stopped). */
  pid: number | undefined
  stop(): Promise<void>
}

const stateDir = join(
  process.env.KAFKIT_CACHE_DIR ?? join(homedir(), '.cache', 'kafkit'),
  `clickhouse-${CLICKHOUSE_HTTP_PORT}`
)

/** The server binary: Debian's `clickhouse-server` (18.x), or the single `clickhouse` binary of newer packages. */
function serverCommand(): { file: string; args: string[] } | undefined {
  for (const file of ['/usr/sbin/clickhouse-server', '/usr/bin/clickhouse-server']) {
    if (existsSync(file)) return { file, args: [] }
  }
  for (const file of ['/usr/bin/clickhouse', '/usr/local/bin/clickhouse']) {
    if (existsSync(file)) return { file, args: ['server'] }
  }
  return undefined
}

function install(log: (line: string) => void): void {
  log('clickhouse-server is not installed: apt-get install -y clickhouse-server clickhouse-client')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const run = (args: string[]) =>
    spawnSync('apt-get', args, { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' })
  let result = run(['install', '-y', '-q', 'clickhouse-server', 'clickhouse-client'])
  if (result.status !== 0) {
    // A fresh machine may have no package lists yet.
    run(['update', '-q'])
    result = run(['install', '-y', '-q', 'clickhouse-server', 'clickhouse-client'])
  }
  if (result.status !== 0 || !serverCommand()) {
    throw new Error(
      `installing clickhouse-server failed (apt-get exit ${result.status}): ${result.stderr.slice(-2000)}`
    )
  }
}

function configXml(dir: string): string {
  return `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>${dir}/server.log</log><errorlog>${dir}/server.err.log</errorlog><size>10M</size><count>1</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>${CLICKHOUSE_HTTP_PORT}</http_port>
  <tcp_port>${CLICKHOUSE_TCP_PORT}</tcp_port>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/data/tmp/</tmp_path>
  <user_files_path>${dir}/data/user_files/</user_files_path>
  <format_schema_path>${dir}/data/format_schemas/</format_schema_path>
  <users_config>${dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
</yandex>
`
}

const usersXml = `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`

async function ping(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) })
    return response.ok && (await response.text()).trim() === 'Ok.'
  } catch {
    return false
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

let shared: Promise<TestClickHouse> | undefined

/** Starts (or reuses) the test ClickHouse; `log` gets one line per step. */
export function startClickHouse(log: (line: string) => void = line => process.stderr.write(`[clickhouse] ${line}\n`)) {
  shared ??= start(log).catch((error: unknown) => {
    shared = undefined
    throw error
  })
  return shared
}

async function start(log: (line: string) => void): Promise<TestClickHouse> {
  const external = process.env.CLICKHOUSE_URL
  if (external) return { url: external.replace(/\/$/, ''), pid: undefined, stop: async () => {} }
  const url = `http://127.0.0.1:${CLICKHOUSE_HTTP_PORT}`
  const pidFile = join(stateDir, 'server.pid')
  // A server this harness started earlier and did not stop (a test process that was killed): take it
  // over and stop it at the end like our own.
  const previous = Number(await readFile(pidFile, 'utf8').catch(() => '0'))
  if (previous > 0 && alive(previous) && (await ping(url))) {
    log(`reusing the ClickHouse left running by an earlier run (pid ${previous})`)
    return { url, pid: previous, stop: () => stopServer(previous, pidFile) }
  }
  if (await ping(url)) {
    throw new Error(
      `port ${CLICKHOUSE_HTTP_PORT} answers as ClickHouse but was not started by this harness; stop it or set CLICKHOUSE_URL`
    )
  }
  let command = serverCommand()
  if (!command) {
    install(log)
    command = serverCommand()
  }
  if (!command) throw new Error('clickhouse-server is missing after install')
  await rm(join(stateDir, 'data'), { recursive: true, force: true })
  await mkdir(join(stateDir, 'data'), { recursive: true })
  await writeFile(join(stateDir, 'config.xml'), configXml(stateDir))
  await writeFile(join(stateDir, 'users.xml'), usersXml)
  const out = openSync(join(stateDir, 'stdout.log'), 'w')
  const child = spawn(command.file, [...command.args, `--config-file=${join(stateDir, 'config.xml')}`], {
    cwd: stateDir,
    detached: true,
    stdio: ['ignore', out, out]
  })
  closeSync(out)
  child.unref()
  const pid = child.pid
  if (pid === undefined) throw new Error(`could not start ${command.file}`)
  await writeFile(pidFile, String(pid))
  const started = Date.now()
  // An object, not a `let`: TypeScript does not see the assignment in the callback.
  const state: { exited: number | null } = { exited: null }
  child.once('exit', code => {
    state.exited = code ?? -1
  })
  // Ready when it answers a ping; given up on when it exits first or after 60 s.
  let ready = false
  await eventually(async () => (ready = await ping(url)) || state.exited !== null, 60_000, 200)
  if (!ready) {
    const errors = await readFile(join(stateDir, 'server.err.log'), 'utf8').catch(() => '')
    if (alive(pid)) process.kill(pid, 'SIGKILL')
    throw new Error(
      `ClickHouse did not become ready (${state.exited === null ? 'timeout' : `exit ${state.exited}`}); ${stateDir}/server.err.log: ${errors.slice(-1500)}`
    )
  }
  log(`ClickHouse ready on ${url} (pid ${pid}) in ${Date.now() - started} ms`)
  return {
    url,
    pid,
    stop: () => stopServer(pid, pidFile)
  }
}

async function stopServer(pid: number, pidFile: string): Promise<void> {
  shared = undefined
  if (alive(pid)) {
    process.kill(pid, 'SIGTERM')
    await eventually(() => !alive(pid), 10_000, 100)
    if (alive(pid)) process.kill(pid, 'SIGKILL')
  }
  await rm(pidFile, { force: true })
}

/** A client for the test server (logging off: failures are asserted, not printed). */
export function clickHouseClient(url: string, database?: string): ClickHouseClient {
  return createClient({ url, ...(database ? { database } : {}), log: { level: ClickHouseLogLevel.OFF } })
}

/** A fresh database for one test, dropped in `t.after`. */
export async function createTestDatabase(
  t: TestContext,
  url: string
): Promise<{ database: string; client: ClickHouseClient }> {
  const admin = clickHouseClient(url)
  const database = uniqueName('sink').replaceAll('-', '_')
  await admin.command({ query: `CREATE DATABASE ${database}` })
  const client = clickHouseClient(url, database)
  t.after(async () => {
    await client.close()
    await admin.command({ query: `DROP DATABASE IF EXISTS ${database}` }).catch(() => undefined)
    await admin.close()
  })
  return { database, client }
}

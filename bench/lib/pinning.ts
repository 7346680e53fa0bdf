/**
 * The benchmarks' method on a 2-core machine: the broker JVM on one core, the client process on the other,
 * so the client's CPU time per message is measured without the broker competing for its core.
 *
 * - `benchKafka()` starts (or reuses) the benchmarks' single-node Kafka on BENCH_PORT with its JVM on
 *   BROKER_CPU: to start it, this process pins itself to BROKER_CPU first, so the `java` it spawns starts
 *   there (and sizes its GC and compiler threads for one core), then moves itself to CLIENT_CPU; a broker
 *   already running on the port is moved with `taskset -a -cp` (every thread). Everything this process
 *   spawns afterwards inherits CLIENT_CPU.
 * - `spawnClient()` starts a Node client process under `taskset -c CLIENT_CPU`.
 *
 * Env: BENCH_PIN=0 turns pinning off; BENCH_BROKER_CPU (default 0) and BENCH_CLIENT_CPU (default 1);
 * KAFKA_BROKERS uses an existing cluster instead (not pinned: its process is not ours to move).
 */
import { execFileSync, spawn, type ChildProcessByStdio } from 'node:child_process'
import { cpus } from 'node:os'
import type { Readable } from 'node:stream'
import { kafkaStatus, startKafka, stopKafka } from '../../src/testing/local-kafka.ts'
import { allowedCpus } from './cpus.ts'

/** The benchmarks' own single-node Kafka (not the dev broker on 19092, not the tests' ports). */
export const BENCH_PORT = 9192

const cpuCount = cpus().length
export const PINNING = process.env.BENCH_PIN !== '0' && cpuCount >= 2 && hasTaskset()
export const BROKER_CPU = Number(process.env.BENCH_BROKER_CPU ?? 0)
export const CLIENT_CPU = Number(process.env.BENCH_CLIENT_CPU ?? 1)

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Moves every thread of `pid` to `cpu` (new threads inherit it from the thread that creates them). */
export function pin(pid: number, cpu: number): void {
  if (!PINNING) return
  execFileSync('taskset', ['-a', '-cp', String(cpu), String(pid)], { stdio: 'ignore' })
}

export interface BenchKafka {
  bootstrap: string[]
  /** How the broker and this process are placed, for the results file. */
  placement: { pinned: boolean; brokerPids: number[]; brokerCpus: string[]; clientCpus: string }
  /** Stops the broker when this call started it. */
  release: () => Promise<void>
}

/** The broker for a benchmark: KAFKA_BROKERS, or the local one on BENCH_PORT, pinned (see above). */
export async function benchKafka(log: (line: string) => void = line => console.error(line)): Promise<BenchKafka> {
  const configured = process.env.KAFKA_BROKERS?.split(',').filter(Boolean)
  if (configured?.length) {
    log(`using KAFKA_BROKERS=${configured.join(',')}: the broker is not pinned`)
    pin(process.pid, CLIENT_CPU)
    return {
      bootstrap: configured,
      placement: { pinned: false, brokerPids: [], brokerCpus: [], clientCpus: allowedCpus() },
      release: async () => {}
    }
  }
  const running = await kafkaStatus({ port: BENCH_PORT })
  const startedHere = !running?.nodes.every(n => n.running)
  // A JVM started from here inherits this process's affinity.
  if (startedHere) pin(process.pid, BROKER_CPU)
  let cluster
  try {
    // Not running: start from scratch (no data of earlier runs, no state file of an older Kafkit).
    cluster = await startKafka({ port: BENCH_PORT, log, ...(startedHere ? { fresh: true } : {}) })
  } finally {
    pin(process.pid, CLIENT_CPU)
  }
  const brokerPids = cluster.nodes.map(n => n.pid).filter((pid): pid is number => pid !== null)
  for (const pid of brokerPids) pin(pid, BROKER_CPU)
  const placement = {
    pinned: PINNING,
    brokerPids,
    brokerCpus: brokerPids.map(pid => allowedCpus(pid)),
    clientCpus: allowedCpus()
  }
  log(
    PINNING
      ? `broker pid ${brokerPids.join(',')} on cpu ${placement.brokerCpus.join(',')}, clients on cpu ${placement.clientCpus}`
      : `not pinned (BENCH_PIN=0, fewer than 2 cores or no taskset)`
  )
  return {
    // From the nodes' ports: a state file written by an older Kafkit may name the list differently.
    bootstrap: cluster.nodes.map(n => `127.0.0.1:${n.port}`),
    placement,
    release: async () => {
      if (startedHere) await stopKafka({ port: BENCH_PORT })
    }
  }
}

/** Node with the development condition (TypeScript sources), pinned to CLIENT_CPU; stdout piped. */
export function spawnClient(args: string[], env: NodeJS.ProcessEnv): ChildProcessByStdio<null, Readable, null> {
  const flags = process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []
  // KafkaJS 2.2.4 sets negative timeouts on Node 24 (harmless, but one warning per run).
  const node = [
    process.execPath,
    '--conditions=development',
    '--disable-warning=TimeoutNegativeWarning',
    ...flags,
    ...args
  ]
  const [command, ...rest] = PINNING ? ['taskset', '-c', String(CLIENT_CPU), ...node] : node
  return spawn(command as string, rest, { env, stdio: ['ignore', 'pipe', 'inherit'] })
}

/** Runs a client (see spawnClient) and parses the last line it prints as JSON. */
export async function runClient<T>(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<T> {
  const child = spawnClient(args, env)
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  if (code !== 0) throw new Error(`${name} exited ${String(code)}`)
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as T
}

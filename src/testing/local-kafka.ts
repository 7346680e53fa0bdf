/**
 * A real Apache Kafka on this machine without Docker: combined broker+controller JVMs (KRaft, static
 * quorum) bound to 127.0.0.1. One node for development and tests, three for failover tests.
 *
 * State lives in `<cache>/clusters/port-<port>/`: `cluster.json` (cluster id, ports, PIDs) and a folder
 * per node with its properties, data and `broker.log`. Nodes are stopped by their recorded PIDs, after
 * checking the PID still runs this node's java command line, never by process name.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Admin } from '../kafka/client.ts'
import { LocalKafkaError } from '../errors/kafkit-error.ts'
import { checkJava, defaultCacheDir, ensureKafkaDistribution, WAY_OUT } from './kafka-distribution.ts'

export interface LocalKafkaOptions {
  /** 1 (default) or 3 combined broker+controller nodes. */
  nodes?: 1 | 3
  /** Client port of node 1; node n listens on `port + 10 * (n - 1)`, its controller one above. Default 9092. */
  port?: number
  /** Stop whatever runs on these ports from an earlier start and delete its data first. */
  fresh?: boolean
  /** Where Kafka's jars and cluster state are kept. Default `$KAFKIT_CACHE_DIR` or `~/.cache/kafkit`. */
  cacheDir?: string
  /** How long to wait for every node to serve metadata. Default 90 s. */
  readyTimeoutMs?: number
  /** Progress lines (download, start); silent when absent. */
  log?: (line: string) => void
}

export interface LocalKafkaNode {
  nodeId: number
  port: number
  controllerPort: number
  pid: number | null
  dir: string
  logFile: string
}

export interface LocalKafkaCluster {
  clusterId: string
  /** `127.0.0.1:<port>` of every node, ready for the `brokers` option / `KAFKA_BROKERS`. */
  brokers: string[]
  nodes: LocalKafkaNode[]
  stateDir: string
}

export interface LocalKafkaStatus {
  stateDir: string
  brokers: string[]
  nodes: (LocalKafkaNode & { running: boolean })[]
}

const DEFAULT_PORT = 9092
const JVM_OPTS = ['-Xms256m', '-Xmx1g', '-XX:+UseSerialGC', '-Djava.awt.headless=true']

function stateDirFor(options: LocalKafkaOptions): string {
  return join(options.cacheDir ?? defaultCacheDir(), 'clusters', `port-${options.port ?? DEFAULT_PORT}`)
}

function layout(stateDir: string, port: number, count: number): LocalKafkaNode[] {
  return Array.from({ length: count }, (_, i) => {
    const dir = join(stateDir, `node-${i + 1}`)
    return {
      nodeId: i + 1,
      port: port + 10 * i,
      controllerPort: port + 10 * i + 1,
      pid: null,
      dir,
      logFile: join(dir, 'broker.log')
    }
  })
}

function serverProperties(node: LocalKafkaNode, nodes: LocalKafkaNode[]): string {
  const three = nodes.length === 3
  const rf = three ? 3 : 1
  const minIsr = three ? 2 : 1
  const props: Record<string, string | number | boolean> = {
    'process.roles': 'broker,controller',
    'node.id': node.nodeId,
    'controller.quorum.voters': nodes.map(n => `${n.nodeId}@127.0.0.1:${n.controllerPort}`).join(','),
    listeners: `PLAINTEXT://127.0.0.1:${node.port},CONTROLLER://127.0.0.1:${node.controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${node.port}`,
    'inter.broker.listener.name': 'PLAINTEXT',
    'controller.listener.names': 'CONTROLLER',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    'log.dirs': join(node.dir, 'data'),
    'num.network.threads': 2,
    'num.io.threads': 2,
    'default.replication.factor': rf,
    'min.insync.replicas': minIsr,
    'offsets.topic.replication.factor': rf,
    // Fewer internal partitions than Kafka's 50: a local cluster starts groups and transactions faster.
    'offsets.topic.num.partitions': 10,
    'transaction.state.log.num.partitions': 10,
    'transaction.state.log.replication.factor': rf,
    'transaction.state.log.min.isr': minIsr,
    'share.coordinator.state.topic.replication.factor': rf,
    'share.coordinator.state.topic.min.isr': minIsr,
    'group.initial.rebalance.delay.ms': 0,
    'unclean.leader.election.enable': false,
    'log.cleaner.dedupe.buffer.size': 2097152,
    'auto.create.topics.enable': true
  }
  if (three) {
    // Fence a killed node within seconds so failover tests do not wait Kafka's production defaults.
    props['broker.heartbeat.interval.ms'] = 500
    props['broker.session.timeout.ms'] = 3000
  }
  return `${Object.entries(props)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join('\n')}\n`
}

/** A KRaft cluster id: 16 random bytes in URL-safe base64, as Kafka's `Uuid.randomUuid()` makes them. */
function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url')
    if (!id.startsWith('-')) return id
  }
}

/** True when `pid` is alive and is the JVM started for this node (guards against PID reuse). */
export function isNodeProcess(node: LocalKafkaNode): boolean {
  if (node.pid === null) return false
  try {
    process.kill(node.pid, 0)
  } catch {
    return false
  }
  const cmdline = `/proc/${node.pid}/cmdline`
  if (!existsSync(cmdline)) return true
  try {
    return readFileSync(cmdline, 'utf8').includes(join(node.dir, 'server.properties'))
  } catch {
    return false
  }
}

async function portFree(port: number): Promise<boolean> {
  return new Promise(resolve => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)))
  })
}

async function readState(stateDir: string): Promise<LocalKafkaCluster | null> {
  try {
    const state = JSON.parse(await readFile(join(stateDir, 'cluster.json'), 'utf8')) as LocalKafkaCluster
    // The broker list follows from the nodes (a state file of an earlier version has no `brokers`).
    state.brokers = state.nodes.map(node => `127.0.0.1:${node.port}`)
    return state
  } catch {
    return null
  }
}

async function writeState(cluster: LocalKafkaCluster): Promise<void> {
  await writeFile(join(cluster.stateDir, 'cluster.json'), `${JSON.stringify(cluster, null, 2)}\n`)
}

function logTail(node: LocalKafkaNode, lines = 15): string {
  try {
    return readFileSync(node.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log written)'
  }
}

async function format(node: LocalKafkaNode, clusterId: string, classPath: string): Promise<void> {
  if (existsSync(join(node.dir, 'data', 'meta.properties'))) return
  const child = spawn(
    'java',
    [
      '-Xmx256m',
      '-cp',
      classPath,
      'kafka.tools.StorageTool',
      'format',
      '-t',
      clusterId,
      '-c',
      join(node.dir, 'server.properties'),
      '-g'
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] }
  )
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  if (code !== 0) {
    throw new LocalKafkaError(
      'KAFKIT_LOCAL_KAFKA_START_FAILED',
      `formatting storage of Kafka node ${node.nodeId} in ${node.dir} failed (exit ${String(code)}): ${output.trim().slice(-500)}; retry with --fresh, ${WAY_OUT}`
    )
  }
}

function launch(node: LocalKafkaNode, classPath: string, log4jConfig: string): number {
  const out = openSync(node.logFile, 'a')
  const extra = process.env.KAFKIT_KAFKA_JVM_OPTS?.split(/\s+/).filter(Boolean) ?? []
  try {
    const child = spawn(
      'java',
      [
        ...JVM_OPTS,
        ...extra,
        `-Dlog4j2.configurationFile=${log4jConfig}`,
        `-Dkafka.logs.dir=${join(node.dir, 'logs')}`,
        '-cp',
        classPath,
        'kafka.Kafka',
        join(node.dir, 'server.properties')
      ],
      { detached: true, stdio: ['ignore', out, out] }
    )
    child.unref()
    if (child.pid === undefined) {
      throw new LocalKafkaError('KAFKIT_LOCAL_KAFKA_START_FAILED', `could not spawn java for node ${node.nodeId}`)
    }
    return child.pid
  } finally {
    closeSync(out)
  }
}

/** Waits until every node listed answers a metadata request that sees `expected` brokers. */
async function waitReady(cluster: LocalKafkaCluster, expected: LocalKafkaNode[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    for (const node of expected) {
      if (!isNodeProcess(node)) {
        throw new LocalKafkaError(
          'KAFKIT_LOCAL_KAFKA_START_FAILED',
          `Kafka node ${node.nodeId} exited during start-up; see ${node.logFile}, ${WAY_OUT}\n${logTail(node)}`
        )
      }
    }
    const admin = new Admin({
      clientId: 'kafkit-local-ready',
      bootstrapBrokers: expected.map(n => `127.0.0.1:${n.port}`),
      timeout: 2000,
      retries: 0
    })
    try {
      const metadata = await admin.metadata({ topics: [] })
      if (metadata.brokers.size >= cluster.nodes.length) return
      lastError = new LocalKafkaError(
        'KAFKIT_LOCAL_KAFKA_START_FAILED',
        `${metadata.brokers.size} of ${cluster.nodes.length} brokers registered`
      )
    } catch (error) {
      lastError = error
    } finally {
      await admin.close().catch(() => undefined)
    }
    if (Date.now() > deadline) {
      const node = expected[0]
      throw new LocalKafkaError(
        'KAFKIT_LOCAL_KAFKA_START_FAILED',
        `Kafka did not become ready within ${timeoutMs} ms (${String(lastError)}); see ${node?.logFile ?? cluster.stateDir}, ${WAY_OUT}`,
        { cause: lastError }
      )
    }
    await sleep(300)
  }
}

/**
 * Starts the local cluster, or returns it when it already runs (idempotent). Downloads Kafka on first
 * use. Resolves once every node serves metadata.
 */
export async function startKafka(options: LocalKafkaOptions = {}): Promise<LocalKafkaCluster> {
  const port = options.port ?? DEFAULT_PORT
  const count = options.nodes ?? 1
  const stateDir = stateDirFor(options)
  const timeout = options.readyTimeoutMs ?? 90_000

  let previous = await readState(stateDir)
  if (previous && options.fresh) {
    await stopKafka(options)
    previous = null
  }
  if (options.fresh) await rm(stateDir, { recursive: true, force: true })
  if (previous && previous.nodes.length !== count) {
    if (previous.nodes.some(isNodeProcess)) {
      throw new LocalKafkaError(
        'KAFKIT_LOCAL_KAFKA_PORT_TAKEN',
        `a ${previous.nodes.length}-node local Kafka already runs on port ${port}: stop it first (kafkit kafka stop --port ${port}) or use another --port, ${WAY_OUT}`
      )
    }
    await rm(stateDir, { recursive: true, force: true })
    previous = null
  }
  if (previous && previous.nodes.every(isNodeProcess)) {
    await waitReady(previous, previous.nodes, timeout)
    return previous
  }

  await checkJava()
  const dist = await ensureKafkaDistribution({
    ...(options.cacheDir === undefined ? {} : { cacheDir: options.cacheDir }),
    ...(options.log === undefined ? {} : { log: options.log })
  })
  const cluster: LocalKafkaCluster = previous ?? {
    clusterId: newClusterId(),
    brokers: layout(stateDir, port, count).map(n => `127.0.0.1:${n.port}`),
    nodes: layout(stateDir, port, count),
    stateDir
  }
  const toStart = cluster.nodes.filter(n => !isNodeProcess(n))
  for (const node of toStart) {
    for (const p of [node.port, node.controllerPort]) {
      if (!(await portFree(p))) {
        throw new LocalKafkaError(
          'KAFKIT_LOCAL_KAFKA_PORT_TAKEN',
          `port ${p} on 127.0.0.1 is taken by another process (an orphaned broker? \`ss -ltnp | grep ${p}\` shows it): free it or pass --port, ${WAY_OUT}`
        )
      }
    }
  }
  for (const node of toStart) {
    await mkdir(join(node.dir, 'logs'), { recursive: true })
    await writeFile(join(node.dir, 'server.properties'), serverProperties(node, cluster.nodes))
  }
  await Promise.all(toStart.map(node => format(node, cluster.clusterId, dist.classPath)))
  options.log?.(`Starting ${count} Kafka node(s) on ${cluster.brokers.join(',')} (logs in ${stateDir})`)
  for (const node of toStart) {
    node.pid = launch(node, dist.classPath, dist.log4jConfig)
  }
  await writeState(cluster)
  await waitReady(cluster, toStart, timeout)
  return cluster
}

/** Stops every node of the cluster on `port` by its recorded PID: SIGTERM, then SIGKILL after 30 s. */
export async function stopKafka(options: Pick<LocalKafkaOptions, 'port' | 'cacheDir'> = {}): Promise<void> {
  const cluster = await readState(stateDirFor(options))
  if (!cluster) return
  await Promise.all(cluster.nodes.map(node => stopNode(cluster, node.nodeId, 'SIGTERM')))
}

export async function kafkaStatus(
  options: Pick<LocalKafkaOptions, 'port' | 'cacheDir'> = {}
): Promise<LocalKafkaStatus | null> {
  const cluster = await readState(stateDirFor(options))
  if (!cluster) return null
  return {
    stateDir: cluster.stateDir,
    brokers: cluster.brokers,
    nodes: cluster.nodes.map(n => ({ ...n, running: isNodeProcess(n) }))
  }
}

function nodeOf(cluster: LocalKafkaCluster, nodeId: number): LocalKafkaNode {
  const node = cluster.nodes.find(n => n.nodeId === nodeId)
  if (!node) {
    throw new LocalKafkaError('KAFKIT_LOCAL_KAFKA_NOT_RUNNING', `the local cluster has no node ${nodeId}`)
  }
  return node
}

/**
 * Stops one node. `SIGKILL` simulates a crash (no controlled shutdown); `SIGTERM` shuts down cleanly
 * and escalates to SIGKILL after `graceMs`. Updates the recorded state.
 */
export async function stopNode(
  cluster: LocalKafkaCluster,
  nodeId: number,
  signal: 'SIGTERM' | 'SIGKILL' = 'SIGKILL',
  graceMs = 30_000
): Promise<void> {
  const node = nodeOf(cluster, nodeId)
  if (isNodeProcess(node) && node.pid !== null) {
    const pid = node.pid
    process.kill(pid, signal)
    const deadline = Date.now() + graceMs
    while (isNodeProcess(node)) {
      if (Date.now() > deadline) process.kill(pid, 'SIGKILL')
      await sleep(100)
    }
  }
  node.pid = null
  const saved = await readState(cluster.stateDir)
  if (saved) {
    const savedNode = saved.nodes.find(n => n.nodeId === nodeId)
    if (savedNode) savedNode.pid = null
    await writeState(saved)
  }
}

/** Freezes (SIGSTOP) or thaws (SIGCONT) a node: a broker that hangs without dying. */
export function pauseNode(cluster: LocalKafkaCluster, nodeId: number, paused: boolean): void {
  const node = nodeOf(cluster, nodeId)
  if (!isNodeProcess(node) || node.pid === null) {
    throw new LocalKafkaError('KAFKIT_LOCAL_KAFKA_NOT_RUNNING', `Kafka node ${nodeId} is not running`)
  }
  process.kill(node.pid, paused ? 'SIGSTOP' : 'SIGCONT')
}

/** Starts the stopped nodes of an existing cluster again (after `stopNode`), keeping their data. */
export async function restartNodes(cluster: LocalKafkaCluster, readyTimeoutMs = 90_000): Promise<void> {
  const options: LocalKafkaOptions = {
    nodes: cluster.nodes.length === 3 ? 3 : 1,
    port: cluster.nodes[0]?.port ?? DEFAULT_PORT,
    cacheDir: join(cluster.stateDir, '..', '..'),
    readyTimeoutMs
  }
  const restarted = await startKafka(options)
  for (const node of cluster.nodes) node.pid = nodeOf(restarted, node.nodeId).pid
}

export interface KafkaLease {
  brokers: string[]
  /** Stops the local Kafka only when this lease started it; a no-op for KAFKA_BROKERS or a running one. */
  release: () => Promise<void>
}

/**
 * The cluster a program should use: `KAFKA_BROKERS` when set, otherwise the local Kafka, started if
 * needed. Programs (the demos) call `release()` at the end and leave a broker they found running alone.
 */
export async function useKafka(options: LocalKafkaOptions = {}): Promise<KafkaLease> {
  const configured = process.env.KAFKA_BROKERS?.split(',')
    .map(s => s.trim())
    .filter(Boolean)
  if (configured && configured.length > 0) return { brokers: configured, release: async () => {} }
  const wasRunning = (await kafkaStatus(options))?.nodes.every(n => n.running) ?? false
  const cluster = await startKafka(options)
  return {
    brokers: cluster.brokers,
    release: async () => {
      if (!wasRunning) await stopKafka(options)
    }
  }
}

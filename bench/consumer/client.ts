/**
 * One consumer benchmark client run, in its own process (fresh heap and JIT, its own peak RSS):
 * `client.ts <client> <topic> <end-offsets> <group> <handler-delay-ms> [<max-seconds>]` joins `group` (new,
 * so it starts from the earliest offset), consumes every record of the pre-filled `topic` (`end-offsets`:
 * the end offset of each partition, comma-separated, as the topic was filled from offset 0), hands each
 * to the same handler (a no-op `async () => {}`, or one that awaits `setTimeout(delay)`), commits the way
 * the client normally does, stops once every record was handled (or after `max-seconds` when given: the
 * io and lag workloads), and prints one JSON line.
 *
 * The clock starts when the first record reaches the handler (group join and the first fetch excluded,
 * like ConsumerPerformance's fetch.nMsg.sec) and stops when the last distinct record's handler call
 * has resolved. Shutting down (last commit, leaving the group) is timed apart (`stopMs`).
 *
 * Clients:
 * - `raw`: @platformatic/kafka's MessagesStream, autocommit off, `for await` over the stream awaiting
 *   the handler per record, the next offset of each partition committed every COMMIT_INTERVAL_MS and on
 *   close (a careful hand-written consumer: it commits only what its handler finished);
 * - `raw-flowing`: the same stream in flowing mode (`on('data')`), handler called without waiting, the
 *   last offset per partition committed every COMMIT_INTERVAL_MS: the client library's ceiling, not a
 *   consumer one should write (it would commit records whose handler has not finished);
 * - `kafkit-partition`, `kafkit-key`, `kafkit-unordered`: Kafkit's Consumer with its defaults (commits
 *   every 1 s, concurrency limit 16) and `concurrency.mode` partition / key / unordered; `kafkit-key64`:
 *   key ordering with limit 64; `kafkit-batch`: a batch handler (partition-ordered, Kafkit's defaults)
 *   that awaits the same handler per record of the batch, like `kafkajs-batch` below;
 * - `kafkajs`: KafkaJS `eachMessage`, its default autocommit; `kafkajs-batch`: KafkaJS `eachBatch`
 *   (records of a batch handed over one by one, `resolveOffset` after each, default autocommit).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import {
  Consumer as RawConsumer,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  type CommitOptionsPartition
} from '@platformatic/kafka'
import kafkajsModule from 'kafkajs'
import { Consumer } from '../../src/consumer/consumer.ts'
import type { ConsumedMessage } from '../../src/handling/types.ts'
import { bytesSerde } from '../../src/message/serde.ts'
import { allowedCpus } from '../lib/cpus.ts'

// KafkaJS is CommonJS: its named exports are read off the default export.
const { Kafka, logLevel } = kafkajsModule

/** Fetch settings shared by raw and Kafkit (Kafkit's defaults), so `kafkit/raw` is Kafkit's own cost. */
export const FETCH = {
  minBytes: 1,
  maxBytes: 10 * 1024 * 1024,
  maxBytesPerPartition: 1024 * 1024,
  maxWaitTime: 500,
  highWaterMark: 500
}
export const COMMIT_INTERVAL_MS = 1000
export const VALUE_BYTES = 1024

export interface ClientResult {
  client: string
  /** Handler delay in ms (0: no-op). */
  delayMs: number
  messages: number
  /** Handler calls for records already handled once (redelivery). */
  duplicates: number
  seconds: number
  /** From the client's start call (group join included) to the last record handled. */
  secondsWithJoin: number
  msgsPerSec: number
  mbPerSec: number
  /** Client process CPU (user + system) per record over the timed window, microseconds. */
  cpuUsPerMsg: number
  /** Shutting down after the last record: last commit and leaving the group. */
  stopMs: number
  /** Peak resident set size of the client process (whole lifetime), MiB. */
  peakRssMb: number
  /**
   * What the memory is, sampled every 250 ms: the highest V8 heap (total and used) and the highest
   * memory outside it (`external`, of which `arrayBuffers`: Buffers such as fetch responses), MiB.
   */
  peakMemoryMb?: { heapTotal: number; heapUsed: number; external: number; arrayBuffers: number }
  /** CPUs the client process was allowed to run on (the benchmark pins it to one core). */
  cpus?: string
}

type Handle = () => Promise<void>

/**
 * Counts each record once (a bitmap per partition) and resolves `done` when all were handled, or
 * `maxSeconds` after the first record when that is set (the lag workload: a slow handler that cannot
 * finish, measured for its memory). Distinct counting keeps a redelivered record from ending a run early.
 */
class Tally {
  readonly #seen: Uint8Array[]
  readonly #total: number
  readonly #maxSeconds: number
  #distinct = 0
  /** Distinct records handled when the clock stopped. */
  handledAtEnd = 0
  duplicates = 0
  startedAt = 0
  firstAt = 0
  lastAt = 0
  cpuAtFirst: NodeJS.CpuUsage | undefined
  cpuAtLast: NodeJS.CpuUsage | undefined
  readonly done: Promise<void>
  #resolve!: () => void

  constructor(ends: number[], maxSeconds: number) {
    this.#seen = ends.map(end => new Uint8Array(end))
    this.#total = ends.reduce((a, b) => a + b, 0)
    this.#maxSeconds = maxSeconds
    this.done = new Promise(resolve => (this.#resolve = resolve))
  }

  readonly peakMemory = { heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }

  start(): void {
    this.startedAt = performance.now()
    const sample = () => {
      const usage = process.memoryUsage()
      const peak = this.peakMemory
      peak.heapTotal = Math.max(peak.heapTotal, usage.heapTotal)
      peak.heapUsed = Math.max(peak.heapUsed, usage.heapUsed)
      peak.external = Math.max(peak.external, usage.external)
      peak.arrayBuffers = Math.max(peak.arrayBuffers, usage.arrayBuffers)
    }
    setInterval(sample, 250).unref()
  }

  /** Call when a record reaches the handler. */
  begin(): void {
    if (this.firstAt === 0) {
      this.firstAt = performance.now()
      this.cpuAtFirst = process.cpuUsage()
      if (this.#maxSeconds > 0) setTimeout(() => this.#end(), this.#maxSeconds * 1000).unref()
    }
  }

  /** Call when the handler of `partition`/`offset` resolved. */
  handled(partition: number, offset: number): void {
    const seen = this.#seen[partition] as Uint8Array
    if (seen[offset] === 1) {
      this.duplicates++
      return
    }
    seen[offset] = 1
    if (++this.#distinct === this.#total) this.#end()
  }

  #end(): void {
    if (this.lastAt > 0) return
    this.lastAt = performance.now()
    this.cpuAtLast = process.cpuUsage(this.cpuAtFirst)
    this.handledAtEnd = this.#distinct
    this.#resolve()
  }

  result(client: string, delayMs: number, stopMs: number): ClientResult {
    const seconds = (this.lastAt - this.firstAt) / 1000
    const cpu = this.cpuAtLast as NodeJS.CpuUsage
    const messages = this.handledAtEnd
    return {
      client,
      delayMs,
      messages,
      duplicates: this.duplicates,
      seconds,
      secondsWithJoin: (this.lastAt - this.startedAt) / 1000,
      msgsPerSec: messages / seconds,
      mbPerSec: (messages * VALUE_BYTES) / seconds / (1024 * 1024),
      cpuUsPerMsg: (cpu.user + cpu.system) / messages,
      stopMs,
      peakRssMb: process.resourceUsage().maxRSS / 1024,
      peakMemoryMb: {
        heapTotal: Math.round(this.peakMemory.heapTotal / 2 ** 20),
        heapUsed: Math.round(this.peakMemory.heapUsed / 2 ** 20),
        external: Math.round(this.peakMemory.external / 2 ** 20),
        arrayBuffers: Math.round(this.peakMemory.arrayBuffers / 2 ** 20)
      },
      cpus: allowedCpus()
    }
  }
}

async function raw(brokers: string[], topic: string, group: string, tally: Tally, handle: Handle, flowing: boolean) {
  const consumer = new RawConsumer({
    clientId: 'bench-raw',
    bootstrapBrokers: brokers,
    groupId: group,
    autocommit: false,
    sessionTimeout: 10_000,
    rebalanceTimeout: 60_000,
    heartbeatInterval: 3000
  })
  // The next offset to commit per partition (what the handler finished), sent every COMMIT_INTERVAL_MS.
  const pending = new Map<number, CommitOptionsPartition>()
  let committing = Promise.resolve()
  const commit = () => {
    committing = committing.then(async () => {
      if (pending.size === 0) return
      const offsets = [...pending.values()]
      pending.clear()
      await consumer.commit({ offsets })
    })
    return committing
  }
  tally.start()
  const stream = await consumer.consume({
    topics: [topic],
    mode: MessagesStreamModes.COMMITTED,
    fallbackMode: MessagesStreamFallbackModes.EARLIEST,
    autocommit: false,
    ...FETCH
  })
  const timer = setInterval(() => void commit(), COMMIT_INTERVAL_MS)
  let loop: Promise<void> | undefined
  if (flowing) {
    stream.on('data', message => {
      tally.begin()
      void handle()
      pending.set(message.partition, {
        topic,
        partition: message.partition,
        offset: message.offset + 1n,
        leaderEpoch: message.leaderEpoch
      })
      tally.handled(message.partition, Number(message.offset))
    })
    await tally.done
  } else {
    // The loop ends when the stream is closed below; a failure inside it ends the run.
    loop = (async () => {
      for await (const message of stream) {
        tally.begin()
        await handle()
        pending.set(message.partition, {
          topic,
          partition: message.partition,
          offset: message.offset + 1n,
          leaderEpoch: message.leaderEpoch
        })
        tally.handled(message.partition, Number(message.offset))
      }
    })()
    await Promise.race([tally.done, loop])
  }
  const stopping = performance.now()
  clearInterval(timer)
  await commit()
  await stream.close()
  await loop?.catch(() => undefined)
  await consumer.close()
  return performance.now() - stopping
}

async function kafkit(
  brokers: string[],
  topic: string,
  group: string,
  tally: Tally,
  handle: Handle,
  mode: 'partition' | 'key' | 'unordered',
  limit: number,
  batch = false
) {
  const consumer = new Consumer<Buffer>({
    brokers,
    env: {},
    clientId: 'bench-kafkit',
    groupId: group,
    topics: [topic],
    startOffset: 'earliest',
    valueSerde: bytesSerde,
    concurrency: { mode, limit },
    ...(batch
      ? {
          batchHandler: async (messages: readonly ConsumedMessage<Buffer>[]) => {
            for (const message of messages) {
              tally.begin()
              await handle()
              tally.handled(message.partition, Number(message.offset))
            }
          }
        }
      : {
          handler: async (message: ConsumedMessage<Buffer>) => {
            tally.begin()
            await handle()
            tally.handled(message.partition, Number(message.offset))
          }
        })
  })
  tally.start()
  await consumer.start()
  await Promise.race([tally.done, consumer.done()])
  const stopping = performance.now()
  await consumer.stop()
  return performance.now() - stopping
}

async function kafkajs(brokers: string[], topic: string, group: string, tally: Tally, handle: Handle, batch: boolean) {
  const kafka = new Kafka({ clientId: 'bench-kafkajs', brokers, logLevel: logLevel.ERROR })
  const consumer = kafka.consumer({ groupId: group })
  tally.start()
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run(
    batch
      ? {
          eachBatch: async payload => {
            const { partition, messages } = payload.batch
            for (const message of messages) {
              if (!payload.isRunning()) break
              tally.begin()
              await handle()
              payload.resolveOffset(message.offset)
              tally.handled(partition, Number(message.offset))
            }
            await payload.heartbeat()
          }
        }
      : {
          eachMessage: async ({ partition, message }) => {
            tally.begin()
            await handle()
            tally.handled(partition, Number(message.offset))
          }
        }
  )
  await tally.done
  const stopping = performance.now()
  await consumer.disconnect()
  return performance.now() - stopping
}

if (import.meta.main) {
  const [client, topic, partitionEnds, group, delay, maxSeconds] = process.argv.slice(2)
  const brokers = (process.env.KAFKA_BROKERS ?? '').split(',').filter(Boolean)
  const ends = (partitionEnds ?? '').split(',').map(Number)
  const delayMs = Number(delay)
  const tally = new Tally(ends, Number(maxSeconds ?? 0))
  const handle: Handle = delayMs > 0 ? () => sleep(delayMs) : async () => {}
  const t = topic as string
  const g = group as string
  const runners: Record<string, () => Promise<number>> = {
    raw: () => raw(brokers, t, g, tally, handle, false),
    'raw-flowing': () => raw(brokers, t, g, tally, handle, true),
    'kafkit-partition': () => kafkit(brokers, t, g, tally, handle, 'partition', 16),
    'kafkit-key': () => kafkit(brokers, t, g, tally, handle, 'key', 16),
    'kafkit-key64': () => kafkit(brokers, t, g, tally, handle, 'key', 64),
    'kafkit-unordered': () => kafkit(brokers, t, g, tally, handle, 'unordered', 16),
    'kafkit-batch': () => kafkit(brokers, t, g, tally, handle, 'partition', 16, true),
    kafkajs: () => kafkajs(brokers, t, g, tally, handle, false),
    'kafkajs-batch': () => kafkajs(brokers, t, g, tally, handle, true)
  }
  const runner = runners[client as string]
  if (!runner) throw new Error(`unknown client ${String(client)}; use one of ${Object.keys(runners).join(', ')}`)
  const stopMs = await runner()
  process.stdout.write(`${JSON.stringify(tally.result(client as string, delayMs, stopMs))}\n`)
  // KafkaJS and stray timers must not keep the process (and the next run) waiting.
  process.exit(0)
}

/**
 * One run of bench/stage in a process of its own (main.ts starts it under `taskset` on the client core,
 * so every run starts with a fresh heap and JIT): `client.ts <json ClientConfig>`. Consumes every
 * record of the filled input topic with a fresh group from the earliest offset, transforms each into
 * one output (records.ts `price`: the JSON value with one field added, the same key) to a fresh output
 * topic, and prints one JSON line with the figures.
 *
 * Sides:
 * - `exactlyOnce`: a Stage with `delivery: 'exactly-once'` (one transaction per partition batch with
 *   its outputs and the input offsets; the `settled` event of an input comes after its commit);
 * - `atLeastOnce`: a Stage with `delivery: 'at-least-once'` (an input settles once its outputs are
 *   acknowledged; the consumer commits settled inputs every commitIntervalMs);
 * - `raw`: @platformatic/kafka alone, as a careful user writes it: the Consumer's stream (`for await`,
 *   autocommit off), the outputs gathered into batches of RAW_BATCH (or what came within RAW_LINGER_MS
 *   of a batch's first record), each sent with the Producer's `send` (idempotent, acks -1), up to
 *   RAW_IN_FLIGHT batches outstanding (the loop waits for the oldest beyond that), and once a batch and
 *   every one before it are acknowledged, the next offset of each of its partitions committed (one
 *   commit in flight, the later ones coalesced). At-least-once, like the `atLeastOnce` Stage.
 * - `kafkitBatch` (not a default side: evidence for docs/benchmarks.md): what an at-least-once Stage
 *   with a batch path would do, built from Kafkit's public parts: a Consumer with a batch handler
 *   (consecutive inputs of one partition) that transforms the batch, sends its outputs with one
 *   `sendBatch` of an idempotent Producer and resolves once they are acknowledged (so the consumer
 *   commits the inputs after them). The settings' `producer` goes to the Producer, the rest to the
 *   Consumer.
 * Each side's settings (stage options, the raw batching) come in the config (main.ts says which).
 *
 * Figures. Every input is counted once when it settles (its outputs acknowledged; `exactlyOnce`: its
 * transaction committed), by partition and offset. The timed window starts when `warmup` inputs have
 * settled (group joined, connections and producer ids set up, JIT warming) and ends when the last
 * input settled; records/s and the process's CPU time (process.cpuUsage, user + system, every thread)
 * per record are over that window. `fromFirst` counts instead from the first input handed to the
 * transform. After the window the inputs are committed (the Stage at least once and kafkitBatch:
 * `consumer.commit()`, as stop() would; raw: its commit chain; exactly once: already in the
 * transactions), timed as `commitTailMs`.
 */
import {
  Consumer as RawConsumer,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  Producer as RawProducer,
  type CommitOptionsPartition,
  type Message,
  type MessageToProduce
} from '@platformatic/kafka'
import { Consumer } from '../../src/consumer/consumer.ts'
import { Producer } from '../../src/producer/producer.ts'
import { Stage, type StageInit } from '../../src/stage/stage.ts'
import { allowedCpus } from '../lib/cpus.ts'
import { monotonicMs, price, type OrderLine, type PricedOrderLine } from './records.ts'

export type Side = 'exactlyOnce' | 'atLeastOnce' | 'raw' | 'kafkitBatch'

/** Options a user may give a Stage, as JSON (no functions). */
export type StageSettings = Omit<
  Partial<StageInit<OrderLine, PricedOrderLine>>,
  'transform' | 'outputSerde' | 'brokers' | 'groupId' | 'topics' | 'outputTopic' | 'delivery' | 'logger' | 'env'
>

export interface RawSettings {
  /** Outputs per `send`. */
  batch: number
  /** How long a batch that is not full waits for more inputs. */
  lingerMs: number
  /** Sends outstanding at most. */
  inFlight: number
}

export interface ClientConfig {
  side: Side
  brokers: string[]
  input: string
  output: string
  group: string
  /** End offset of each input partition (the topic was filled from offset 0). */
  ends: number[]
  warmup: number
  stage: StageSettings
  raw: RawSettings
}

export interface ClientResult {
  side: Side
  /** Inputs in the timed window. */
  records: number
  seconds: number
  recordsPerSec: number
  cpuUsPerRecord: number
  /** From the first input handed to the transform to the last settled, every input. */
  fromFirstSeconds: number
  fromFirstRecordsPerSec: number
  fromFirstCpuUsPerRecord: number
  /** From the start call (group join included) to the first input handed to the transform. */
  startMs: number
  /** After the window: until every input is committed. */
  commitTailMs: number
  stopMs: number
  /** Inputs settled more than once (redelivered). */
  duplicates: number
  /** Transactions committed (exactlyOnce). */
  transactions: number
  /**
   * Produce requests of the outputs over the whole run (raw: `send` calls; the Stage at least once and
   * kafkitBatch: its Producer's acknowledged batches; exactly once: not counted, its producers are the
   * stage's own), and the Producer's send-to-acknowledgement latency.
   */
  produceRequests?: number
  producerLatencyMs?: { p50: number; p99: number }
  /** exactlyOnce: where its transactions' time went, over the window (see instrumentTransactions). */
  transactionMs?: TransactionBreakdown
  peakRssMb: number
  cpus: string
  /** The window on the monotonic clock (ms), to cut a --cpu-prof profile to it. */
  window: [number, number]
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} }

/** Counts every input once when it settles, and takes the times and CPU of the window. */
class Tally {
  readonly #seen: Uint8Array[]
  readonly #total: number
  readonly #warmup: number
  #distinct = 0
  duplicates = 0
  startedAt = monotonicMs()
  firstAt = 0
  firstCpu: NodeJS.CpuUsage | undefined
  windowAt = 0
  windowCpu: NodeJS.CpuUsage | undefined
  windowRecords = 0
  endAt = 0
  endCpu: NodeJS.CpuUsage | undefined
  readonly done: Promise<void>
  #resolve!: () => void

  constructor(ends: number[], warmup: number) {
    this.#seen = ends.map(end => new Uint8Array(end))
    this.#total = ends.reduce((a, b) => a + b, 0)
    this.#warmup = Math.min(warmup, this.#total - 1)
    this.done = new Promise(resolve => (this.#resolve = resolve))
  }

  get total(): number {
    return this.#total
  }

  /** An input reached the transform. */
  consumed(): void {
    if (this.firstAt !== 0) return
    this.firstAt = monotonicMs()
    this.firstCpu = process.cpuUsage()
  }

  settled(partition: number, offset: number): void {
    const seen = this.#seen[partition] as Uint8Array
    if (seen[offset] === 1) {
      this.duplicates++
      return
    }
    seen[offset] = 1
    this.#distinct++
    if (this.windowAt === 0 && this.#distinct >= this.#warmup) {
      this.windowAt = monotonicMs()
      this.windowCpu = process.cpuUsage()
      this.windowRecords = this.#distinct
    }
    if (this.#distinct === this.#total) {
      this.endAt = monotonicMs()
      this.endCpu = process.cpuUsage()
      this.#resolve()
    }
  }

  result(
    side: Side,
    extra: Pick<
      ClientResult,
      'commitTailMs' | 'stopMs' | 'transactions' | 'produceRequests' | 'producerLatencyMs' | 'transactionMs'
    >
  ): ClientResult {
    const end = this.endCpu as NodeJS.CpuUsage
    const usOf = (from: NodeJS.CpuUsage | undefined) =>
      from ? end.user - from.user + (end.system - from.system) : Number.NaN
    const records = this.#total - this.windowRecords
    const seconds = (this.endAt - this.windowAt) / 1000
    const fromFirstSeconds = (this.endAt - this.firstAt) / 1000
    return {
      side,
      records,
      seconds,
      recordsPerSec: records / seconds,
      cpuUsPerRecord: usOf(this.windowCpu) / records,
      fromFirstSeconds,
      fromFirstRecordsPerSec: this.#total / fromFirstSeconds,
      fromFirstCpuUsPerRecord: usOf(this.firstCpu) / this.#total,
      startMs: this.firstAt - this.startedAt,
      ...extra,
      duplicates: this.duplicates,
      peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
      cpus: allowedCpus(),
      window: [this.windowAt, this.endAt]
    }
  }
}

export interface TransactionBreakdown {
  /** Transactions begun and committed within the window. */
  count: number
  /**
   * The rest are sums over them in ms (the partitions run theirs at the same time). `produce`:
   * beginTransaction() to sendOffsets(), transforming the batch, sending its outputs, their acknowledgement.
   */
  produce: number
  /** sendOffsets() (AddOffsetsToTxn, TxnOffsetCommit). */
  offsets: number
  /** commit() (EndTxn). */
  commit: number
  /** From the partition's previous commit to this begin: settling, dispatch, waiting for the batch to fill. */
  between: number
}

/**
 * Times the exactly-once Stage's transactions with wrappers on the Producer's beginTransaction and on
 * each transaction's sendOffsets and commit (a few calls per transaction of up to 500 inputs).
 */
function instrumentTransactions(tally: Tally): TransactionBreakdown {
  const spent: TransactionBreakdown = { count: 0, produce: 0, offsets: 0, commit: 0, between: 0 }
  const lastEnd = new WeakMap<Producer<unknown>, number>()
  // Called with the producer as `this` below.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const begin = Producer.prototype.beginTransaction
  Producer.prototype.beginTransaction = async function <V>(this: Producer<V>) {
    const began = monotonicMs()
    const last = lastEnd.get(this)
    const tx = await begin.call(this)
    let offsetsAt = began
    let offsetsMs = 0
    const sendOffsets = tx.sendOffsets.bind(tx)
    tx.sendOffsets = async (...args) => {
      offsetsAt = monotonicMs()
      await sendOffsets(...args)
      offsetsMs = monotonicMs() - offsetsAt
    }
    const commit = tx.commit.bind(tx)
    tx.commit = async () => {
      const at = monotonicMs()
      await commit()
      const end = monotonicMs()
      lastEnd.set(this, end)
      if (tally.windowAt === 0 || began < tally.windowAt || tally.endAt !== 0) return
      spent.count++
      spent.produce += offsetsAt - began
      spent.offsets += offsetsMs
      spent.commit += end - at
      if (last !== undefined) spent.between += began - last
    }
    return tx
  } as typeof begin
  return spent
}

/** Fails the run when it takes longer than this (a stuck side must not hang the benchmark). */
const MAX_SECONDS = 180

async function stageRun(config: ClientConfig, tally: Tally): Promise<ClientResult> {
  const transactionMs = config.side === 'exactlyOnce' ? instrumentTransactions(tally) : undefined
  const stage = new Stage<OrderLine, PricedOrderLine>({
    ...config.stage,
    brokers: config.brokers,
    groupId: config.group,
    topics: [config.input],
    startOffset: 'earliest',
    outputTopic: config.output,
    delivery: config.side === 'exactlyOnce' ? 'exactly-once' : 'at-least-once',
    logger: quiet,
    env: {},
    transform: message => {
      tally.consumed()
      return { key: message.key, value: price(message.value) }
    }
  })
  stage.on('settled', ({ partition, offset }) => tally.settled(partition, Number(offset)))
  await stage.start()
  await tally.done
  const settledAt = monotonicMs()
  if (config.side === 'atLeastOnce') await stage.consumer.commit()
  const commitTailMs = monotonicMs() - settledAt
  const stopping = monotonicMs()
  const transactions = stage.transactions
  const sent = stage.producer.metrics()
  await stage.stop()
  return tally.result(config.side, {
    commitTailMs,
    stopMs: monotonicMs() - stopping,
    transactions,
    ...(transactionMs ? { transactionMs } : {}),
    ...(config.side === 'atLeastOnce'
      ? { produceRequests: sent.batchesSent, producerLatencyMs: { p50: sent.latencyMs.p50, p99: sent.latencyMs.p99 } }
      : {})
  })
}

/** See the header: a Consumer with a batch handler, one `sendBatch` per batch. */
async function kafkitBatchRun(config: ClientConfig, tally: Tally): Promise<ClientResult> {
  const { producer: producerSettings, ...consumerSettings } = config.stage
  const producer = new Producer<PricedOrderLine>({
    ...producerSettings,
    brokers: config.brokers,
    topic: config.output,
    idempotent: true,
    acks: -1,
    env: {}
  })
  const consumer = new Consumer<OrderLine>({
    ...consumerSettings,
    brokers: config.brokers,
    groupId: config.group,
    topics: [config.input],
    startOffset: 'earliest',
    logger: quiet,
    env: {},
    producer,
    batchHandler: async (messages, context) => {
      const outputs = messages.map(message => {
        tally.consumed()
        return { key: message.key, value: price(message.value) }
      })
      const outcomes = await producer.sendBatch(outputs, { signal: context.signal })
      for (const outcome of outcomes) if (!outcome.ok) throw outcome.error
    }
  })
  consumer.on('settled', ({ partition, offset }) => tally.settled(partition, Number(offset)))
  await consumer.start()
  await tally.done
  const settledAt = monotonicMs()
  await consumer.commit()
  const commitTailMs = monotonicMs() - settledAt
  const stopping = monotonicMs()
  const sent = producer.metrics()
  await consumer.stop()
  await producer.close()
  return tally.result('kafkitBatch', {
    commitTailMs,
    stopMs: monotonicMs() - stopping,
    transactions: 0,
    produceRequests: sent.batchesSent,
    producerLatencyMs: { p50: sent.latencyMs.p50, p99: sent.latencyMs.p99 }
  })
}

/** A batch of outputs sent together, and the next offset of each partition it covers. */
interface Sent {
  acked: boolean
  /** Inputs of the batch, as partition and offset pairs (for the tally). */
  inputs: number[]
  next: Map<number, CommitOptionsPartition>
}

async function rawRun(config: ClientConfig, tally: Tally): Promise<ClientResult> {
  const { batch: batchSize, lingerMs, inFlight: maxInFlight } = config.raw
  const clientOptions = { clientId: 'bench-stage-raw', bootstrapBrokers: config.brokers }
  const consumer = new RawConsumer({
    ...clientOptions,
    groupId: config.group,
    autocommit: false,
    sessionTimeout: 10_000,
    rebalanceTimeout: 60_000,
    heartbeatInterval: 3000
  })
  const producer = new RawProducer({ ...clientOptions, idempotent: true, acks: -1 })
  // Sent batches in order; the acknowledged prefix is committed.
  const sent: Sent[] = []
  const pending = new Map<number, CommitOptionsPartition>()
  let committing: Promise<void> | undefined
  const commit = async (): Promise<void> => {
    while (pending.size > 0) {
      const offsets = [...pending.values()]
      pending.clear()
      await consumer.commit({ offsets })
    }
  }
  const commitSoon = () => {
    committing ??= commit()
      .catch(fail)
      .finally(() => (committing = undefined))
  }
  const onAcked = () => {
    while (sent[0]?.acked) {
      const done = sent.shift() as Sent
      for (const [partition, next] of done.next) pending.set(partition, next)
      for (let i = 0; i < done.inputs.length; i += 2)
        tally.settled(done.inputs[i] as number, done.inputs[i + 1] as number)
    }
    commitSoon()
  }

  let messages: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[] = []
  let current: Sent = { acked: false, inputs: [], next: new Map() }
  let timer: NodeJS.Timeout | undefined
  const inFlight = new Set<Promise<void>>()
  // A failed send or commit ends the run (the loop may be waiting for inputs that never come).
  const failed = Promise.withResolvers<never>()
  const fail = (error: unknown) => failed.reject(error instanceof Error ? error : new Error(String(error)))
  let sends = 0
  const flush = () => {
    clearTimeout(timer)
    timer = undefined
    if (messages.length === 0) return
    const batch = current
    sends++
    const send = producer.send({ messages }).then(() => {
      batch.acked = true
      onAcked()
    }, fail)
    sent.push(batch)
    inFlight.add(send)
    void send.finally(() => inFlight.delete(send))
    messages = []
    current = { acked: false, inputs: [], next: new Map() }
  }

  const stream = await consumer.consume({
    topics: [config.input],
    mode: MessagesStreamModes.COMMITTED,
    fallbackMode: MessagesStreamFallbackModes.EARLIEST,
    autocommit: false,
    // Kafkit's consumer defaults (fetch sizes, wait, records read ahead), so both read alike.
    minBytes: 1,
    maxBytes: 10 * 1024 * 1024,
    maxBytesPerPartition: 1024 * 1024,
    maxWaitTime: 500,
    highWaterMark: 500
  })
  const loop = (async () => {
    for await (const message of stream as AsyncIterable<Message<Buffer, Buffer, Buffer, Buffer>>) {
      tally.consumed()
      const line = JSON.parse(message.value.toString('utf8')) as OrderLine
      messages.push({ topic: config.output, key: message.key, value: Buffer.from(JSON.stringify(price(line))) })
      current.inputs.push(message.partition, Number(message.offset))
      current.next.set(message.partition, {
        topic: message.topic,
        partition: message.partition,
        offset: message.offset + 1n,
        leaderEpoch: message.leaderEpoch
      })
      if (messages.length >= batchSize) flush()
      else timer ??= setTimeout(flush, lingerMs)
      // Backpressure: no more than maxInFlight sends outstanding.
      while (inFlight.size >= maxInFlight) await Promise.race(inFlight)
    }
  })()
  await Promise.race([tally.done, loop, failed.promise])
  const settledAt = monotonicMs()
  await committing
  await commit()
  const commitTailMs = monotonicMs() - settledAt
  const stopping = monotonicMs()
  await stream.close()
  await loop.catch(() => undefined)
  await Promise.all([consumer.close(), producer.close()])
  return tally.result('raw', {
    commitTailMs,
    stopMs: monotonicMs() - stopping,
    transactions: 0,
    produceRequests: sends
  })
}

if (import.meta.main) {
  const config = JSON.parse(process.argv[2] ?? '{}') as ClientConfig
  const tally = new Tally(config.ends, config.warmup)
  const timeout = setTimeout(() => {
    console.error(`${config.side}: not done after ${MAX_SECONDS} s`)
    process.exit(1)
  }, MAX_SECONDS * 1000)
  const run = { raw: rawRun, kafkitBatch: kafkitBatchRun, exactlyOnce: stageRun, atLeastOnce: stageRun }[config.side]
  const result = await run(config, tally)
  clearTimeout(timeout)
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0))
}

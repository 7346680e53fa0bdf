/**
 * One benchmark client run, in its own process so each starts with a fresh heap and JIT:
 * `client.ts <client> <compression> <messages> <topic> <payload-file>` produces `messages` records
 * of the payload (1 KiB) to `topic` with acks=all and idempotence, then prints one JSON line with
 * the figures. The clock starts after one warm-up message (connection, metadata and producer id are
 * set up) and stops when the last message is acknowledged.
 *
 * Clients:
 * - `raw`: @platformatic/kafka's Producer, arrays of BATCH messages per `send`, IN_FLIGHT at once;
 * - `kafkit-batch`: Kafkit's `sendBatch` with the same arrays and concurrency (like for like);
 * - `kafkit-send`: Kafkit's per-message `send()`, one promise each, paced by `await producer.ready`,
 *   standard headers off, same request shape;
 * - `kafkit-defaults`: the path users write first: per-message
 *   `send(message(value).eventType(...).source(...))`, paced by `await producer.ready`, with every
 *   default of the Producer (request shape, standard headers: the builder stamps `event-id` and
 *   `timestamp`); only the serde (bytes) and the compression are set;
 * - `kafkit-stamped`: like `kafkit-defaults` with a plain `{ value }` per message (the Producer stamps
 *   `event-id` and `timestamp`): what the builder and its two constant headers add;
 * - `kafkajs`: KafkaJS's `send` with the same arrays and concurrency.
 *
 * The process's CPU time (process.cpuUsage(), user + system, every thread) over the timed window,
 * divided by the messages, is the benchmark's primary figure; `cpus` is the CPU list the process was
 * allowed to run on (the benchmark pins clients to one core, the broker to the other).
 */
import { readFile } from 'node:fs/promises'
import { Producer as RawProducer } from '@platformatic/kafka'
import { lz4Compress, lz4Decompress } from '@platformatic/wasm-utils'
import kafkajsModule from 'kafkajs'
import { message } from '../../src/message/builder.ts'
import { bytesSerde } from '../../src/message/serde.ts'
import { Producer } from '../../src/producer/producer.ts'
import { allowedCpus } from '../lib/cpus.ts'

// KafkaJS is CommonJS: its named exports are read off the default export.
const { CompressionCodecs, CompressionTypes, Kafka, logLevel } = kafkajsModule

export const BATCH = 500
export const IN_FLIGHT = 5

export interface ClientResult {
  client: string
  compression: 'none' | 'lz4'
  messages: number
  failed: number
  seconds: number
  msgsPerSec: number
  mbPerSec: number
  /** Client process CPU (user + system) per message, microseconds. */
  cpuUsPerMsg: number
  /** CPUs the client process was allowed to run on. */
  cpus?: string
}

type Compression = 'none' | 'lz4'

/** Runs `send(i, n)` for chunks of BATCH with at most IN_FLIGHT outstanding; returns failures. */
async function chunked(total: number, send: (n: number) => Promise<number>): Promise<number> {
  let failed = 0
  const inFlight: Promise<number>[] = []
  for (let sent = 0; sent < total; sent += BATCH) {
    inFlight.push(send(Math.min(BATCH, total - sent)))
    if (inFlight.length >= IN_FLIGHT) failed += await (inFlight.shift() as Promise<number>)
  }
  for (const n of await Promise.all(inFlight)) failed += n
  return failed
}

async function measure(
  client: string,
  compression: Compression,
  total: number,
  run: () => Promise<number>
): Promise<ClientResult> {
  const cpu = process.cpuUsage()
  const started = performance.now()
  const failed = await run()
  const seconds = (performance.now() - started) / 1000
  const used = process.cpuUsage(cpu)
  return {
    client,
    compression,
    messages: total,
    failed,
    seconds,
    msgsPerSec: total / seconds,
    mbPerSec: (total * 1024) / seconds / (1024 * 1024),
    cpuUsPerMsg: (used.user + used.system) / total,
    cpus: allowedCpus()
  }
}

async function raw(brokers: string[], topic: string, compression: Compression, total: number, value: Buffer) {
  const producer = new RawProducer({ clientId: 'bench-raw', bootstrapBrokers: brokers, idempotent: true, compression })
  await producer.send({ messages: [{ topic, value }] })
  const result = await measure('raw', compression, total, () =>
    chunked(total, async n => {
      await producer.send({ messages: Array.from({ length: n }, () => ({ topic, value })) })
      return 0
    })
  )
  await producer.close()
  return result
}

/** Kafkit set up like raw: same request shape, no standard headers (the same bytes on the wire). */
function kafkit(brokers: string[], topic: string, compression: Compression) {
  return new Producer<Buffer>({
    brokers,
    topic,
    env: {},
    clientId: 'bench-kafkit',
    valueSerde: bytesSerde,
    compression,
    // Same request shape as the others: BATCH messages per request, IN_FLIGHT requests.
    batchSize: BATCH,
    maxInFlight: IN_FLIGHT,
    stampHeaders: false
  })
}

async function kafkitBatch(brokers: string[], topic: string, compression: Compression, total: number, value: Buffer) {
  const producer = kafkit(brokers, topic, compression)
  await producer.send({ value })
  const result = await measure('kafkit-batch', compression, total, () =>
    chunked(total, async n => {
      const outcomes = await producer.sendBatch(Array.from({ length: n }, () => ({ value })))
      let failed = 0
      for (const outcome of outcomes) if (!outcome.ok) failed++
      return failed
    })
  )
  await producer.close()
  return result
}

async function kafkitSend(brokers: string[], topic: string, compression: Compression, total: number, value: Buffer) {
  const producer = kafkit(brokers, topic, compression)
  await producer.send({ value })
  const result = await measure('kafkit-send', compression, total, async () => {
    let failed = 0
    const onError = () => failed++
    for (let i = 0; i < total; i++) {
      await producer.ready
      producer.send({ value }).catch(onError)
    }
    await producer.flush()
    return failed
  })
  await producer.close()
  return result
}

/**
 * What a user writes first: the builder per message, every default of the Producer (`builder: true`);
 * or a plain `{ value }` per message with the same defaults, so the Producer stamps `event-id` and
 * `timestamp` itself (`kafkit-stamped`, where the builder's share of the cost shows).
 */
async function kafkitDefaults(
  brokers: string[],
  topic: string,
  compression: Compression,
  total: number,
  value: Buffer,
  builder: boolean
) {
  const producer = new Producer<Buffer>({
    brokers,
    topic,
    env: {},
    clientId: 'bench-kafkit-defaults',
    valueSerde: bytesSerde,
    compression
  })
  await producer.send(message(value).eventType('bench.sent').source('bench-producer'))
  const result = await measure(builder ? 'kafkit-defaults' : 'kafkit-stamped', compression, total, async () => {
    let failed = 0
    const onError = () => failed++
    for (let i = 0; i < total; i++) {
      await producer.ready
      const sent = builder
        ? producer.send(message(value).eventType('bench.sent').source('bench-producer'))
        : producer.send({ value })
      sent.catch(onError)
    }
    await producer.flush()
    return failed
  })
  await producer.close()
  return result
}

async function kafkajs(brokers: string[], topic: string, compression: Compression, total: number, value: Buffer) {
  // KafkaJS ships no LZ4 codec; plug in the same WebAssembly LZ4 frame codec @platformatic/kafka uses.
  CompressionCodecs[CompressionTypes.LZ4] = () => ({
    compress: (encoder: { buffer: Buffer }) => Promise.resolve(lz4Compress(encoder.buffer)),
    decompress: (buffer: Buffer) => Promise.resolve(lz4Decompress(buffer))
  })
  const kafka = new Kafka({ clientId: 'bench-kafkajs', brokers, logLevel: logLevel.ERROR })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: IN_FLIGHT })
  await producer.connect()
  const type = compression === 'lz4' ? CompressionTypes.LZ4 : CompressionTypes.None
  await producer.send({ topic, acks: -1, compression: type, messages: [{ value }] })
  const result = await measure('kafkajs', compression, total, () =>
    chunked(total, async n => {
      await producer.send({
        topic,
        acks: -1,
        compression: type,
        messages: Array.from({ length: n }, () => ({ value }))
      })
      return 0
    })
  )
  await producer.disconnect()
  return result
}

if (import.meta.main) {
  const [client, compression, messages, topic, payloadFile] = process.argv.slice(2)
  const brokers = (process.env.KAFKA_BROKERS ?? '').split(',').filter(Boolean)
  const total = Number(messages)
  const value = (await readFile(payloadFile as string)).subarray(0, 1024)
  const codec = compression as Compression
  const t = topic as string
  const runners: Record<string, () => Promise<ClientResult>> = {
    raw: () => raw(brokers, t, codec, total, value),
    'kafkit-batch': () => kafkitBatch(brokers, t, codec, total, value),
    'kafkit-send': () => kafkitSend(brokers, t, codec, total, value),
    'kafkit-defaults': () => kafkitDefaults(brokers, t, codec, total, value, true),
    'kafkit-stamped': () => kafkitDefaults(brokers, t, codec, total, value, false),
    kafkajs: () => kafkajs(brokers, t, codec, total, value)
  }
  const runner = runners[client as string]
  if (!runner) throw new Error(`unknown client ${String(client)}; use one of ${Object.keys(runners).join(', ')}`)
  process.stdout.write(`${JSON.stringify(await runner())}\n`)
}

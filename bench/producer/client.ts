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
 * - `kafkit-send`: Kafkit's per-message `send()`, one promise each, paced by `await producer.ready`;
 * - `kafkit-defaults`: like `kafkit-send` with every default on (standard headers stamped);
 * - `kafkajs`: KafkaJS's `send` with the same arrays and concurrency.
 */
import { readFile } from 'node:fs/promises'
import { Producer as RawProducer } from '@platformatic/kafka'
import { lz4Compress, lz4Decompress } from '@platformatic/wasm-utils'
import kafkajsModule from 'kafkajs'
import { bytesSerde } from '../../src/message/serde.ts'
import { Producer } from '../../src/producer/producer.ts'

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
    cpuUsPerMsg: (used.user + used.system) / total
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

function kafkit(brokers: string[], topic: string, compression: Compression, defaults: boolean) {
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
    ...(defaults ? {} : { stampHeaders: false })
  })
}

async function kafkitBatch(brokers: string[], topic: string, compression: Compression, total: number, value: Buffer) {
  const producer = kafkit(brokers, topic, compression, false)
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

async function kafkitSend(
  brokers: string[],
  topic: string,
  compression: Compression,
  total: number,
  value: Buffer,
  defaults: boolean
) {
  const producer = kafkit(brokers, topic, compression, defaults)
  await producer.send({ value })
  const name = defaults ? 'kafkit-defaults' : 'kafkit-send'
  const result = await measure(name, compression, total, async () => {
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
    'kafkit-send': () => kafkitSend(brokers, t, codec, total, value, false),
    'kafkit-defaults': () => kafkitSend(brokers, t, codec, total, value, true),
    kafkajs: () => kafkajs(brokers, t, codec, total, value)
  }
  const runner = runners[client as string]
  if (!runner) throw new Error(`unknown client ${String(client)}; use one of ${Object.keys(runners).join(', ')}`)
  process.stdout.write(`${JSON.stringify(await runner())}\n`)
}

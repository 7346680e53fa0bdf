/**
 * Kafkit's own cost per message, without a broker: the client's `send` is replaced by an
 * acknowledgement on the next turn of the event loop, so what is left is Kafkit (prepare, buffer,
 * batch, settle, promises) and the garbage it makes. A development tool for the hot path, not a
 * benchmark of Kafka: `node --conditions=development bench/producer/hot-path.ts [messages]`.
 * Env: MODE=send (per-message send(), default), MODE=batch (sendBatch of 500) or MODE=builder
 * (per-message `send(message(value).eventType(...).source(...))`, the benchmark's `kafkit-defaults`),
 * STAMP=1 (stamp the standard headers; MODE=builder always does), BUF (bufferMemory), ACK_MS (acknowledge after this many ms instead of the next turn: records then live as long as a
 * real request's round trip, which decides how many survive a scavenge).
 */
import { message } from '../../src/message/builder.ts'
import { bytesSerde } from '../../src/message/serde.ts'
import { Producer } from '../../src/producer/producer.ts'

const total = Number(process.argv[2] ?? 1_000_000)
const ACK_MS = Number(process.env.ACK_MS ?? 0)
const MODE = process.env.MODE ?? 'send'
const producer = new Producer<Buffer>({
  brokers: ['127.0.0.1:1'],
  topic: 't',
  env: {},
  valueSerde: bytesSerde,
  batchSize: 500,
  stampHeaders: process.env.STAMP === '1' || MODE === 'builder',
  ...(process.env.BUF === undefined ? {} : { bufferMemory: Number(process.env.BUF) })
})
let base = 0n
const client = producer.client as unknown as Record<string, unknown>
client.send = (options: { messages: unknown[] }) => {
  const offset = base
  base += BigInt(options.messages.length)
  const ack = () => ({ offsets: [{ topic: 't', partition: 0, offset }] })
  return new Promise(resolve => {
    if (ACK_MS > 0) setTimeout(() => resolve(ack()), ACK_MS)
    else setImmediate(() => resolve(ack()))
  })
}
client.metadata = () =>
  Promise.resolve({ brokers: new Map([[1, {}]]), topics: new Map([['t', { partitionsCount: 1 }]]) })
client.close = () => Promise.resolve()

const value = Buffer.alloc(1024, 'x')
await producer.send({ value })
let failed = 0
const onError = () => failed++
for (let round = 0; round < 3; round++) {
  const cpu = process.cpuUsage()
  const started = performance.now()
  if (MODE === 'batch') {
    const inFlight: Promise<unknown>[] = []
    for (let i = 0; i < total; i += 500) {
      inFlight.push(producer.sendBatch(Array.from({ length: 500 }, () => ({ value }))))
      if (inFlight.length >= 5) await inFlight.shift()
    }
    await Promise.all(inFlight)
  } else if (MODE === 'builder') {
    for (let i = 0; i < total; i++) {
      await producer.ready
      producer.send(message(value).eventType('bench.sent').source('bench-producer')).catch(onError)
    }
  } else {
    for (let i = 0; i < total; i++) {
      await producer.ready
      producer.send({ value }).catch(onError)
    }
  }
  await producer.flush()
  const used = process.cpuUsage(cpu)
  const wall = ((performance.now() - started) * 1e6) / total
  console.log(
    `round ${round}: ${(((used.user + used.system) / total) * 1000).toFixed(0)} ns cpu, ${wall.toFixed(0)} ns wall per message (failed ${failed})`
  )
}
await producer.close()

/**
 * Kafkit's own cost per record, without a broker: the client's group consumer is replaced by one that
 * owns 6 partitions at once and streams pre-built records (1 KiB values, keys over 1,000 distinct keys,
 * no headers) as fast as the consumer reads them, and commits instantly. What is left is Kafkit (decode,
 * offset tracking, dispatch, the handler call's layers, settling, commits) and the garbage it makes, with
 * a no-op handler. A development tool for the hot path, not a benchmark of Kafka (bench/consumer/main.ts
 * is that): `node --conditions=development bench/consumer/hot-path.ts [records-per-round]`.
 * Env: MODE=partition (default), key, unordered or batch (a batch handler awaiting the no-op per record,
 * partition-ordered); LIMIT (concurrency limit, 16); ROUNDS (3).
 */
import { Readable } from 'node:stream'
import { Consumer as ClientConsumer } from '@platformatic/kafka'
import { Consumer } from '../../src/consumer/consumer.ts'
import { bytesSerde } from '../../src/message/serde.ts'

const perRound = Number(process.argv[2] ?? 1_000_000)
const rounds = Number(process.env.ROUNDS ?? 3)
const chosen = (process.env.MODE ?? 'partition') as 'partition' | 'key' | 'unordered' | 'batch'
const mode = chosen === 'batch' ? 'partition' : chosen
const limit = Number(process.env.LIMIT ?? 16)
const PARTITIONS = 6
const topic = 'hot-path'
const value = Buffer.alloc(1024, 'x')
const keys = Array.from({ length: 1000 }, (_, i) => Buffer.from(`key-${i}`))

// The client's surface Kafkit's Consumer uses, answered in memory.
const client = ClientConsumer.prototype as unknown as Record<string, unknown>
client.consume = function (this: Record<string, unknown>, _options: unknown, callback: (e: null, s: Readable) => void) {
  this.assignments = [{ topic, partitions: Array.from({ length: PARTITIONS }, (_, p) => p) }]
  this.generationId = 1
  const next = new Array<bigint>(PARTITIONS).fill(0n)
  let produced = 0
  const stream = new Readable({
    objectMode: true,
    highWaterMark: 500,
    read() {
      // One fetch's worth per call, a partition at a time, like a fetch response.
      const partition = Math.floor(produced / 500) % PARTITIONS
      for (let i = 0; i < 500; i++) {
        const offset = next[partition] as bigint
        next[partition] = offset + 1n
        this.push({
          topic,
          partition,
          offset,
          leaderEpoch: 0,
          timestamp: 1_764_000_000_000n,
          key: keys[produced % keys.length],
          value,
          headers: new Map(),
          headerEntries: [],
          metadata: {}
        })
        produced++
      }
    }
  })
  Object.assign(stream, { close: () => Promise.resolve(stream.destroy()) })
  process.nextTick(() => callback(null, stream))
}
client.commit = () => Promise.resolve()
client.leaveGroup = (_force: boolean, callback: () => void) => callback()
client.close = () => Promise.resolve()

const noop = async (): Promise<void> => {}
let handled = 0
let target = 0
let reached: () => void = () => undefined
const consumer = new Consumer<Buffer>({
  brokers: ['127.0.0.1:1'],
  env: {},
  groupId: 'hot-path',
  topics: [topic],
  ensureTopics: false,
  valueSerde: bytesSerde,
  concurrency: { mode, limit },
  handleSignals: false,
  // The benchmark's handlers: await a no-op async function per record (bench/consumer/client.ts).
  ...(chosen === 'batch'
    ? {
        batchHandler: async (messages: readonly unknown[]) => {
          for (let i = 0; i < messages.length; i++) {
            await noop()
            if (++handled === target) reached()
          }
        }
      }
    : {
        handler: async () => {
          await noop()
          if (++handled === target) reached()
        }
      })
})
await consumer.start()
for (let round = 0; round < rounds; round++) {
  target = handled + perRound
  const done = new Promise<void>(resolve => (reached = resolve))
  const cpu = process.cpuUsage()
  const started = performance.now()
  await done
  const used = process.cpuUsage(cpu)
  const wall = ((performance.now() - started) * 1e6) / perRound
  console.log(
    `round ${round}: ${(((used.user + used.system) / perRound) * 1000).toFixed(0)} ns cpu, ${wall.toFixed(0)} ns wall per record`
  )
}
await consumer.stop()

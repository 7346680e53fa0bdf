/**
 * The README's main job, for now: a produce-and-consume round trip on a real Kafka. Uses KAFKA_BROKERS
 * when set, otherwise starts the embedded local Kafka (and stops it afterwards if this run started it).
 * Prints progress while it runs and a closing reconciliation: every message produced was consumed once.
 *
 *   npm start -- --count 50000
 */
import { parseArgs } from 'node:util'
import {
  Consumer,
  MessagesStreamModes,
  Producer,
  ProduceAcks,
  stringDeserializers,
  stringSerializers
} from '@platformatic/kafka'
import { MultiBar, Presets } from 'cli-progress'
import { createTestTopic, uniqueName, useKafka } from 'kafkit/testing'

const { values } = parseArgs({ options: { count: { type: 'string', default: '20000' } } })
const total = Number(values.count)
if (!Number.isInteger(total) || total < 1)
  throw new Error(`--count must be a positive whole number, got "${values.count}"`)

const kafka = await useKafka({ log: line => console.error(line) })
const brokers = kafka.bootstrapServers
console.log(`Kafka: ${brokers.join(',')}`)

const { topic } = await createTestTopic({ bootstrapServers: brokers, partitions: 3, prefix: 'kafkit.demo.events' })
const producer = new Producer({
  clientId: 'kafkit-demo',
  bootstrapBrokers: brokers,
  serializers: stringSerializers,
  idempotent: true,
  acks: ProduceAcks.ALL
})
const consumer = new Consumer({
  clientId: 'kafkit-demo',
  groupId: uniqueName('kafkit-demo'),
  bootstrapBrokers: brokers,
  deserializers: stringDeserializers,
  maxWaitTime: 200
})

// Bars on a terminal; in CI logs (no TTY) the summary alone says what happened.
const bars = process.stderr.isTTY
  ? new MultiBar({ format: ' {name} [{bar}] {value}/{total}', hideCursor: true }, Presets.shades_classic)
  : undefined
const producedBar = bars?.create(total, 0, { name: 'produced' })
const consumedBar = bars?.create(total, 0, { name: 'consumed' })

const started = performance.now()
const seen = new Map<string, number>()
const stream = await consumer.consume({ topics: [topic], mode: MessagesStreamModes.EARLIEST, autocommit: 1000 })
const allConsumed = new Promise<void>(resolve => {
  stream.on('data', message => {
    seen.set(message.value, (seen.get(message.value) ?? 0) + 1)
    consumedBar?.update(seen.size)
    if (seen.size === total) resolve()
  })
})

for (let sent = 0; sent < total;) {
  const size = Math.min(1000, total - sent)
  await producer.send({
    messages: Array.from({ length: size }, (_, j) => ({
      topic,
      key: `user-${(sent + j) % 97}`,
      value: JSON.stringify({ id: sent + j, at: new Date().toISOString() })
    }))
  })
  sent += size
  producedBar?.update(sent)
}
let timer: NodeJS.Timeout | undefined
await Promise.race([allConsumed, new Promise(resolve => (timer = setTimeout(resolve, 120_000)))])
clearTimeout(timer)
const seconds = (performance.now() - started) / 1000
bars?.stop()
await stream.close()
await consumer.close()
await producer.close()

const duplicates = [...seen.values()].filter(n => n > 1).length
const missing = total - seen.size
console.log(`\nSummary (topic ${topic})`)
console.log(`  produced     ${total}`)
console.log(`  consumed     ${seen.size} distinct, ${duplicates} duplicated, ${missing} missing`)
console.log(`  throughput   ${Math.round(total / seconds)} msgs/s end to end (${seconds.toFixed(2)} s)`)
console.log(`  all accounted for: ${missing === 0 && duplicates === 0 ? 'yes' : 'NO'}`)
await kafka.release()
if (missing !== 0 || duplicates !== 0) process.exitCode = 1

/**
 * A produce-and-consume round trip with Kafkit's Producer and Consumer on a real Kafka. Uses KAFKA_BROKERS
 * when set, otherwise starts the embedded local Kafka (and stops it afterwards if this run started it).
 * Prints progress while it runs and a closing reconciliation: every message produced was consumed once.
 *
 *   npm run example:quickstart -- --count 50000
 */
import { parseArgs } from 'node:util'
import { MultiBar, Presets } from 'cli-progress'
import { Consumer, Producer } from 'kafkit'
import { createTestTopic, uniqueName, useKafka } from 'kafkit/testing'

const { values } = parseArgs({ options: { count: { type: 'string', default: '20000' } } })
const total = Number(values.count)
if (!Number.isInteger(total) || total < 1)
  throw new Error(`--count must be a positive whole number, got "${values.count}"`)

const kafka = await useKafka({ log: line => console.error(line) })
const brokers = kafka.brokers
console.log(`Kafka: ${brokers.join(',')}`)

const { topic } = await createTestTopic({ brokers, partitions: 3, prefix: 'kafkit.demo.events' })
const producer = new Producer<{ id: number; at: string }>({ brokers, topic, clientId: 'kafkit-demo' })

// Bars on a terminal; in CI logs (no TTY) the summary alone says what happened.
const bars = process.stderr.isTTY
  ? new MultiBar({ format: ' {name} [{bar}] {value}/{total}', hideCursor: true }, Presets.shades_classic)
  : undefined
const producedBar = bars?.create(total, 0, { name: 'produced' })
const consumedBar = bars?.create(total, 0, { name: 'consumed' })

const started = performance.now()
const seen = new Map<number, number>()
let allConsumed!: () => void
const consumed = new Promise<void>(resolve => (allConsumed = resolve))
const consumer = new Consumer<{ id: number; at: string }>({
  brokers,
  clientId: 'kafkit-demo',
  groupId: uniqueName('kafkit-demo'),
  topics: [topic],
  startOffset: 'earliest',
  handler: message => {
    seen.set(message.value.id, (seen.get(message.value.id) ?? 0) + 1)
    consumedBar?.update(seen.size)
    if (seen.size === total) allConsumed()
    return Promise.resolve()
  }
})
await consumer.start()

for (let sent = 0; sent < total;) {
  const size = Math.min(1000, total - sent)
  await producer.sendBatch(
    Array.from({ length: size }, (_, j) => ({
      key: `user-${(sent + j) % 97}`,
      value: { id: sent + j, at: new Date().toISOString() }
    }))
  )
  sent += size
  producedBar?.update(sent)
}
let timer: NodeJS.Timeout | undefined
await Promise.race([consumed, new Promise(resolve => (timer = setTimeout(resolve, 120_000)))])
clearTimeout(timer)
const seconds = (performance.now() - started) / 1000
bars?.stop()
await consumer.stop()
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

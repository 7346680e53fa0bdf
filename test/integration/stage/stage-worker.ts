/**
 * A stage process for the kill and zombie tests: reads `{ seq }` records from INPUT and writes one
 * `{ seq, by: WORKER, at }` output per input to OUTPUT, after WORK_MS of work. MODE: exactly-once
 * (default) or at-least-once (the control). ABORT_EVERY: about one input in this many fails once after the outputs before it went into the open transaction,
 * which aborts it (appended to ABORTS, a file, as `abort`). With INSTANCE, static membership, so a
 * restarted process takes its partitions back at once. SIGKILL is the crash.
 */
import { appendFileSync } from 'node:fs'
import { TransientError } from '../../../src/handling/errors.ts'
import { message } from '../../../src/message/builder.ts'
import { Stage } from '../../../src/stage/stage.ts'

const env = process.env
const abortEvery = Number(env.ABORT_EVERY ?? 0)
const workMs = Number(env.WORK_MS ?? 0)
const by = env.WORKER ?? String(process.pid)
const stage = new Stage<{ seq: number }, { seq: number; by: string; at: number }>({
  brokers: (env.KAFKA_BROKERS as string).split(','),
  groupId: env.GROUP as string,
  topics: [env.INPUT as string],
  outputTopic: env.OUTPUT,
  delivery: (env.MODE ?? 'exactly-once') as 'exactly-once',
  startOffset: 'earliest',
  ensureTopics: false,
  ...(env.INSTANCE ? { groupInstanceId: env.INSTANCE } : {}),
  sessionTimeoutMs: 6000,
  heartbeatIntervalMs: 500,
  transaction: { maxRecords: 200, maxMs: 20 },
  // The transaction timeout Kafka applies is the producer's request timeout (see docs/stages.md).
  ...(env.TX_TIMEOUT_MS ? { producer: { requestTimeoutMs: Number(env.TX_TIMEOUT_MS) } } : {}),
  maxRetries: 1000,
  retryBackoff: { baseMs: 1, maxMs: 50 },
  env: {},
  logger: { debug() {}, info() {}, warn() {}, error: (fields, text) => console.error(text, fields) },
  transform: async ({ value, key }, { attempt }) => {
    if (abortEvery > 0 && attempt === 1 && Math.floor(Math.random() * abortEvery) === 0) {
      appendFileSync(env.ABORTS as string, 'abort\n')
      await new Promise(resolve => setTimeout(resolve, 20))
      throw new TransientError('aborted on purpose')
    }
    if (workMs > 0) await new Promise(resolve => setTimeout(resolve, workMs))
    return message({ seq: value.seq, by, at: Date.now() }).key(key ?? '')
  }
})
await stage.start()
await stage.done()

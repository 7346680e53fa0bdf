/**
 * A stage process for the kill tests: reads `{ seq }` records from INPUT and writes one `{ seq }`
 * output per input to OUTPUT. MODE: exactly-once (default) or at-least-once (the control). ABORT_EVERY:
 * about one input in this many fails once after the outputs before it went into the open transaction,
 * which aborts it (appended to ABORTS, a file, as `abort`). Static membership (INSTANCE), so a restarted
 * process takes its partitions back at once. SIGKILL is the crash.
 */
import { appendFileSync } from 'node:fs'
import { TransientError } from '../../../src/handling/errors.ts'
import { message } from '../../../src/message/builder.ts'
import { Stage } from '../../../src/stage/stage.ts'

const env = process.env
const abortEvery = Number(env.ABORT_EVERY ?? 0)
const stage = new Stage<{ seq: number }, { seq: number }>({
  brokers: (env.KAFKA_BROKERS as string).split(','),
  groupId: env.GROUP as string,
  topics: [env.INPUT as string],
  outputTopic: env.OUTPUT,
  delivery: (env.MODE ?? 'exactly-once') as 'exactly-once',
  startOffset: 'earliest',
  ensureTopics: false,
  groupInstanceId: env.INSTANCE,
  sessionTimeoutMs: 6000,
  heartbeatIntervalMs: 500,
  transaction: { maxRecords: 200, maxMs: 20 },
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
    return message({ seq: value.seq }).key(key ?? '')
  }
})
await stage.start()
await stage.done()

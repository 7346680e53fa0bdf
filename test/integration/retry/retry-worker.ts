/**
 * A retrying worker process for the kill tests: a consumer with retry tiers whose handler fails each record as
 * planned (FAIL_PLAN below) and appends a line per event to a ledger file before it returns or throws,
 * so the file says everything the worker may have committed:
 *
 *   A <id> <ms> <topic> <lastFailureMs|->   an attempt starts (from the origin or a tier)
 *   F <id> <ms>                              the attempt failed
 *   S <id> <key> <ms>                        the record succeeded
 *
 * Failures are counted from the ledger (F lines), so the plan holds across restarts and workers. SIGTERM stops it
 * gracefully; SIGKILL is the crash.
 *
 * Env: KAFKA_BROKERS, TOPIC, GROUP, LEDGER, TIERS (ms, comma-separated), PER_KEY (1 for per-key
 * ordering), INSTANCE (static membership id), ASSIGNOR (roundrobin|cooperative-sticky), REVOKE_DRAIN_MS.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs'
import { PermanentError, TransientError } from '../../../src/handling/errors.ts'
import { readRetryHeaders } from '../../../src/retry/retry-headers.ts'
import { Consumer } from '../../../src/consumer/consumer.ts'
import { failurePlan } from './failure-plan.ts'

const env = process.env
const ledger = env.LEDGER as string
const tiers = (env.TIERS ?? '300,600').split(',').map(Number)
/**
 * Failures so far of record `id`, counted from the ledger's F lines when the attempt starts: read afresh
 * each time, because several workers of one group may share the ledger (the churn test).
 */
const failuresOf = (id: number): number => {
  if (!existsSync(ledger)) return 0
  let failed = 0
  const mark = `F ${id} `
  for (const line of readFileSync(ledger, 'utf8').split('\n')) if (line.startsWith(mark)) failed++
  return failed
}
const write = (line: string) => appendFileSync(ledger, `${line}\n`)

const consumer = new Consumer<{ id: number; key: string }>({
  brokers: (env.KAFKA_BROKERS as string).split(','),
  groupId: env.GROUP as string,
  topics: [env.TOPIC as string],
  startOffset: 'earliest',
  maxRetries: 0,
  concurrency: { mode: 'key', limit: 8 },
  ...(env.INSTANCE ? { groupInstanceId: env.INSTANCE } : {}),
  assignor: env.ASSIGNOR === 'cooperative-sticky' ? 'cooperative-sticky' : 'roundrobin',
  revokeDrainMs: Number(env.REVOKE_DRAIN_MS ?? 2000),
  commitIntervalMs: 200,
  sessionTimeoutMs: 6000,
  heartbeatIntervalMs: 500,
  rebalanceTimeoutMs: 10_000,
  handleSignals: true,
  env: {},
  logger: {
    debug() {},
    info() {},
    warn: (fields, message) => env.VERBOSE && console.error(new Date().toISOString(), message, fields),
    // Every failure is logged as going to the DLQ before the retry route takes it to a tier: not news here.
    error: (fields, message) =>
      message.startsWith('message failed') || console.error(new Date().toISOString(), message, fields)
  },
  retry: { tiers, perKeyOrdering: env.PER_KEY === '1' },
  handler: async message => {
    await Promise.resolve()
    const { id, key } = message.value
    const last = readRetryHeaders(message.headers)?.lastFailureAt?.getTime()
    write(`A ${id} ${Date.now()} ${message.topic} ${last ?? '-'}`)
    const plan = failurePlan(id, tiers.length)
    const failed = failuresOf(id)
    if (plan === 'permanent' || failed < plan) {
      write(`F ${id} ${Date.now()}`)
      if (plan === 'permanent') throw new PermanentError(`record ${id} is bad`)
      throw new TransientError(`record ${id} failure ${failed + 1}`)
    }
    write(`S ${id} ${key} ${Date.now()}`)
  }
})
await consumer.start()
console.log(JSON.stringify({ started: process.pid }))
await consumer.done()
process.exit(0)

/**
 * Reliability matrix A1/A2 for the consumer runtime, with real processes: workers (child processes,
 * test/fixtures/consumer/ledger-worker.ts) write a ledger line per handled record before the handler
 * resolves. They are SIGKILLed again and again, or join and leave a group of three (SIGTERM and
 * SIGKILL), while they consume keyed records. Checks against the ledger: no record lost (every offset
 * handled at least once: nothing was committed past an unhandled record), the same key strictly in
 * order within each worker run, and, after a last graceful stop, the committed offsets at the end.
 * Duplicates are expected (at-least-once) and reported.
 *
 * Sizes: KAFKIT_KILL_RECORDS (default 4000), KAFKIT_KILLS (default 10), KAFKIT_CHURN (default 8),
 * KAFKIT_KILL_WORK_MS (default 20: the longest simulated work per record).
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test, type TestContext } from 'node:test'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { eventually } from '../../helpers/wait.ts'
import { committedOffsets, produceKeyed, sleep, waitFor } from './helpers.ts'

const records = Number(process.env.KAFKIT_KILL_RECORDS ?? 4000)
const kills = Number(process.env.KAFKIT_KILLS ?? 10)
const churn = Number(process.env.KAFKIT_CHURN ?? 8)
const workerFile = fileURLToPath(new URL('../../fixtures/consumer/ledger-worker.ts', import.meta.url))
const controlFile = fileURLToPath(new URL('../../fixtures/consumer/autocommit-worker.ts', import.meta.url))

interface Worker {
  run: string
  child: ChildProcess
  exited: Promise<unknown>
}

let runs = 0

function startWorker(env: Record<string, string>, file = workerFile): Worker {
  const run = `r${++runs}`
  const child = spawn(process.execPath, [file], {
    env: { ...process.env, ...env, RUN: run },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  return { run, child, exited: once(child, 'exit') }
}

interface LedgerLine {
  run: string
  partition: number
  offset: bigint
  key: string
  seq: number
}

function readLedger(file: string): LedgerLine[] {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : ''
  return text
    .split('\n')
    .filter(line => line.length > 0)
    .map(line => {
      const [run, partition, offset, key, seq] = line.split(' ') as [string, string, string, string, string]
      return { run, partition: Number(partition), offset: BigInt(offset), key, seq: Number(seq) }
    })
}

function distinctHandled(file: string): number {
  return new Set(readLedger(file).map(line => `${line.partition}:${line.offset}`)).size
}

async function waitForLedger(file: string, count: number, timeoutMs: number): Promise<void> {
  if (!(await eventually(() => distinctHandled(file) >= count, timeoutMs, 200))) {
    throw new Error(`only ${distinctHandled(file)} of ${count} records handled after ${timeoutMs} ms`)
  }
}

async function waitForCommitted(groupId: string, topic: string, total: number, timeoutMs: number): Promise<void> {
  let sum = 0n
  const committedAll = async () => {
    const committed = await committedOffsets(bootstrapServers(), groupId, topic)
    sum = [...committed.values()].reduce((a, b) => a + b, 0n)
    return sum === BigInt(total)
  }
  if (!(await eventually(committedAll, timeoutMs, 250))) {
    throw new Error(`committed ${sum} of ${total} after ${timeoutMs} ms`)
  }
}

/** No loss, per-key order within each run, committed offsets at the end. */
async function check(t: TestContext, file: string, topic: string, groupId: string, total: number): Promise<void> {
  const lines = readLedger(file)
  const handled = new Set(lines.map(line => `${line.partition}:${line.offset}`))
  assert.equal(handled.size, total, 'every record handled at least once')
  const lastSeq = new Map<string, number>()
  const violations: string[] = []
  for (const line of lines) {
    const id = `${line.run}:${line.key}`
    const before = lastSeq.get(id)
    if (before !== undefined && line.seq <= before) violations.push(`${id}: ${line.seq} after ${before}`)
    lastSeq.set(id, line.seq)
  }
  assert.deepEqual(violations.slice(0, 5), [], 'the same key strictly in order within each run')
  // Across runs: the order in which each key's records were handled for the first time is the produce order.
  const firstSeen = new Set<string>()
  const firstOrder = new Map<string, number>()
  const firstViolations: string[] = []
  for (const line of lines) {
    const id = `${line.key}:${line.seq}`
    if (firstSeen.has(id)) continue
    firstSeen.add(id)
    const before = firstOrder.get(line.key)
    if (before !== undefined && line.seq < before)
      firstViolations.push(`${line.key}: ${line.seq} first handled after ${before}`)
    firstOrder.set(line.key, line.seq)
  }
  assert.deepEqual(firstViolations.slice(0, 5), [], 'per key, records first handled in produce order')
  const committed = await committedOffsets(bootstrapServers(), groupId, topic)
  const sum = [...committed.values()].reduce((a, b) => a + b, 0n)
  assert.equal(sum, BigInt(total), 'committed offsets at the end of every partition')
  t.diagnostic(`${lines.length} handlings for ${total} records (${lines.length - total} redeliveries)`)
}

/** Produces `count` keyed records, then starts and SIGKILLs a worker `times` times at random moments of progress. */
async function killRepeatedly(t: TestContext, count: number, times: number, file: string) {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 3 })
  t.after(drop)
  await produceKeyed(brokers, topic, count, { keys: 50 })
  const groupId = uniqueName('kill-group')
  const ledger = join(tmpdir(), `${uniqueName('ledger')}.txt`)
  writeFileSync(ledger, '')
  // Static membership: the restarted worker takes its predecessor's place at once, without waiting
  // for the dead member's session to time out.
  const env = {
    KAFKA_BROKERS: brokers.join(','),
    TOPIC: topic,
    GROUP: groupId,
    LEDGER: ledger,
    ORDERING: 'key',
    INSTANCE: 'worker-1',
    // Slow enough that the kills land while records are in flight.
    WORK_MS: process.env.KAFKIT_KILL_WORK_MS ?? '20',
    LIMIT: '2'
  }
  for (let i = 0; i < times; i++) {
    const before = readLedger(ledger).length
    const worker = startWorker(env, file)
    // Kill it once it handled something (or after a while, if it is still joining, so no waitFor), at a
    // random moment (a chaos gap, not a wait for anything).
    await eventually(() => readLedger(ledger).length > before, 15_000, 50)
    await sleep(Math.random() * 400)
    worker.child.kill('SIGKILL')
    await worker.exited
  }
  t.diagnostic(`${distinctHandled(ledger)} of ${count} records handled when the last kill landed`)
  return { env, ledger, topic, groupId }
}

test(`SIGKILL the worker ${kills} times while it consumes ${records} keyed records: nothing lost, keys in order`, async t => {
  const { env, ledger, topic, groupId } = await killRepeatedly(t, records, kills, workerFile)
  const last = startWorker(env)
  await waitForLedger(ledger, records, 120_000)
  await waitForCommitted(groupId, topic, records, 60_000)
  last.child.kill('SIGTERM')
  await last.exited
  await check(t, ledger, topic, groupId, records)
})

test('negative control: a worker that auto-commits what it fetched loses records when killed, and the check sees it', async t => {
  const { env, ledger, topic, groupId } = await killRepeatedly(t, 2000, 3, controlFile)
  const from = await committedOffsets(bootstrapServers(), groupId, topic)
  const last = startWorker(env)
  // The control never gets the lost records back: wait for it to catch up with what it can see (fetched
  // and auto-committed, then handled: the last record of each partition it had to read is in the ledger).
  await waitForCommitted(groupId, topic, 2000, 60_000)
  const ends = await committedOffsets(bootstrapServers(), groupId, topic)
  await waitFor(
    () => {
      const handled = new Set(
        readLedger(ledger)
          .filter(line => line.run.startsWith(`${last.run}.`))
          .map(line => `${line.partition}:${line.offset}`)
      )
      return [...ends].every(
        ([partition, end]) => (from.get(partition) ?? 0n) >= end || handled.has(`${partition}:${end - 1n}`)
      )
    },
    60_000,
    'the control to handle what it fetched'
  )
  last.child.kill('SIGKILL')
  await last.exited
  assert.ok(distinctHandled(ledger) < 2000, `records were lost (${distinctHandled(ledger)} of 2000 handled)`)
  await assert.rejects(check(t, ledger, topic, groupId, 2000), /every record handled at least once/)
})

test(`three workers join and leave ${churn} times (SIGTERM and SIGKILL) while records arrive: nothing lost, keys in order`, async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 6 })
  t.after(drop)
  const groupId = uniqueName('churn-group')
  const ledger = join(tmpdir(), `${uniqueName('ledger')}.txt`)
  writeFileSync(ledger, '')
  const env = {
    KAFKA_BROKERS: brokers.join(','),
    TOPIC: topic,
    GROUP: groupId,
    LEDGER: ledger,
    ORDERING: 'key',
    ASSIGNOR: 'cooperative-sticky',
    // Slow enough that records are in flight when a worker leaves.
    WORK_MS: process.env.KAFKIT_KILL_WORK_MS ?? '20',
    LIMIT: '2'
  }
  const events = join(tmpdir(), `${uniqueName('events')}.txt`)
  writeFileSync(events, '')
  Object.assign(env, { EVENTS: events })
  const workers = [startWorker(env), startWorker(env), startWorker(env)]
  t.after(() => {
    for (const worker of workers) worker.child.kill('SIGKILL')
  })
  // Each worker is let into the group (assigned partitions) before the churn goes on, so that joiners
  // take partitions from live owners (revokes), not only the partitions of the one that just left.
  const assignedTo = (worker: Worker) => readFileSync(events, 'utf8').includes(`A ${worker.run} `)
  const joined = (list: Worker[]) =>
    waitFor(() => list.every(assignedTo), 30_000, 'the workers to be assigned partitions', 100)
  await joined(workers)
  let produced = 0
  const perRound = Math.ceil(records / churn)
  for (let i = 0; i < churn; i++) {
    produced += (await produceKeyed(brokers, topic, perRound, { keys: 50, start: produced })).length
    // A random gap before the next departure (chaos), while the workers handle the new records.
    await sleep(1000 + Math.random() * 1000)
    const index = i % workers.length
    const leaving = workers[index] as Worker
    leaving.child.kill(i % 2 === 0 ? 'SIGTERM' : 'SIGKILL')
    await leaving.exited
    workers[index] = startWorker(env)
    await joined([workers[index]])
  }
  await waitForLedger(ledger, produced, 180_000)
  // Records handled by a worker that died before committing are handled again by the new owner; the
  // group's lag returns to 0 while the workers run.
  await waitForCommitted(groupId, topic, produced, 60_000)
  for (const worker of workers) worker.child.kill('SIGTERM')
  await Promise.all(workers.map(worker => worker.exited))
  await check(t, ledger, topic, groupId, produced)
  // No commit by a former owner after it let a partition go (until it is assigned that partition again).
  const owned = new Set<string>()
  const late: string[] = []
  let commits = 0
  let revokes = 0
  for (const line of readFileSync(events, 'utf8').split('\n').filter(Boolean)) {
    const [kind, run, partition] = line.split(' ') as [string, string, string]
    const id = `${run}:${partition}`
    if (kind === 'A') owned.add(id)
    else if (kind === 'R') {
      owned.delete(id)
      revokes++
    } else if (kind === 'C') {
      commits++
      if (!owned.has(id)) late.push(line)
    }
  }
  assert.ok(revokes > 0, 'partitions were revoked')
  assert.deepEqual(late.slice(0, 5), [], 'no commit by a former owner after revoke')
  t.diagnostic(`${revokes} revokes, ${commits} partition commits`)
})

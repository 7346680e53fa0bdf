/**
 * A zombie stage worker: SIGSTOPped past its session timeout and its transaction timeout while a
 * replacement takes its partition over and finishes the input, then SIGCONT. Nothing the zombie writes
 * after it wakes becomes visible to read_committed readers, and each input's output is there exactly
 * once. The control runs the same at-least-once: there the zombie's late outputs do show up.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { test, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { committedOffsets, json, produceKeyed, sleep, waitFor } from '../consumer/helpers.ts'

const workerFile = fileURLToPath(new URL('./stage-worker.ts', import.meta.url))
const count = 600

async function zombieRun(t: TestContext, mode: 'exactly-once' | 'at-least-once') {
  const brokers = bootstrapServers()
  const input = await createTestTopic({ brokers, partitions: 1, prefix: 'zombie-in' })
  const output = await createTestTopic({ brokers, partitions: 1, prefix: 'zombie-out' })
  const alive = new Set<ChildProcess>()
  t.after(async () => {
    for (const child of alive) child.kill('SIGKILL')
    await Promise.all([input.delete(), output.delete()])
  })
  await produceKeyed(brokers, input.topic, count, { keys: 10, value: i => json({ seq: i }) })
  const group = uniqueName('zombie')
  const start = (worker: string) => {
    const child = spawn(process.execPath, ['--conditions=development', workerFile], {
      env: {
        ...process.env,
        KAFKA_BROKERS: brokers.join(','),
        INPUT: input.topic,
        OUTPUT: output.topic,
        GROUP: group,
        MODE: mode,
        WORKER: worker,
        WORK_MS: '20',
        TX_TIMEOUT_MS: '8000'
      },
      stdio: ['ignore', 'inherit', 'inherit']
    })
    alive.add(child)
    return { child, exited: once(child, 'exit').finally(() => alive.delete(child)) }
  }
  const committed = async () =>
    [...(await committedOffsets(brokers, group, input.topic)).values()].reduce((a, b) => a + b, 0n)
  const zombie = start('zombie')
  // Let it work a while, then freeze it in the middle of its work.
  await waitFor(async () => (await committed()) >= 100n, 60_000, 'the first worker to make progress')
  zombie.child.kill('SIGSTOP')
  const stoppedAt = Date.now()
  const replacement = start('replacement')
  await waitFor(async () => (await committed()) === BigInt(count), 120_000, 'the replacement to finish the input')
  // Past the transaction timeout (8 s) too, with room for the coordinator's check of timed-out transactions.
  await sleep(Math.max(0, stoppedAt + 20_000 - Date.now()))
  const wokeAt = Date.now()
  zombie.child.kill('SIGCONT')
  await sleep(8000)
  for (const worker of [zombie, replacement]) worker.child.kill('SIGKILL')
  const outputs = await readTopic(brokers, output.topic, count, { readCommitted: true, quietMs: 2000 })
  const values = outputs.map(record => JSON.parse(record.value.toString()) as { seq: number; by: string; at: number })
  const perInput = new Map<number, number>()
  for (const { seq } of values) perInput.set(seq, (perInput.get(seq) ?? 0) + 1)
  return {
    outputs: values.length,
    missing: count - perInput.size,
    duplicated: [...perInput.values()].filter(n => n > 1).length,
    byZombie: values.filter(value => value.by === 'zombie').length,
    byZombieAfterWaking: values.filter(value => value.by === 'zombie' && value.at >= wokeAt).length,
    stoppedMs: wokeAt - stoppedAt
  }
}

test('exactly-once: a zombie stopped past its session and transaction timeouts writes nothing visible after it wakes', async t => {
  const result = await zombieRun(t, 'exactly-once')
  t.diagnostic(JSON.stringify(result))
  assert.ok(result.stoppedMs >= 20_000, 'stopped past the session timeout (6 s) and the transaction timeout (8 s)')
  assert.ok(result.byZombie > 0, 'the zombie had committed outputs before it was stopped')
  assert.equal(result.byZombieAfterWaking, 0, 'nothing the zombie wrote after waking is visible')
  assert.equal(result.missing, 0)
  assert.equal(result.duplicated, 0)
})

test('control: at-least-once, the zombie wakes and its late outputs are visible as duplicates', async t => {
  const result = await zombieRun(t, 'at-least-once')
  t.diagnostic(JSON.stringify(result))
  assert.ok(result.byZombieAfterWaking > 0 || result.duplicated > 0, 'the zombie wrote after waking')
})

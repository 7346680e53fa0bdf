/**
 * An exactly-once stage SIGKILLed again and again (a process of its own, stage-worker.ts) while it
 * transforms its input, with about one transaction in ten aborted on purpose: a read_committed reader
 * of the output sees each input's output exactly once. The control runs the same worker at-least-once
 * under kills and must show duplicates, so the check is known to catch them.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { committedOffsets, json, produceKeyed, sleep, waitFor } from '../consumer/helpers.ts'

const records = Number(process.env.STAGE_KILL_RECORDS ?? 50_000)
const kills = Number(process.env.STAGE_KILLS ?? 20)
const workerFile = fileURLToPath(new URL('./stage-worker.ts', import.meta.url))

async function killRun(t: TestContext, mode: 'exactly-once' | 'at-least-once', count: number, times: number) {
  const brokers = bootstrapServers()
  const input = await createTestTopic({ brokers, partitions: 3, prefix: 'stage-kill-in' })
  const output = await createTestTopic({ brokers, partitions: 3, prefix: 'stage-kill-out' })
  const aborts = join(tmpdir(), `${uniqueName('aborts')}.txt`)
  writeFileSync(aborts, '')
  const alive = new Set<ChildProcess>()
  t.after(async () => {
    for (const child of alive) child.kill('SIGKILL')
    await Promise.all([input.delete(), output.delete()])
  })
  await produceKeyed(brokers, input.topic, count, { keys: 60, value: i => json({ seq: i }) })
  const env = {
    ...process.env,
    KAFKA_BROKERS: brokers.join(','),
    INPUT: input.topic,
    OUTPUT: output.topic,
    GROUP: uniqueName('stage-kill'),
    INSTANCE: 'stage-worker',
    MODE: mode,
    ABORTS: aborts,
    ABORT_EVERY: mode === 'exactly-once' ? '2000' : '0'
  }
  const start = () => {
    const child = spawn(process.execPath, ['--conditions=development', workerFile], {
      env,
      stdio: ['ignore', 'inherit', 'inherit']
    })
    alive.add(child)
    return { child, exited: once(child, 'exit').finally(() => alive.delete(child)) }
  }
  let worker = start()
  for (let kill = 0; kill < times; kill++) {
    await sleep(500 + Math.random() * 700)
    worker.child.kill('SIGKILL')
    await worker.exited
    worker = start()
  }
  const done = async () =>
    [...(await committedOffsets(brokers, env.GROUP, input.topic)).values()].reduce((a, b) => a + b, 0n) ===
    BigInt(count)
  await waitFor(done, 180_000, 'every input committed')
  worker.child.kill('SIGKILL')
  await worker.exited
  const outputs = await readTopic(brokers, output.topic, count, {
    readCommitted: true,
    timeoutMs: 120_000,
    quietMs: 2000
  })
  const perInput = new Map<number, number>()
  for (const record of outputs) {
    const { seq } = JSON.parse(record.value.toString()) as { seq: number }
    perInput.set(seq, (perInput.get(seq) ?? 0) + 1)
  }
  const missing = count - perInput.size
  const duplicated = [...perInput.values()].filter(n => n > 1).length
  const aborted = readFileSync(aborts, 'utf8').split('\n').filter(Boolean).length
  return { outputs: outputs.length, missing, duplicated, aborted }
}

test(`exactly-once stage SIGKILLed ${kills} times over ${records} inputs, transactions aborted on purpose: each output exactly once`, async t => {
  const result = await killRun(t, 'exactly-once', records, kills)
  t.diagnostic(JSON.stringify(result))
  assert.ok(result.aborted > 0, 'transactions were aborted on purpose')
  assert.equal(result.missing, 0, 'an output for every input')
  assert.equal(result.duplicated, 0, 'no input with two outputs')
  assert.equal(result.outputs, records)
})

test('control: the same worker at-least-once under kills shows duplicates', async t => {
  const result = await killRun(t, 'at-least-once', 5000, 4)
  t.diagnostic(JSON.stringify(result))
  assert.equal(result.missing, 0)
  assert.ok(result.duplicated > 0, 'at-least-once duplicates outputs when killed')
})

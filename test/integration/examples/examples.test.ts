/**
 * Every example runs end to end against the run's Kafka (and PostgreSQL for the log pipeline and the
 * todo service), as a user would start it with `npm run example:<name>`, and ends with its own
 * reconciliation: exit status 0 only when everything is accounted for.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { test } from 'node:test'
import { bootstrapServers, databaseUrl } from '../../helpers/env.ts'

async function runExample(name: string, args: string[] = []): Promise<{ code: number | null; output: string }> {
  const file = fileURLToPath(new URL(`../../../examples/${name}/main.ts`, import.meta.url))
  const child = spawn(process.execPath, ['--conditions=development', file, ...args], {
    env: { ...process.env, KAFKA_BROKERS: bootstrapServers().join(','), DATABASE_URL: databaseUrl() },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  return { code, output }
}

test('hello world: one greeting handled, the bad one dead-lettered', async () => {
  const { code, output } = await runExample('hello-world')
  assert.equal(code, 0, output)
  assert.match(output, /Hello, Ada!/)
  assert.match(output, /0: done, 1: dead-letter/)
})

test('quickstart: every message produced is consumed once', async () => {
  const { code, output } = await runExample('quickstart', ['--count', '3000'])
  assert.equal(code, 0, output)
  assert.match(output, /consumed {5}3000 distinct, 0 duplicated, 0 missing/)
})

test('log pipeline: stored + dead-lettered = produced, and the dead letters stay to look at', async () => {
  const { code, output } = await runExample('log-pipeline', ['--count', '4000', '--bad-every', '200'])
  assert.equal(code, 0, output)
  assert.match(output, /stored 3980 \+ dead-lettered 20 = 4000; duplicates 0; lag 0/)
  assert.match(output, /npx kafkit dlq list \S+dlq-postgres/)
})

test('todo events: every accepted request is one todo change, one outbox row, one event, applied once', async () => {
  const { code, output } = await runExample('todo-events', ['--requests', '80', '--invalid-every', '8'])
  assert.equal(code, 0, output)
  assert.match(
    output,
    /balanced: (\d+) accepted = \1 todo changes = \1 outbox rows published = \1 events = \1 applied once; 10 invalid = 10 rejected; notifier (\d+) handled \+ (\d+) dead-lettered = \1/
  )
  assert.match(output, /replayed the topic through a second projection worker: \d+ events, 0 applied again/)
  assert.match(output, /all accounted for: yes/)
})

test('download pipeline: every file stored once with one result, or dead-lettered once with its reason', async () => {
  const started = performance.now()
  const args = '--files 60 --tiers 1s,2s --transient-rate 0.2 --missing-every 15 --down-every 25 --timeout 1s'
  const { code, output } = await runExample('download-pipeline', args.split(' '))
  assert.equal(code, 0, output)
  const balanced =
    /balanced: 60 requested = (\d+) stored once \+ (\d+) dead-lettered once; \1 results; 0 duplicate uploads, 0 missing/.exec(
      output
    )
  assert.ok(balanced, output)
  assert.equal(Number(balanced[1]) + Number(balanced[2]), 60)
  assert.match(output, /all accounted for: yes/)
  // Dead-lettered: the 404s at once (15, 30, 45, 60), and the files that are always down after both tiers (25, 50).
  for (const n of [15, 30, 45, 60]) assert.match(output, new RegExp(`file-000${n}\\.bin +download +permanent +1 .*404`))
  for (const n of [25, 50]) assert.match(output, new RegExp(`file-000${n}\\.bin +download +transient .*answered 503`))
  assert.match(output, /sent to the retry tiers +\d+ +1s: \d+, 2s: \d+/)
  assert.ok(performance.now() - started < 60_000, 'well under a minute')
})

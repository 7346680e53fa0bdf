/**
 * DLQ replay on the real broker: dead letters written by the handling layer's DeadLetterWriter are
 * replayed to their origin topic and read back (read_committed) with their original key, value and
 * headers plus the replay headers; the ledger keeps a second replay from publishing again unless
 * forced; the group filter, dry run, confirmation refusal, --to and concurrent replays, through the
 * API and the real CLI process.
 */
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { test, type TestContext } from 'node:test'
import { promisify } from 'node:util'
import { Admin, Producer } from '@platformatic/kafka'
import { DeadLetterWriter } from '../../../src/handling/dead-letter-writer.ts'
import { PermanentError, TransientError } from '../../../src/handling/errors.ts'
import type { ConsumedMessage } from '../../../src/handling/types.ts'
import { readStandardHeaders } from '../../../src/message/headers.ts'
import {
  ReplayHeader,
  readReplayLedger,
  replayDeadLetters,
  replayLedgerTopic
} from '../../../src/operations/dead-letter-replay.ts'
import { createTestTopic } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic, type RawMessage } from '../../helpers/read-topic.ts'
import { waitFor } from '../../helpers/wait.ts'

const run = promisify(execFile)
const cli = new URL('../../../bin/kafkit.js', import.meta.url).pathname

interface Original {
  partition: number
  offset: bigint
  key: Buffer | null
  value: Buffer | null
  headerEntries: [string, Buffer][]
  group: string
  error: Error
}

const originals: Original[] = [
  {
    partition: 1,
    offset: 7n,
    key: Buffer.from('k1'),
    value: Buffer.from('{"id":1}'),
    headerEntries: [
      ['event-type', Buffer.from('orders.order.placed')],
      ['trace', Buffer.from('a')],
      ['trace', Buffer.from('b')]
    ],
    group: 'billing',
    error: new PermanentError('invalid order')
  },
  {
    partition: 0,
    offset: 3n,
    key: null,
    value: Buffer.from([0xff, 0x00, 0xfe]),
    headerEntries: [['bin', Buffer.from([0x00, 0x01])]],
    group: 'billing',
    error: new TransientError('connection refused')
  },
  {
    partition: 1,
    offset: 9n,
    key: Buffer.from('k3'),
    value: null,
    headerEntries: [],
    group: 'shipping',
    error: new PermanentError('tombstone not handled')
  },
  {
    partition: 0,
    offset: 11n,
    key: Buffer.from('k4'),
    value: Buffer.from('{"id":4}'),
    headerEntries: [['event-type', Buffer.from('orders.order.placed')]],
    group: 'shipping',
    error: new TransientError('timeout')
  }
]

function consumed(origin: string, o: Original): ConsumedMessage<unknown, unknown> {
  const headers = new Map(o.headerEntries)
  return {
    topic: origin,
    partition: o.partition,
    offset: o.offset,
    timestamp: new Date('2026-11-22T10:00:00Z'),
    key: o.key?.toString() ?? null,
    value: o.value,
    headers,
    headerEntries: o.headerEntries,
    meta: readStandardHeaders(headers),
    raw: { key: o.key, value: o.value }
  }
}

interface Fixture {
  brokers: string[]
  origin: string
  dlq: string
}

/** An origin topic (2 partitions), its DLQ with the four originals dead-lettered by the real writer. */
async function fixture(t: TestContext): Promise<Fixture> {
  const brokers = bootstrapServers()
  const origin = await createTestTopic({ brokers, partitions: 2, prefix: 'orders.order.events' })
  const dlq = await createTestTopic({ brokers, partitions: 1, prefix: 'orders.order.events-dlq' })
  t.after(async () => {
    await origin.delete()
    await dlq.delete()
    const admin = new Admin({ clientId: 'dlq-replay-test', bootstrapBrokers: brokers })
    await admin.deleteTopics({ topics: [replayLedgerTopic(dlq.topic)] }).catch(() => undefined)
    await admin.close()
  })
  const producer = new Producer<Buffer, Buffer, Buffer, Buffer>({
    clientId: 'dlq-replay-test',
    bootstrapBrokers: brokers,
    idempotent: true
  })
  try {
    for (const group of ['billing', 'shipping']) {
      const writer = new DeadLetterWriter({ producer, groupId: group, topic: dlq.topic })
      for (const o of originals.filter(x => x.group === group)) {
        const at = new Date()
        await writer.write(consumed(origin.topic, o), {
          reason: o.error instanceof TransientError ? 'transient' : 'permanent',
          error: o.error,
          attempts: 3,
          firstFailureAt: at,
          lastFailureAt: at
        })
      }
    }
  } finally {
    await producer.close()
  }
  return { brokers, origin: origin.topic, dlq: dlq.topic }
}

function headerEntries(message: RawMessage): [string, Buffer][] {
  return message.headerEntries.map(([name, value]) => [name.toString(), value])
}

function header(message: RawMessage, name: string): string | undefined {
  return headerEntries(message)
    .find(([n]) => n === name)?.[1]
    .toString()
}

/** Runs the CLI on a pseudo-terminal (util-linux `script`) and answers its confirmation prompt. */
async function kafkitOnTerminal(answer: string, ...args: string[]): Promise<{ output: string; code: number | null }> {
  const command = [process.execPath, cli, ...args].map(a => `'${a.replaceAll("'", "'\\''")}'`).join(' ')
  const child = spawn('script', ['-qe', '-c', command, '/dev/null'], { env: { ...process.env, KAFKA_BROKERS: '' } })
  let output = ''
  let answered = false
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString()
    if (!answered && output.includes('to continue:')) {
      answered = true
      child.stdin.write(`${answer}\n`)
    }
  })
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  child.stdin.destroy()
  return { output, code }
}

const settled = [
  <T>(value: T): PromiseSettledResult<T> => ({ status: 'fulfilled', value }),
  (reason: unknown): PromiseRejectedResult => ({ status: 'rejected', reason })
] as const

async function kafkit(...args: string[]): Promise<{ stdout: string; code: number }> {
  try {
    const { stdout } = await run(process.execPath, [cli, ...args], { env: { ...process.env, KAFKA_BROKERS: '' } })
    return { stdout, code: 0 }
  } catch (error) {
    const failed = error as { stdout: string; stderr: string; code: number }
    return { stdout: `${failed.stdout}${failed.stderr}`, code: failed.code }
  }
}

test('replay round trip: original key, value and headers back on the origin partition, once unless forced', async t => {
  const { brokers, origin, dlq } = await fixture(t)
  const connection = { brokers }
  // DLQ offsets follow the write order: billing's two, then shipping's two.
  const written = [...originals.filter(o => o.group === 'billing'), ...originals.filter(o => o.group === 'shipping')]

  const first = await replayDeadLetters({ ...connection, topic: dlq })
  assert.equal(first.replayed, 4)
  assert.equal(first.alreadyReplayed, 0)
  assert.deepEqual(first.targets, [{ topic: origin, count: 4 }])

  const back = await readTopic(brokers, origin, 4, { readCommitted: true })
  assert.equal(back.length, 4)
  for (const [dlqOffset, o] of written.entries()) {
    const replayOf = `${dlq}/0@${dlqOffset}`
    const message = back.find(m => header(m, ReplayHeader.replayOf) === replayOf)
    assert.ok(message, `a record replaying ${replayOf}`)
    assert.equal(message.partition, o.partition, 'back on its origin partition')
    assert.deepEqual(message.key ?? null, o.key === null ? null : o.key)
    if (o.value === null) assert.ok(message.value === null || message.value === undefined || message.value.length === 0)
    else assert.deepEqual(message.value, o.value)
    assert.deepEqual(
      headerEntries(message),
      [...o.headerEntries, [ReplayHeader.replayOf, Buffer.from(replayOf)]],
      'original headers in order, repeats kept, no kafkit-dlq-* header, then the replay header'
    )
  }

  const second = await replayDeadLetters({ ...connection, topic: dlq })
  assert.equal(second.replayed, 0)
  assert.equal(second.alreadyReplayed, 4)
  assert.equal((await readTopic(brokers, origin, 5, { readCommitted: true, timeoutMs: 3000 })).length, 4)

  const forced = await replayDeadLetters({ ...connection, topic: dlq, force: true })
  assert.equal(forced.replayed, 4)
  const after = await readTopic(brokers, origin, 8, { readCommitted: true })
  assert.equal(after.length, 8)

  const admin = new Admin({ clientId: 'dlq-replay-test', bootstrapBrokers: brokers })
  const dlqTopicId = (await admin.metadata({ topics: [dlq] })).topics.get(dlq)?.id ?? ''
  await admin.close()
  const ledger = await readReplayLedger({ ...connection, ledgerTopic: replayLedgerTopic(dlq), dlqTopicId })
  assert.deepEqual([...ledger.keys()].sort(), ['0@0', '0@1', '0@2', '0@3'])
  assert.deepEqual(
    [...ledger.values()].map(e => e.count),
    [2, 2, 2, 2]
  )
  assert.equal(ledger.get('0@0')?.target, origin)
})

test('CLI: dry run publishes nothing, no terminal means no replay without --yes, --group replays one group', async t => {
  const { brokers, origin, dlq } = await fixture(t)
  const common = ['--brokers', brokers.join(',')]

  const dry = await kafkit('dlq', 'replay', dlq, ...common, '--dry-run', '--json')
  assert.equal(dry.code, 0, dry.stdout)
  const plan = JSON.parse(dry.stdout) as { dryRun: boolean; toReplay: number; replayed: number; records: unknown[] }
  assert.equal(plan.dryRun, true)
  assert.equal(plan.toReplay, 4)
  assert.equal(plan.replayed, 0)
  const dryText = await kafkit('dlq', 'replay', dlq, ...common, '--dry-run')
  assert.match(dryText.stdout, /^dry run: nothing was published\n/)
  assert.match(
    dryText.stdout,
    new RegExp(`would replay \\(4\\):\\n {2}0:0 {2}-> ${origin}\\[1\\] {2}key k1 {2}permanent PermanentError`)
  )

  const refused = await kafkit('dlq', 'replay', dlq, ...common, '--group', 'shipping')
  assert.equal(refused.code, 1)
  assert.match(refused.stdout, /stdin is not a terminal: pass --yes to go ahead .*\[KAFKIT_CONFIRMATION_REQUIRED\]/)

  const admin = new Admin({ clientId: 'dlq-replay-test', bootstrapBrokers: brokers })
  t.after(() => admin.close())
  assert.ok(
    !(await admin.listTopics()).includes(replayLedgerTopic(dlq)),
    'neither the dry run nor the refused replay created the ledger'
  )
  assert.equal((await readTopic(brokers, origin, 1, { readCommitted: true, timeoutMs: 3000 })).length, 0)

  const shipping = await kafkit('dlq', 'replay', dlq, ...common, '--group', 'shipping', '--yes', '--json')
  assert.equal(shipping.code, 0, shipping.stdout)
  const shipped = JSON.parse(shipping.stdout) as { replayed: number; selected: number; scanned: number }
  assert.deepEqual([shipped.replayed, shipped.selected, shipped.scanned], [2, 2, 4])
  const back = await readTopic(brokers, origin, 2, { readCommitted: true })
  assert.deepEqual(back.map(m => header(m, ReplayHeader.group)).sort(), ['shipping', 'shipping'])
  assert.deepEqual(back.map(m => header(m, ReplayHeader.replayOf)).sort(), [`${dlq}/0@2`, `${dlq}/0@3`])

  const rest = await kafkit('dlq', 'replay', dlq, ...common, '--yes')
  assert.equal(rest.code, 0, rest.stdout)
  assert.match(rest.stdout, /to replay: 2 -> /)
  assert.match(rest.stdout, /already replayed, skipped: 2/)
  assert.match(rest.stdout, /replayed 2 record\(s\); ledger /)
  const all = await readTopic(brokers, origin, 4, { readCommitted: true, quietMs: 1000 })
  assert.equal(all.length, 4)
  assert.equal(
    all.filter(m => header(m, ReplayHeader.group) === undefined).length,
    2,
    'no group header without --group'
  )
})

test('on a terminal, replay asks first: "no" publishes nothing, "yes" replays with a progress bar', async t => {
  const { brokers, origin, dlq } = await fixture(t)
  const common = ['--brokers', brokers.join(',')]

  const declined = await kafkitOnTerminal('no', 'dlq', 'replay', dlq, ...common)
  assert.equal(declined.code, 1, declined.output)
  assert.match(declined.output, /to replay: 4 -> /)
  assert.match(declined.output, /Replay 4 record\(s\)\? Type "yes" to continue:/)
  assert.match(declined.output, /cancelled: nothing was published/)
  assert.equal((await readTopic(brokers, origin, 1, { readCommitted: true, timeoutMs: 3000 })).length, 0)

  const accepted = await kafkitOnTerminal('yes', 'dlq', 'replay', dlq, ...common)
  assert.equal(accepted.code, 0, accepted.output)
  assert.match(accepted.output, /replayed \[[^\]]*\] 4\/4/, 'the progress bar reached 4 of 4')
  assert.match(accepted.output, /replayed 4 record\(s\); ledger /)
  assert.equal((await readTopic(brokers, origin, 4, { readCommitted: true, quietMs: 1000 })).length, 4)
})

test('--to another topic, offset ranges, and foreign records that only --to can replay', async t => {
  const { brokers, dlq } = await fixture(t)
  const other = await createTestTopic({ brokers, partitions: 3, prefix: 'orders.order.reprocess' })
  t.after(other.delete)
  const producer = new Producer<Buffer, Buffer, Buffer, Buffer>({
    clientId: 'dlq-replay-test',
    bootstrapBrokers: brokers
  })
  await producer.send({
    messages: [
      {
        topic: dlq,
        key: Buffer.from('x'),
        value: Buffer.from('written by another tool'),
        headers: new Map([[Buffer.from('source'), Buffer.from('legacy')]])
      }
    ]
  })
  await producer.close()
  const common = ['--brokers', brokers.join(',')]

  const withoutTo = await kafkit('dlq', 'replay', dlq, ...common, '--from-offset', '3', '--yes', '--json')
  assert.equal(withoutTo.code, 2, 'exit code 2: a selected record could not be replayed')
  const partial = JSON.parse(withoutTo.stdout) as {
    replayed: number
    unreplayable: number
    records: { offset: string; status: string; reason?: string }[]
  }
  assert.equal(partial.replayed, 1)
  assert.deepEqual(
    partial.records.map(r => [r.offset, r.status]),
    [
      ['3', 'replay'],
      ['4', 'unreplayable']
    ]
  )
  assert.match(partial.records[1]?.reason ?? '', /origin is unknown: replay it with a target topic \(--to\)/)

  const toOther = await kafkit(
    'dlq',
    'replay',
    dlq,
    ...common,
    '--to',
    other.topic,
    '--from-offset',
    '1',
    '--to-offset',
    '4',
    '--force',
    '--yes',
    '--json'
  )
  assert.equal(toOther.code, 0, toOther.stdout)
  assert.equal((JSON.parse(toOther.stdout) as { replayed: number }).replayed, 4)
  const moved = await readTopic(brokers, other.topic, 4, { readCommitted: true, quietMs: 1000 })
  assert.deepEqual(
    moved.map(m => header(m, ReplayHeader.replayOf)).sort(),
    [1, 2, 3, 4].map(o => `${dlq}/0@${o}`)
  )
  const foreign = moved.find(m => header(m, ReplayHeader.replayOf) === `${dlq}/0@4`)
  assert.deepEqual(foreign && headerEntries(foreign), [
    ['source', Buffer.from('legacy')],
    [ReplayHeader.replayOf, Buffer.from(`${dlq}/0@4`)]
  ])

  const missing = await kafkit('dlq', 'replay', dlq, ...common, '--to', `${other.topic}-nope`, '--yes')
  assert.equal(missing.code, 1)
  assert.match(missing.stdout, /does not exist: the replay target must exist; .*\[KAFKIT_TOPIC_NOT_FOUND\]/)
})

test('a replay started while another runs publishes each record once', async t => {
  const brokers = bootstrapServers()
  const origin = await createTestTopic({ brokers, partitions: 1, prefix: 'orders.order.race' })
  const dlq = await createTestTopic({ brokers, partitions: 1, prefix: 'orders.order.race-dlq' })
  t.after(async () => {
    await origin.delete()
    await dlq.delete()
    const admin = new Admin({ clientId: 'dlq-replay-test', bootstrapBrokers: brokers })
    await admin.deleteTopics({ topics: [replayLedgerTopic(dlq.topic)] }).catch(() => undefined)
    await admin.close()
  })
  const producer = new Producer<Buffer, Buffer, Buffer, Buffer>({
    clientId: 'dlq-replay-test',
    bootstrapBrokers: brokers,
    idempotent: true
  })
  const writer = new DeadLetterWriter({ producer, groupId: 'race', topic: dlq.topic })
  const count = 40
  for (let i = 0; i < count; i++) {
    const at = new Date()
    await writer.write(
      consumed(origin.topic, {
        ...(originals[0] as Original),
        offset: BigInt(i),
        partition: 0,
        key: Buffer.from(`k${i}`)
      }),
      { reason: 'permanent', error: new PermanentError('bad'), attempts: 1, firstFailureAt: at, lastFailureAt: at }
    )
  }
  await producer.close()

  const connection = { brokers }
  // The second replay starts while the first is publishing (after its 10th transaction), so the
  // second must see the first's committed records in the ledger and fence its open transaction.
  let second: Promise<Awaited<ReturnType<typeof replayDeadLetters>>> | undefined
  const first = replayDeadLetters({
    ...connection,
    topic: dlq.topic,
    batchSize: 1,
    onProgress: progress => {
      if (progress.phase === 'replaying' && progress.done === 10) {
        second = replayDeadLetters({ ...connection, topic: dlq.topic, batchSize: 1 })
        // Settled below, once the first is done; until then a rejection must not count as unhandled.
        second.catch(() => undefined)
      }
    }
  })
  const firstSettled = await first.then(...settled)
  await waitFor(() => second !== undefined, 60_000, 'the second replay to start', 100)
  const outcomes = [firstSettled, await (second as NonNullable<typeof second>).then(...settled)]
  for (const outcome of outcomes) {
    t.diagnostic(
      outcome.status === 'fulfilled'
        ? `replay published ${outcome.value.replayed}, skipped ${outcome.value.alreadyReplayed}`
        : `replay failed: ${String(outcome.reason)}`
    )
    if (outcome.status === 'rejected') {
      const error = outcome.reason as { code?: string }
      assert.equal(error.code, 'KAFKIT_DLQ_REPLAY_FAILED', String(outcome.reason))
    }
  }
  const [firstOutcome, secondOutcome] = outcomes
  assert.equal(firstOutcome?.status, 'rejected', 'the first replay was fenced by the second')
  assert.equal(secondOutcome?.status, 'fulfilled')
  if (secondOutcome?.status === 'fulfilled') {
    assert.ok(secondOutcome.value.alreadyReplayed >= 10, 'the second saw what the first had committed')
  }
  const back = await readTopic(brokers, origin.topic, count, { readCommitted: true, quietMs: 2000 })
  const replayOf = back.map(m => header(m, ReplayHeader.replayOf))
  assert.equal(new Set(replayOf).size, replayOf.length, 'no DLQ record published twice')
  // A fenced replay leaves its records to the next run, which publishes exactly the rest.
  const again = await replayDeadLetters({ ...connection, topic: dlq.topic })
  const total = await readTopic(brokers, origin.topic, count, { readCommitted: true, quietMs: 2000 })
  assert.equal(total.length, count, `${back.length} from the racing replays + ${again.replayed} from the rerun`)
  assert.equal(new Set(total.map(m => header(m, ReplayHeader.replayOf))).size, count)
})

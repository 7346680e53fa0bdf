/**
 * `kafkit dlq list|show` on a real dead-letter topic: records built by the handling layer's
 * buildDeadLetterRecord (as a worker writes them) plus one foreign record, listed, filtered, counted
 * and shown through the real CLI process.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { Producer } from '@platformatic/kafka'
import { buildDeadLetterRecord } from '../../../src/handling/dead-letter.ts'
import { PermanentError, TransientError } from '../../../src/handling/errors.ts'
import type { ConsumedMessage } from '../../../src/handling/types.ts'
import { readStandardHeaders } from '../../../src/message/headers.ts'
import { createTestTopic } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'

const run = promisify(execFile)
const cli = new URL('../../../bin/kafkit.js', import.meta.url).pathname

function failed(topic: string, offset: number, key: string, value: Buffer): ConsumedMessage<unknown, unknown> {
  const headers = new Map([['event-type', Buffer.from('todos.task.created')]])
  return {
    topic,
    partition: 0,
    offset: BigInt(offset),
    timestamp: new Date('2026-11-22T10:00:00Z'),
    key,
    value,
    headers,
    meta: readStandardHeaders(headers),
    raw: { key: Buffer.from(key), value }
  }
}

async function kafkit(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [cli, ...args], { env: { ...process.env, KAFKA_BROKERS: '' } })
  return stdout
}

test('without --brokers or KAFKA_BROKERS the commands use the local Kafka of `kafkit kafka start`, and say so', async () => {
  const help = await kafkit('dlq', 'list', '--help')
  assert.match(
    help.replace(/\s+/g, ' '),
    /default: KAFKA_BROKERS, else 127\.0\.0\.1:9092, the local Kafka of `kafkit kafka start`/
  )
})

test('list filters and counts, show prints one record with its metadata', async t => {
  const brokers = bootstrapServers()
  const { topic: dlq, delete: drop } = await createTestTopic({
    brokers,
    partitions: 1,
    prefix: 'todos.task.events.dlq'
  })
  t.after(drop)
  const producer = new Producer({ clientId: 'dlq-cli-test', bootstrapBrokers: brokers })
  t.after(() => producer.close())
  const at = new Date('2026-11-22T10:00:00Z')
  const build = (origin: string, offset: number, key: string, value: Buffer, error: Error, now: number) =>
    buildDeadLetterRecord(
      failed(origin, offset, key, value),
      {
        reason: error instanceof TransientError ? 'transient' : 'permanent',
        error,
        attempts: 3,
        firstFailureAt: at,
        lastFailureAt: at
      },
      { topic: dlq, groupId: 'todo-workers', now }
    )
  const records = [
    build(
      'todos.task.events',
      7,
      'k1',
      Buffer.from('{bad json'),
      new PermanentError('invalid message: bad JSON'),
      Date.parse('2026-11-22T10:00:00Z')
    ),
    build(
      'todos.task.events',
      9,
      'k1',
      Buffer.from([0xff, 0xfe]),
      new PermanentError('not UTF-8'),
      Date.parse('2026-11-22T11:00:00Z')
    ),
    build(
      'users.account.events',
      3,
      'k2',
      Buffer.from('{"id":2}'),
      new TransientError('connection refused'),
      Date.parse('2026-11-22T12:00:00Z')
    )
  ]
  await producer.send({
    messages: [
      ...records.map(r => ({
        topic: dlq,
        partition: 0,
        ...(r.key === null ? {} : { key: r.key }),
        value: r.value as Buffer,
        headers: new Map(r.headerEntries.map(([name, value]) => [Buffer.from(name), value]))
      })),
      { topic: dlq, partition: 0, key: Buffer.from('x'), value: Buffer.from('written by another tool') }
    ]
  })

  const all = JSON.parse(await kafkit('dlq', 'list', dlq, '--brokers', brokers.join(','), '--json')) as {
    scanned: number
    countsByError: { kind: string; errorClass: string; count: number }[]
    records: { offset: string; key: string; value: string; info: { originTopic: string; errorKind: string } | null }[]
  }
  assert.equal(all.scanned, 4)
  assert.equal(all.records.length, 4, 'the foreign record is listed, not hidden')
  assert.deepEqual(all.countsByError, [
    { kind: 'permanent', errorClass: 'PermanentError', count: 2 },
    { kind: 'transient', errorClass: 'TransientError', count: 1 },
    { kind: 'foreign', errorClass: '-', count: 1 }
  ])
  assert.equal(all.records[0]?.value, '{bad json')
  assert.match(all.records[1]?.value ?? '', /^\(not UTF-8, 2 bytes, base64\) \/\/4=$/)

  const transient = JSON.parse(
    await kafkit('dlq', 'list', dlq, '--brokers', brokers.join(','), '--kind', 'transient', '--json')
  ) as typeof all
  assert.deepEqual(
    transient.records.map(r => r.info?.originTopic),
    ['users.account.events']
  )
  const byOrigin = JSON.parse(
    await kafkit(
      'dlq',
      'list',
      dlq,
      '--brokers',
      brokers.join(','),
      '--origin',
      'todos.task.events',
      '--since',
      '2026-11-22T10:30:00Z',
      '--json'
    )
  ) as typeof all
  assert.deepEqual(
    byOrigin.records.map(r => r.offset),
    ['1']
  )
  const byKey = JSON.parse(
    await kafkit('dlq', 'list', dlq, '--brokers', brokers.join(','), '--key', 'k1', '--json')
  ) as typeof all
  assert.equal(byKey.records.length, 2)

  const byGroup = JSON.parse(
    await kafkit('dlq', 'list', dlq, '--brokers', brokers.join(','), '--group', 'todo-workers', '--json')
  ) as typeof all
  assert.equal(byGroup.records.length, 3, 'the foreign record has no group')
  const otherGroup = JSON.parse(
    await kafkit('dlq', 'list', dlq, '--brokers', brokers.join(','), '--group', 'someone-else', '--json')
  ) as typeof all
  assert.equal(otherGroup.records.length, 0)
  const byOffsets = JSON.parse(
    await kafkit(
      'dlq',
      'list',
      dlq,
      '--brokers',
      brokers.join(','),
      '--partition',
      '0',
      '--from-offset',
      '1',
      '--to-offset',
      '2',
      '--json'
    )
  ) as typeof all
  assert.deepEqual(
    byOffsets.records.map(r => r.offset),
    ['1', '2']
  )
  assert.equal(byOffsets.scanned, 2, 'only the offset range is read')

  const text = await kafkit('dlq', 'list', dlq, '--brokers', brokers.join(','))
  assert.match(
    text,
    /0:0 {2}2026-11-22T10:00:00\.000Z {2}todos\.task\.events\[0\]@7 {2}permanent PermanentError x3: invalid message: bad JSON/
  )
  assert.match(text, /4 of 4 records match/)

  const shown = await kafkit('dlq', 'show', dlq, '0:2', '--brokers', brokers.join(','))
  assert.match(shown, /originTopic +users\.account\.events/)
  assert.match(shown, /consumerGroup +todo-workers/)
  assert.match(shown, /errorMessage +connection refused/)
  assert.match(shown, /value\n\{"id":2\}\n$/)
  await assert.rejects(kafkit('dlq', 'show', dlq, '0:99', '--brokers', brokers.join(',')), /has no record at 0:99/)
})

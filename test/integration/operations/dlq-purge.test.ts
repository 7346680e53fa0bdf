/**
 * DLQ purge on the real broker through the CLI process: a dry run deletes nothing and counts records
 * never replayed (from the replay ledger), no terminal means no purge without --yes, --before per
 * partition and for all partitions moves the earliest offsets, an offset past the end is refused, and
 * --all empties the topic.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { Admin, Producer } from '@platformatic/kafka'
import { buildDeadLetterRecord } from '../../../src/handling/dead-letter.ts'
import { PermanentError } from '../../../src/handling/errors.ts'
import { readStandardHeaders } from '../../../src/message/headers.ts'
import { purgeDeadLetters } from '../../../src/operations/dead-letter-purge.ts'
import { replayDeadLetters, replayLedgerTopic } from '../../../src/operations/dead-letter-replay.ts'
import { createTestTopic } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'

const run = promisify(execFile)
const cli = new URL('../../../bin/kafkit.js', import.meta.url).pathname

async function kafkit(...args: string[]): Promise<{ stdout: string; code: number }> {
  try {
    const { stdout } = await run(process.execPath, [cli, ...args], { env: { ...process.env, KAFKA_BROKERS: '' } })
    return { stdout, code: 0 }
  } catch (error) {
    const failed = error as { stdout: string; stderr: string; code: number }
    return { stdout: `${failed.stdout}${failed.stderr}`, code: failed.code }
  }
}

async function earliest(admin: Admin, topic: string): Promise<bigint[]> {
  const [listed] = await admin.listOffsets({
    topics: [{ name: topic, partitions: [0, 1].map(partitionIndex => ({ partitionIndex, timestamp: -2n })) }]
  })
  return (listed?.partitions ?? []).sort((a, b) => a.partitionIndex - b.partitionIndex).map(p => p.offset)
}

interface PurgeJson {
  dryRun: boolean
  confirmed: boolean
  purged: boolean
  offsets: string
  neverReplayed: number | null
  partitions: {
    partition: number
    earliest: string
    end: string
    before: string
    offsets: string
    earliestAfter?: string
  }[]
}

test('purge: dry run, refusal without a terminal, per partition, everywhere, past the end, all', async t => {
  const brokers = bootstrapServers()
  const origin = await createTestTopic({ brokers, partitions: 1, prefix: 'orders.order.purge' })
  const dlq = await createTestTopic({ brokers, partitions: 2, prefix: 'orders.order.purge-dlq' })
  const admin = new Admin({ clientId: 'dlq-purge-test', bootstrapBrokers: brokers })
  t.after(async () => {
    await origin.delete()
    await dlq.delete()
    await admin.deleteTopics({ topics: [replayLedgerTopic(dlq.topic)] }).catch(() => undefined)
    await admin.close()
  })
  const producer = new Producer<Buffer, Buffer, Buffer, Buffer>({
    clientId: 'dlq-purge-test',
    bootstrapBrokers: brokers,
    idempotent: true
  })
  const at = new Date()
  await producer.send({
    messages: Array.from({ length: 20 }, (_, i) => {
      const headers = new Map<string, Buffer>()
      const record = buildDeadLetterRecord(
        {
          topic: origin.topic,
          partition: 0,
          offset: BigInt(i),
          timestamp: at,
          key: `k${i}`,
          value: null,
          headers,
          meta: readStandardHeaders(headers),
          raw: { key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) }
        },
        { reason: 'permanent', error: new PermanentError('bad'), attempts: 1, firstFailureAt: at, lastFailureAt: at },
        { topic: dlq.topic, groupId: 'purgers' }
      )
      return {
        topic: dlq.topic,
        partition: i % 2,
        key: record.key as Buffer,
        value: record.value as Buffer,
        headers: new Map(record.headerEntries.map(([name, value]) => [Buffer.from(name), value]))
      }
    })
  })
  await producer.close()
  // Replay partition 0's offsets 0..2, so the ledger holds 3 of the records a purge will delete.
  const replayed = await replayDeadLetters({
    brokers,
    topic: dlq.topic,
    filter: { partitions: [0], toOffset: 2n }
  })
  assert.equal(replayed.replayed, 3)
  const common = ['--brokers', brokers.join(',')]

  const dry = await kafkit('dlq', 'purge', dlq.topic, ...common, '--before', '0:4', '--dry-run', '--json')
  assert.equal(dry.code, 0, dry.stdout)
  const plan = JSON.parse(dry.stdout) as PurgeJson
  assert.equal(plan.dryRun, true)
  assert.equal(plan.purged, false)
  assert.equal(plan.offsets, '4')
  assert.equal(plan.neverReplayed, 1, '0:0..0:2 were replayed, 0:3 was not')
  assert.deepEqual(plan.partitions, [{ partition: 0, earliest: '0', end: '10', before: '4', offsets: '4' }])
  const dryText = await kafkit('dlq', 'purge', dlq.topic, ...common, '--before', '0:4', '--dry-run')
  assert.match(dryText.stdout, /^dry run: nothing was deleted\n/)
  assert.match(dryText.stdout, /partition 0: offsets 0\.\.3 of 0\.\.9 \(4\)/)
  assert.match(dryText.stdout, /1 of the records to delete were never replayed/)
  assert.deepEqual(await earliest(admin, dlq.topic), [0n, 0n])

  const refused = await kafkit('dlq', 'purge', dlq.topic, ...common, '--before', '0:4')
  assert.equal(refused.code, 1)
  assert.match(
    refused.stdout,
    /needs confirmation, but stdin is not a terminal: pass --yes .*\[KAFKIT_CONFIRMATION_REQUIRED\]/
  )
  assert.deepEqual(await earliest(admin, dlq.topic), [0n, 0n], 'nothing deleted')

  const one = await kafkit('dlq', 'purge', dlq.topic, ...common, '--before', '0:4', '--yes', '--json')
  assert.equal(one.code, 0, one.stdout)
  const onePurged = JSON.parse(one.stdout) as PurgeJson
  assert.equal(onePurged.purged, true)
  assert.equal(onePurged.partitions[0]?.earliestAfter, '4')
  assert.deepEqual(await earliest(admin, dlq.topic), [4n, 0n], 'partition 0 starts at 4 now; partition 1 untouched')
  const left = JSON.parse((await kafkit('dlq', 'list', dlq.topic, ...common, '--json')).stdout) as { scanned: number }
  assert.equal(left.scanned, 16)

  const everywhere = await kafkit('dlq', 'purge', dlq.topic, ...common, '--before', '6', '--yes')
  assert.equal(everywhere.code, 0, everywhere.stdout)
  assert.match(everywhere.stdout, /deleted; earliest offsets now 0:6, 1:6/)
  assert.deepEqual(await earliest(admin, dlq.topic), [6n, 6n])

  const past = await kafkit('dlq', 'purge', dlq.topic, ...common, '--before', '1:99', '--yes')
  assert.equal(past.code, 1)
  assert.match(
    past.stdout,
    /partition 1 of .* ends at offset 10: cannot delete before 99; use 1:10 to delete all of it \[KAFKIT_DLQ_PURGE_FAILED\]/
  )
  const noPartition = await kafkit('dlq', 'purge', dlq.topic, ...common, '--before', '7:1', '--yes')
  assert.match(noPartition.stdout, /has no partition 7 \(it has 2\) \[KAFKIT_DLQ_PURGE_FAILED\]/)
  const nothing = await kafkit('dlq', 'purge', dlq.topic, ...common, '--before', '3', '--yes')
  assert.match(nothing.stdout, /nothing to delete/)
  const neither = await kafkit('dlq', 'purge', dlq.topic, ...common, '--yes')
  assert.match(neither.stdout, /say what to delete: --before .* or --all \[KAFKIT_CONFIG_INVALID\]/)

  const all = await purgeDeadLetters({ brokers, topic: dlq.topic, before: 'end' })
  assert.equal(all.purged, true)
  assert.equal(all.offsets, 8n)
  assert.equal(all.neverReplayed, 8)
  assert.deepEqual(await earliest(admin, dlq.topic), [10n, 10n])
  const empty = JSON.parse((await kafkit('dlq', 'list', dlq.topic, ...common, '--json')).stdout) as { scanned: number }
  assert.equal(empty.scanned, 0)
})

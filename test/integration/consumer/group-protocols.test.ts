/**
 * Group protocols on the real broker: eager (classic + roundrobin), cooperative (classic +
 * cooperative-sticky) and the consumer protocol (KIP-848). A second worker joins while the first is
 * busy: partitions move, the first one lets go of them (revoked event), every record is handled at
 * least once, each partition in order within one owner, and the group's lag ends at 0. Static
 * membership is passed through to the group (the broker reports the instance id). The consumer
 * circuit breaker pauses the worker during an outage without committing or dead-lettering.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { Consumer, type ConsumerInit } from '../../../src/consumer/consumer.ts'
import { TransientError } from '../../../src/handling/errors.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { committedOffsets, committedSum, produceKeyed, quiet, sleep, waitFor } from './helpers.ts'

const protocols: { name: string; options: Pick<ConsumerInit, 'groupProtocol' | 'assignor'> }[] = [
  { name: 'eager (classic, roundrobin)', options: { groupProtocol: 'classic', assignor: 'roundrobin' } },
  {
    name: 'cooperative (classic, cooperative-sticky)',
    options: { groupProtocol: 'classic', assignor: 'cooperative-sticky' }
  },
  { name: 'consumer protocol (KIP-848)', options: { groupProtocol: 'consumer' } }
]

for (const { name, options } of protocols) {
  test(`${name}: a second worker joins, partitions move, nothing is lost and lag ends at 0`, async t => {
    const brokers = bootstrapServers()
    const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 4 })
    t.after(drop)
    await produceKeyed(brokers, topic, 1000, { keys: 40 })
    const groupId = uniqueName('group')
    const handled = new Map<string, bigint[]>()
    const revoked: number[] = []
    const make = (who: string) =>
      new Consumer<{ seq: number }>({
        ...options,
        brokers,
        groupId,
        topics: [topic],
        startOffset: 'earliest',
        ensureTopics: false,
        heartbeatIntervalMs: 500,
        sessionTimeoutMs: 6000,
        rebalanceTimeoutMs: 10_000,
        revokeDrainMs: 1000,
        logger: process.env.VERBOSE ? { ...quiet, warn: (f: object, m: string) => console.error(who, m, f) } : quiet,
        env: {},
        handler: async message => {
          await sleep(2) // simulated work
          const id = `${who}:${message.partition}`
          const list = handled.get(id) ?? []
          list.push(message.offset)
          handled.set(id, list)
        }
      })
    const first = make('first')
    first.on('revoked', partitions => revoked.push(...partitions.map(p => p.partition)))
    await first.start()
    await waitFor(() => first.metrics().processed >= 100, 60_000, 'the first worker to be busy')
    const second = make('second')
    await second.start()
    await waitFor(
      () => second.assignments().length > 0 && first.assignments().length < 4,
      60_000,
      'partitions to move to the second worker'
    )
    await produceKeyed(brokers, topic, 1000, { keys: 40, start: 1000 })
    const distinct = () =>
      new Set([...handled].flatMap(([id, offsets]) => offsets.map(o => `${id.split(':')[1]}:${o}`)))
    await waitFor(() => distinct().size >= 2000, 90_000, 'every record handled')
    // Records the first worker handled on a moved partition but could not commit before the move are
    // handled again by the second (at-least-once); the group's lag then returns to 0 while both run.
    await committedSum(brokers, groupId, topic, 2000, 60_000)
    await Promise.all([first.stop(), second.stop()])
    const handlings = [...handled.values()].reduce((n, offsets) => n + offsets.length, 0)
    t.diagnostic(`${handlings} handlings for 2000 records; ${revoked.length} partitions revoked from the first worker`)

    assert.ok(revoked.length > 0, 'the first worker let go of partitions')
    for (const [id, offsets] of handled) {
      // Within one owner a partition is handled in order; a redelivery after a move starts over lower.
      const runs = offsets.filter((offset, i) => i > 0 && offset <= (offsets[i - 1] as bigint)).length
      assert.ok(runs <= 2, `${id}: handled in order (${runs} restarts)`)
    }
    const committed = await committedOffsets(brokers, groupId, topic)
    const sum = [...committed.values()].reduce((a, b) => a + b, 0n)
    assert.equal(sum, 2000n, 'the group committed every partition to its end')
  })
}

test('static membership: the group knows the worker by its instance id', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers })
  t.after(drop)
  const groupId = uniqueName('group')
  const consumer = new Consumer({
    brokers,
    groupId,
    topics: [topic],
    groupInstanceId: 'worker-7',
    ensureTopics: false,
    logger: quiet,
    env: {},
    handler: () => Promise.resolve()
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await waitFor(() => consumer.assignments().length === 1, 30_000, 'the assignment')
  const admin = new Admin({ clientId: 'kafkit-consumer-test', bootstrapBrokers: brokers })
  try {
    const groups = await admin.describeGroups({ groups: [groupId] })
    const members = [...(groups.get(groupId)?.members.values() ?? [])]
    assert.deepEqual(
      members.map(member => member.groupInstanceId),
      ['worker-7']
    )
  } finally {
    await admin.close()
  }
})

test('circuit breaker: an outage pauses the worker (health paused), nothing is committed or dead-lettered; recovery resumes it', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers })
  t.after(drop)
  await produceKeyed(brokers, topic, 20, { keys: 1 })
  const groupId = uniqueName('group')
  let down = true
  const health: string[] = []
  const consumer = new Consumer<{ seq: number }>({
    brokers,
    groupId,
    topics: [topic],
    startOffset: 'earliest',
    ensureTopics: false,
    commitStrategy: 'message',
    maxRetries: 3,
    retryBackoff: { baseMs: 1, maxMs: 10 },
    breaker: { threshold: 3, cooldownMs: 300 },
    logger: quiet,
    env: {},
    handler: () => (down ? Promise.reject(new TransientError('database unavailable')) : Promise.resolve())
  })
  consumer.on('health', change => health.push(change.to))
  await consumer.start()
  await waitFor(() => consumer.health === 'paused', 30_000, 'the breaker to open')
  // A fixed wait: during this outage nothing may be dead-lettered, handled or committed.
  await sleep(1500)
  assert.equal(consumer.metrics().deadLettered, 0, 'nothing dead-lettered during the outage')
  assert.equal(consumer.metrics().processed, 0)
  assert.equal((await committedOffsets(brokers, groupId, topic)).get(0) ?? -1n, -1n, 'nothing committed')
  down = false
  await waitFor(() => consumer.metrics().processed >= 20, 30_000, 'recovery')
  await consumer.stop()
  assert.equal(consumer.metrics().deadLettered, 0)
  assert.ok(health.includes('paused') && health.includes('running'))
  assert.equal((await committedOffsets(brokers, groupId, topic)).get(0), 20n)
})

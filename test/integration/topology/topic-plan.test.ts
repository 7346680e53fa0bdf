/** Plan and apply against the real broker: create, grow, configure, and refuse what Kafka cannot do. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { uniqueName } from '../../../src/testing/topics.ts'
import { ensureTopics, planTopics } from '../../../src/topology/topic-plan.ts'
import { bootstrapServers } from '../../helpers/env.ts'

/** The connection options every public entry point takes. */
const connection = { brokers: bootstrapServers() }

test('create, then unchanged, then grow partitions and raise retention', async t => {
  const admin = new Admin({ clientId: 'topology-test', bootstrapBrokers: bootstrapServers() })
  const name = `kafkit.topology.${uniqueName('plan')}`
  t.after(async () => {
    await admin.deleteTopics({ topics: [name] }).catch(() => undefined)
    await admin.close()
  })

  const first = await ensureTopics(connection, [
    { name, partitions: 2, configs: { 'cleanup.policy': 'delete' }, atLeast: { 'retention.ms': 3_600_000 } }
  ])
  assert.equal(first.entries[0]?.action, 'create')
  const again = await planTopics(connection, [{ name, partitions: 2, atLeast: { 'retention.ms': 3_600_000 } }])
  assert.equal(again.entries[0]?.action, 'unchanged')

  const grow = await ensureTopics(connection, [{ name, partitions: 4, atLeast: { 'retention.ms': 7_200_000 } }])
  const entry = grow.entries[0]
  assert.equal(entry?.action, 'update')
  assert.deepEqual(entry?.action === 'update' ? entry.changes : [], [
    { kind: 'partitions', from: 2, to: 4 },
    { kind: 'config', key: 'retention.ms', from: '3600000', to: '7200000' }
  ])
  const settled = await planTopics(connection, [{ name, partitions: 4, atLeast: { 'retention.ms': 7_200_000 } }])
  assert.equal(settled.entries[0]?.action, 'unchanged')
})

test('fewer partitions than exist is a conflict that changes nothing', async t => {
  const admin = new Admin({ clientId: 'topology-test', bootstrapBrokers: bootstrapServers() })
  const name = uniqueName('plan-conflict')
  t.after(async () => {
    await admin.deleteTopics({ topics: [name] }).catch(() => undefined)
    await admin.close()
  })
  const created = await ensureTopics(connection, [{ name, partitions: 3 }])
  assert.ok(created.warnings.length > 0, 'an unconventional name is a warning, not an error')
  await assert.rejects(
    ensureTopics(connection, [{ name, partitions: 1, configs: { 'retention.ms': '1000' } }]),
    error => {
      assert.ok(isKafkitError(error))
      assert.equal(error.code, 'KAFKIT_TOPIC_CONFLICT')
      assert.match(error.message, /has 3 partitions and the spec wants 1: Kafka cannot remove partitions/)
      return true
    }
  )
  const plan = await planTopics(connection, [{ name, partitions: 3, configs: { 'retention.ms': '1000' } }])
  assert.equal(plan.entries[0]?.action, 'update', 'the refused config change was not applied')
})

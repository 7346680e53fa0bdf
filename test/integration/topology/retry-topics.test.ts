/** Retry and DLQ topic provisioning on the real broker: create like the origin, accept what fits, refuse misfits. */
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { Admin, ConfigResourceTypes } from '@platformatic/kafka'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { uniqueName } from '../../../src/testing/topics.ts'
import { ensureRetryTopics, planRetryTopics } from '../../../src/topology/retry-topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { waitFor } from '../../helpers/wait.ts'

const DAY = 86_400_000

function adminFor(t: TestContext, topics: string[]): Admin {
  const admin = new Admin({ clientId: 'retry-topics-test', bootstrapBrokers: bootstrapServers() })
  t.after(async () => {
    const existing = new Set(await admin.listTopics())
    const mine = topics.filter(x => existing.has(x))
    if (mine.length > 0) await admin.deleteTopics({ topics: mine }).catch(() => undefined)
    await admin.close()
  })
  return admin
}

/** Creates a topic and waits until the broker lists it with a leader per partition. */
async function create(
  admin: Admin,
  topic: string,
  partitions: number,
  config: Record<string, string> = {}
): Promise<void> {
  await admin.createTopics({
    topics: [topic],
    partitions,
    replicas: 1,
    configs: Object.entries(config).map(([name, value]) => ({ name, value }))
  })
  await waitFor(
    async () => {
      const listed = (await admin.listTopics()).includes(topic)
      const info = (await admin.metadata({ topics: [topic], forceUpdate: true })).topics.get(topic)
      return listed && info?.partitionsCount === partitions && info.partitions.every(p => p.leader >= 0)
    },
    30_000,
    `${topic} to appear with a leader per partition`,
    100
  )
}

async function configs(admin: Admin, topic: string): Promise<Map<string, string | null | undefined>> {
  const [described] = await admin.describeConfigs({
    resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic }]
  })
  return new Map(described?.configs.map(c => [c.name, c.value] as const) ?? [])
}

async function partitionsOf(admin: Admin, topic: string): Promise<number | undefined> {
  return (await admin.metadata({ topics: [topic], forceUpdate: true })).topics.get(topic)?.partitionsCount
}

test('creates missing tier and DLQ topics like the origin, then finds them fitting', async t => {
  const origin = `kafkit.retries.${uniqueName('create')}`
  const retry1 = `${origin}.retry.250ms`
  const retry2 = `${origin}.retry.1s500ms`
  const dlq = `${origin}.dlq`
  const admin = adminFor(t, [origin, retry1, retry2, dlq])
  await create(admin, origin, 3, { 'max.message.bytes': '2097152' })

  const planned = await planRetryTopics(admin, origin, [250, '1.5s'])
  assert.deepEqual(
    planned.topics.map(x => [x.topic, x.action]),
    [
      [retry1, 'create'],
      [retry2, 'create'],
      [dlq, 'create']
    ]
  )
  assert.deepEqual(planned.warnings, [], 'a conventional origin gives conventional derived names')
  assert.deepEqual(await admin.listTopics().then(list => list.filter(x => x.startsWith(`${origin}.`))), [])

  const created = await ensureRetryTopics({ brokers: bootstrapServers() }, origin, [250, '1.5s'])
  assert.deepEqual(created.origin, { topic: origin, partitions: 3, replicationFactor: 1, maxMessageBytes: 2_097_152 })
  for (const topic of [retry1, retry2, dlq]) {
    assert.equal(await partitionsOf(admin, topic), 3, topic)
    const config = await configs(admin, topic)
    assert.equal(config.get('cleanup.policy'), 'delete', topic)
    assert.equal(config.get('max.message.bytes'), String(2_097_152 + 65_536), topic)
    assert.equal(config.get('retention.ms'), String(topic === dlq ? 30 * DAY : 7 * DAY), topic)
  }

  const again = await ensureRetryTopics(admin, origin, [250, '1.5s'])
  assert.deepEqual(
    again.topics.map(x => x.action),
    ['fits', 'fits', 'fits']
  )
  assert.deepEqual(again.warnings, [])
})

test('retention defaults to four times the longest delay when that exceeds a week', async t => {
  const origin = `kafkit.retries.${uniqueName('long')}`
  const retry = `${origin}.retry.3d`
  const dlq = `${origin}.dlq`
  const admin = adminFor(t, [origin, retry, dlq])
  await create(admin, origin, 1)
  await ensureRetryTopics(admin, origin, ['3d'])
  assert.equal((await configs(admin, retry)).get('retention.ms'), String(12 * DAY))
  assert.equal((await configs(admin, dlq)).get('retention.ms'), String(30 * DAY))
})

test('existing topics that fit are used as they are, with advice when weaker than recommended', async t => {
  const origin = `kafkit.retries.${uniqueName('fit')}`
  const retry = `${origin}.retry.1s`
  const dlq = `${origin}.dlq`
  const admin = adminFor(t, [origin, retry, dlq])
  await create(admin, origin, 2)
  // More partitions than the origin fit; a retention above the delay but under a week is advice only.
  await create(admin, retry, 4, { 'retention.ms': '3600000' })
  await create(admin, dlq, 1)

  const result = await ensureRetryTopics(admin, origin, ['1s'])
  assert.deepEqual(
    result.topics.map(x => [x.topic, x.action]),
    [
      [retry, 'fits'],
      [dlq, 'fits']
    ]
  )
  assert.equal(await partitionsOf(admin, retry), 4, 'an existing topic is never altered')
  assert.equal((await configs(admin, retry)).get('retention.ms'), '3600000')
  assert.equal(result.warnings.length, 2, result.warnings.join('\n'))
  assert.match(
    result.warnings[0] ?? '',
    /retry\.1s .*keeps records 3600000 ms \(1h\); 604800000 ms \(7d\) is recommended/
  )
  assert.match(
    result.warnings[1] ?? '',
    /\.dlq keeps records 604800000 ms \(7d\); 2592000000 ms \(30d\) is recommended/
  )
})

test('misfits are refused with what is wrong and what to do, before anything is created', async t => {
  const origin = `kafkit.retries.${uniqueName('misfit')}`
  const retry1 = `${origin}.retry.1s`
  const retry2 = `${origin}.retry.1m`
  const retry3 = `${origin}.retry.1h`
  const dlq = `${origin}.dlq`
  const admin = adminFor(t, [origin, retry1, retry2, retry3, dlq])
  await create(admin, origin, 3)
  await create(admin, retry1, 1)
  await create(admin, retry2, 3, { 'retention.ms': '30000' })
  await create(admin, dlq, 1, { 'cleanup.policy': 'compact' })

  await assert.rejects(ensureRetryTopics(admin, origin, ['1s', '1m', '1h']), error => {
    assert.ok(isKafkitError(error))
    assert.equal(error.code, 'KAFKIT_RETRY_TOPIC_MISFIT')
    assert.match(
      error.message,
      new RegExp(
        `retry topic ${retry1.replaceAll('.', '\\.')} \\(tier 1, delay 1s\\) has 1 partition\\(s\\), fewer than its origin .*'s 3: grow it with kafka-topics\\.sh --alter --topic ${retry1.replaceAll('.', '\\.')} --partitions 3`
      )
    )
    assert.match(
      error.message,
      /\(tier 2, delay 1m\) keeps records 30000 ms \(30s\), not longer than its delay 60000 ms \(1m\)/
    )
    assert.match(
      error.message,
      /DLQ .*\.dlq has cleanup\.policy=compact: compaction keeps only the last record per key/
    )
    assert.deepEqual(
      (error.details.topics as { topic: string }[]).map(x => x.topic),
      [retry1, retry2, dlq]
    )
    return true
  })
  const existing = await admin.listTopics()
  assert.ok(!existing.includes(retry3), 'the missing tier was not created while others misfit')

  const plan = await planRetryTopics(admin, origin, ['1s', '1m', '1h'])
  assert.deepEqual(
    plan.topics.map(x => x.action),
    ['misfit', 'misfit', 'create', 'misfit']
  )
})

test('a missing origin and a retention not longer than a delay are errors', async t => {
  const origin = `kafkit.retries.${uniqueName('none')}`
  const admin = adminFor(t, [origin])
  await assert.rejects(ensureRetryTopics(admin, origin, ['1s']), error => {
    assert.ok(isKafkitError(error))
    assert.equal(error.code, 'KAFKIT_TOPIC_NOT_FOUND')
    assert.match(error.message, /does not exist: create the origin topic first/)
    return true
  })
  await create(admin, origin, 1)
  await assert.rejects(ensureRetryTopics(admin, origin, ['1h'], { retentionMs: 3_600_000 }), error => {
    assert.ok(isKafkitError(error))
    assert.equal(error.code, 'KAFKIT_CONFIG_INVALID')
    assert.match(error.message, /retentionMs 3600000 is not longer than retry tier 1's delay/)
    return true
  })
})

test('unconventional names are created with a warning', async t => {
  const origin = uniqueName('Legacy_Topic')
  const retry = `${origin}.retry.1s`
  const dlq = `${origin}.dlq`
  const admin = adminFor(t, [origin, retry, dlq])
  await create(admin, origin, 1)
  const result = await ensureRetryTopics(admin, origin, ['1s'])
  assert.ok(result.warnings.some(w => w.includes('<domain>.<entity>.<event-type>')))
  assert.equal(await partitionsOf(admin, retry), 1)
  assert.equal(await partitionsOf(admin, dlq), 1)
})

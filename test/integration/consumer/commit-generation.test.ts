/**
 * Commits in a given generation (src/kafka/commit-in-generation.ts), on the real broker. Once the group has moved
 * on, a commit in the old generation is refused and lands nothing: the client's own commit() would
 * re-join and send it again in the new generation, over the position of the partition's new owner.
 * The same request in the current generation lands (the control).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Consumer as ClientConsumer, MessagesStreamModes, type MessagesStream } from '@platformatic/kafka'
import { commitInGeneration } from '../../../src/kafka/commit-in-generation.ts'
import { closeGroupClient, consumeStream } from '../../../src/consumer/consume-stream.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { eventually } from '../../helpers/wait.ts'
import { committedOffsets, waitFor } from './helpers.ts'

type Client = ClientConsumer<Buffer, Buffer, Buffer, Buffer>

async function member(
  brokers: string[],
  groupId: string,
  topic: string
): Promise<{ client: Client; stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> }> {
  const client: Client = new ClientConsumer({
    clientId: 'kafkit-commit-test',
    bootstrapBrokers: brokers,
    groupId,
    autocommit: false,
    sessionTimeout: 10_000,
    heartbeatInterval: 300,
    rebalanceTimeout: 10_000
  })
  const stream = await consumeStream(
    client,
    { topics: [topic], mode: MessagesStreamModes.LATEST, autocommit: false },
    () => undefined
  )
  return { client, stream }
}

test('a commit in a generation the group has left is refused and lands nothing; in the current one it lands', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 2 })
  t.after(drop)
  const groupId = uniqueName('group')
  const first = await member(brokers, groupId, topic)
  t.after(() => closeGroupClient(first.client))
  await waitFor(() => first.client.memberId !== null && first.client.generationId > 0, 30_000, 'the first join')
  const old = { generation: first.client.generationId, memberId: first.client.memberId as string }

  // A second member joins: the group moves to a new generation, and the first member follows it.
  const second = await member(brokers, groupId, topic)
  t.after(() => closeGroupClient(second.client))
  await waitFor(
    () => second.client.generationId > old.generation && first.client.generationId === second.client.generationId,
    30_000,
    'both members in the new generation'
  )

  const offsets = [{ topic, partition: 0, offset: 5n, leaderEpoch: -1 }]
  await assert.rejects(
    commitInGeneration(first.client, groupId, old, offsets),
    (error: Error & { errors?: { apiId?: string }[] }) => {
      assert.match(
        JSON.stringify(error.errors?.map(e => e.apiId) ?? error.message),
        /ILLEGAL_GENERATION|REBALANCE_IN_PROGRESS/
      )
      return true
    }
  )
  assert.equal(
    (await committedOffsets(brokers, groupId, topic)).get(0) ?? -1n,
    -1n,
    'the refused commit landed nothing'
  )

  // The control: the same request in the generation the group is in now lands.
  const current = { generation: first.client.generationId, memberId: first.client.memberId as string }
  // The group may still be completing its rebalance (REBALANCE_IN_PROGRESS): try for a while.
  let landed: unknown = new Error('not tried')
  await eventually(
    async () => {
      landed = await commitInGeneration(first.client, groupId, current, offsets).catch((error: unknown) => error)
      return landed === undefined
    },
    10_000,
    200
  )
  assert.equal(landed, undefined, 'the commit in the current generation was accepted')
  assert.equal((await committedOffsets(brokers, groupId, topic)).get(0), 5n)
  first.stream.destroy()
  second.stream.destroy()
})

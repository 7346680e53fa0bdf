import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { MessageToProduce, ProduceResult } from '@platformatic/kafka'
import { PartitionLanes, PartitionSendsFailure, sendPerPartition } from '../../../src/producer/partition-sends.ts'

type Bytes = MessageToProduce<Buffer, Buffer, Buffer, Buffer>
const message = (partition: number, n: number): Bytes => ({ topic: 't', partition, value: Buffer.from(String(n)) })

test("a partition's next send waits until its previous one settled, even a failed one; other partitions do not wait", async () => {
  const lanes = new PartitionLanes()
  const log: string[] = []
  let failFirst!: (error: Error) => void
  const first = lanes.run('t:0', () => new Promise<string>((_resolve, reject) => (failFirst = reject)))
  first.catch(() => log.push('first failed'))
  const second = lanes.run('t:0', () => {
    log.push('second started')
    return Promise.resolve('second')
  })
  const other = lanes.run('t:1', () => {
    log.push('other started')
    return Promise.resolve('other')
  })
  assert.equal(await other, 'other')
  assert.deepEqual(log, ['other started'], 'partition 0 still waits for its first send')
  failFirst(new Error('NOT_LEADER_OR_FOLLOWER'))
  assert.equal(await second, 'second')
  assert.deepEqual(log, ['other started', 'first failed', 'second started'])
})

test('a batch goes out as one send per partition, in order within each, and the offsets come back merged', async () => {
  const sends: number[][] = []
  const send = (options: { messages: Bytes[] }): Promise<ProduceResult> => {
    sends.push(options.messages.map(m => Number(m.value?.toString())))
    const { partition } = options.messages[0] as Bytes
    return Promise.resolve({
      offsets: [{ topic: 't', partition: partition as number, offset: BigInt(100 * (partition as number)) }]
    })
  }
  const result = await sendPerPartition(
    send,
    [message(0, 1), message(1, 2), message(0, 3), message(2, 4)],
    -1,
    new PartitionLanes()
  )
  assert.deepEqual(sends, [[1, 3], [2], [4]])
  assert.deepEqual(
    result.offsets?.map(o => `${o.partition}@${o.offset}`),
    ['0@0', '1@100', '2@200']
  )
})

test('when one partition fails, the failure says which partitions were written and which not', async () => {
  const send = (options: { messages: Bytes[] }): Promise<ProduceResult> => {
    const { partition } = options.messages[0] as Bytes
    if (partition === 1) return Promise.reject(new Error('NOT_ENOUGH_REPLICAS'))
    return Promise.resolve({ offsets: [{ topic: 't', partition: partition as number, offset: 7n }] })
  }
  await assert.rejects(
    sendPerPartition(send, [message(0, 1), message(1, 2)], -1, new PartitionLanes()),
    (error: unknown) => {
      assert.ok(error instanceof PartitionSendsFailure)
      assert.deepEqual([...error.outcomes.written], [['t:0', 7n]])
      assert.deepEqual([...error.outcomes.failed.keys()], ['t:1'])
      assert.match(String((error.error as Error).message), /NOT_ENOUGH_REPLICAS/)
      return true
    }
  )
})

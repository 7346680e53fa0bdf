import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Consumer } from '../../../src/consumer/consumer.ts'
import { Producer } from '../../../src/producer/producer.ts'

const base = { brokers: ['127.0.0.1:1'], env: {}, groupId: 'g', topics: ['t'], handler: () => Promise.resolve() }

test('a Kafkit producer of any value type may be shared for dead-letter writes; a transactional one is refused', t => {
  const shared = new Producer<{ orderId: string }>({ brokers: ['127.0.0.1:1'], env: {} })
  const transactional = new Producer({ brokers: ['127.0.0.1:1'], env: {}, transactionalId: 'tx-1' })
  t.after(async () => {
    await shared.close()
    await transactional.close()
  })
  const consumer = new Consumer({ ...base, producer: shared })
  assert.equal(consumer.health, 'idle')
  assert.throws(() => new Consumer({ ...base, producer: transactional }), {
    code: 'KAFKIT_CONFIG_INVALID',
    details: { key: 'producer' }
  })
})

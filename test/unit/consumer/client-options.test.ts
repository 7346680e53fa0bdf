import assert from 'node:assert/strict'
import { test } from 'node:test'
import { clientOptions, streamOptions } from '../../../src/consumer/client-options.ts'
import { consumerOptions, type ConsumerOptions } from '../../../src/consumer/options.ts'
import { FetchIsolationLevels, MessagesStreamFallbackModes, MessagesStreamModes } from '../../../src/kafka/client.ts'

const resolve = (options: Partial<ConsumerOptions> = {}) =>
  consumerOptions.resolve({ brokers: ['b:9092'], groupId: 'g', topics: ['t'], ...options }, { env: {} })

test('classic protocol: auto-commit off, the group timeouts and the assignor', () => {
  const options = clientOptions(
    resolve({ assignor: 'cooperative-sticky', sessionTimeoutMs: 30_000, groupInstanceId: 'worker-1' })
  ) as unknown as Record<string, unknown>
  assert.equal(options.groupId, 'g')
  assert.equal(options.autocommit, false)
  assert.equal(options.groupProtocol, 'classic')
  assert.equal(options.sessionTimeout, 30_000)
  assert.equal(options.groupInstanceId, 'worker-1')
  assert.deepEqual(options.protocols, [{ name: 'cooperative-sticky', version: 1 }])
})

test('consumer protocol: no assignor, a session no longer than the rebalance timeout', () => {
  const options = clientOptions(
    resolve({ groupProtocol: 'consumer', sessionTimeoutMs: 45_000, rebalanceTimeoutMs: 20_000 })
  ) as unknown as Record<string, unknown>
  assert.equal(options.groupProtocol, 'consumer')
  assert.equal(options.rebalanceTimeout, 20_000)
  assert.equal(options.sessionTimeout, 20_000)
  assert.equal(options.protocols, undefined)
  assert.equal('groupInstanceId' in options, false)
})

test('the stream: from the committed offsets, the fallback and isolation level as configured', () => {
  const latest = streamOptions(resolve({ maxPollRecords: 50 }))
  assert.equal(latest.mode, MessagesStreamModes.COMMITTED)
  assert.equal(latest.fallbackMode, MessagesStreamFallbackModes.LATEST)
  assert.equal(latest.autocommit, false)
  assert.equal(latest.highWaterMark, 50)
  assert.equal(latest.isolationLevel, FetchIsolationLevels.READ_COMMITTED)
  const earliest = streamOptions(resolve({ startOffset: 'earliest', isolationLevel: 'read_uncommitted' }))
  assert.equal(earliest.fallbackMode, MessagesStreamFallbackModes.EARLIEST)
  assert.equal(earliest.isolationLevel, FetchIsolationLevels.READ_UNCOMMITTED)
})

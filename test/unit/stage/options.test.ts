/**
 * A Stage refuses what exactly-once cannot honour at construction, before it opens anything: the
 * consumer group protocol, middleware, retry tiers; and bad stage options name the key.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { Stage, type StageInit } from '../../../src/stage/stage.ts'

const base = { brokers: ['127.0.0.1:1'], groupId: 'g', topics: ['in'], env: {}, transform: () => null }

const refused: [string, Partial<StageInit>][] = [
  ['retry tiers', { retry: { tiers: ['1s'] } }],
  ['middleware', { middleware: [] }],
  ['the consumer group protocol', { groupProtocol: 'consumer' }]
]
for (const [what, extra] of refused) {
  test(`exactly-once refuses ${what} at construction`, () => {
    assert.throws(
      () => new Stage({ ...base, ...extra, delivery: 'exactly-once' }),
      (error: unknown) =>
        isKafkitError(error) && error.code === 'KAFKIT_CONFIG_INVALID' && /exactly-once/.test(error.message)
    )
  })
}

test('a bad transaction bound names the key', () => {
  assert.throws(
    () => new Stage({ ...base, delivery: 'exactly-once', transaction: { maxRecords: 0 } }),
    (error: unknown) => isKafkitError(error) && /transaction\.maxRecords/.test(error.message)
  )
})

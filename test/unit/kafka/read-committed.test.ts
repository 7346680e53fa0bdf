/**
 * dropAbortedBatches on hand-built fetch responses: several aborted transactions of one producer in one
 * fetch, interleaved with its committed ones and another producer's, and an aborted transaction whose
 * marker is beyond the fetch.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { dropAbortedBatches } from '../../../src/kafka/read-committed.ts'

const TX = 1 << 4
const CONTROL = 1 << 5

function data(producerId: bigint, firstOffset: bigint, count = 2) {
  return { firstOffset, lastOffsetDelta: count - 1, attributes: TX, producerId, records: [{ key: null }] }
}
function marker(producerId: bigint, offset: bigint, type: 0 | 1) {
  const key = Buffer.alloc(4)
  key.writeInt16BE(type, 2)
  return { firstOffset: offset, lastOffsetDelta: 0, attributes: TX | CONTROL, producerId, records: [{ key }] }
}

test('every aborted transaction of a producer is dropped, committed ones and control batches stay', () => {
  const partition = {
    records: [
      data(1n, 0n), // aborted
      marker(1n, 2n, 0),
      data(1n, 3n), // committed
      data(2n, 5n), // other producer, committed
      marker(1n, 7n, 1),
      data(1n, 8n), // aborted
      marker(2n, 10n, 1),
      marker(1n, 11n, 0),
      data(1n, 12n), // aborted, marker not in this fetch
      { firstOffset: 14n, lastOffsetDelta: 0, attributes: 0, producerId: -1n, records: [{ key: null }] }
    ],
    abortedTransactions: [
      { producerId: 1n, firstOffset: 8n },
      { producerId: 1n, firstOffset: 0n },
      { producerId: 1n, firstOffset: 12n }
    ]
  }
  dropAbortedBatches(partition)
  assert.deepEqual(
    partition.records.map(batch => `${batch.producerId}@${batch.firstOffset}`),
    ['1@2', '1@3', '2@5', '1@7', '2@10', '1@11', '-1@14']
  )
})

test('without aborted transactions nothing is dropped', () => {
  const partition = { records: [data(1n, 0n), marker(1n, 2n, 1)], abortedTransactions: [] }
  dropAbortedBatches(partition)
  assert.equal(partition.records.length, 2)
})

/**
 * Kafkit's murmur2 is Java's: the expected hashes below were printed by
 * `org.apache.kafka.common.utils.Utils.murmur2` / `toPositive` from kafka-clients 4.1.1 (the same
 * cases as Kafka's own UtilsTest plus a few more), and random keys agree with @platformatic/kafka's
 * BigInt port. The integration test test/integration/producer/partitioner-java.test.ts checks the
 * partitions against Kafka's Java producer on a broker.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { murmur2 as clientMurmur2 } from '@platformatic/kafka'
import { keyPartition, murmur2, toPositive } from '../../../src/producer/murmur2.ts'

const javaHashes: [string, number, number][] = [
  // key, Utils.murmur2(key.getBytes(UTF_8)), toPositive(hash) % 7
  ['', 275646681, 2],
  ['a', -1563381124, 5],
  ['ab', 316155434, 0],
  ['abc', 479470107, 4],
  ['21', -973932308, 3],
  ['foobar', -790332482, 0],
  ['a-little-bit-long-string', -985981536, 1],
  ['a-little-bit-longer-string', -1486304829, 0],
  ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971, 3],
  ['booking-12345', 1708193051, 5],
  ['ünïcødé-κλειδί', 1675575438, 5]
]

test('murmur2 gives the hashes and partitions the Java client computes', () => {
  for (const [key, hash, partition] of javaHashes) {
    const bytes = Buffer.from(key, 'utf8')
    assert.equal(murmur2(bytes), hash, `murmur2(${JSON.stringify(key)})`)
    assert.equal(keyPartition(bytes, 7), partition, `partition of ${JSON.stringify(key)} over 7`)
  }
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  assert.equal(murmur2(all), -1948347274, 'every byte value, bytes >= 0x80 included')
})

test('toPositive clears the sign bit like Java (not Math.abs)', () => {
  assert.equal(toPositive(-1), 0x7fffffff)
  assert.equal(toPositive(-2147483648), 0)
  assert.equal(toPositive(5), 5)
})

test('murmur2 agrees with @platformatic/kafka on random keys of every length', () => {
  for (let i = 0; i < 5000; i++) {
    const key = randomBytes(i % 67)
    assert.equal(murmur2(key), clientMurmur2(key))
  }
})

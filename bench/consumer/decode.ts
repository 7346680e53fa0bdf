/**
 * What decoding a fetched record into a ConsumedMessage costs, without a broker: records shaped like the
 * client's (1 KiB value, keys over 1,000 distinct keys), bare or carrying the standard headers Kafkit's
 * producer stamps by default (a UUIDv7-like `event-id`, an RFC 3339 `timestamp`) plus a `source`.
 * A development tool, not a benchmark of Kafka: `node --conditions=development bench/consumer/decode.ts
 * [records-per-round]`; prints the best of ROUNDS (5) rounds in ns per record.
 */
import { randomUUID } from 'node:crypto'
import { decodeRecord, type RawRecord } from '../../src/consumer/decode.ts'
import { bytesSerde } from '../../src/message/serde.ts'

const perRound = Number(process.argv[2] ?? 1_000_000)
const rounds = Number(process.env.ROUNDS ?? 5)
const DISTINCT = 5000
const value = Buffer.alloc(1024, 'x')
const keys = Array.from({ length: 1000 }, (_, i) => Buffer.from(`key-${i}`))

function records(withHeaders: boolean): RawRecord[] {
  return Array.from({ length: DISTINCT }, (_, i) => {
    const headerEntries = withHeaders
      ? [
          [Buffer.from('event-id'), Buffer.from(randomUUID())],
          [Buffer.from('timestamp'), Buffer.from(new Date(1_764_000_000_000 + i).toISOString())],
          [Buffer.from('source'), Buffer.from('orders-service')]
        ]
      : []
    return {
      topic: 't',
      partition: 0,
      offset: BigInt(i),
      leaderEpoch: 0,
      timestamp: 1_764_000_000_000n + BigInt(i),
      key: keys[i % keys.length],
      value,
      headers: new Map(headerEntries as [Buffer, Buffer][]),
      headerEntries,
      metadata: {}
    } as unknown as RawRecord
  })
}

let kept = 0
for (const [name, set] of [
  ['bare', records(false)],
  ['standard headers', records(true)]
] as const) {
  let best = Number.POSITIVE_INFINITY
  for (let round = 0; round < rounds; round++) {
    const started = performance.now()
    for (let i = 0; i < perRound; i++) {
      if (decodeRecord(set[i % DISTINCT] as RawRecord, bytesSerde)) kept++
    }
    best = Math.min(best, ((performance.now() - started) * 1e6) / perRound)
  }
  console.log(`${name}: ${best.toFixed(0)} ns per record`)
}
if (kept === 0) console.log('nothing decoded')

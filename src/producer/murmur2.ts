/**
 * Kafka's murmur2 key hash, bit for bit as the Java client computes it (`Utils.murmur2` and
 * `Utils.toPositive` in kafka-clients), so a key lands in the same partition whichever client wrote
 * it: `partition = toPositive(murmur2(keyBytes)) % partitions`. 32-bit integer arithmetic through
 * `Math.imul` (the BigInt port in the Kafka client gives the same numbers but is slower per key,
 * and this runs once per keyed message). A unit test checks both agree; an integration test checks
 * the partitions against Kafka's own Java producer.
 */

const SEED = 0x9747b28c
const M = 0x5bd1e995

/** Java's `Utils.murmur2(byte[])`: a signed 32-bit hash. */
export function murmur2(data: Uint8Array): number {
  const length = data.length
  let h = (SEED ^ length) | 0
  const whole = length & ~3
  for (let i = 0; i < whole; i += 4) {
    let k =
      (data[i] as number) |
      ((data[i + 1] as number) << 8) |
      ((data[i + 2] as number) << 16) |
      ((data[i + 3] as number) << 24)
    k = Math.imul(k, M)
    k ^= k >>> 24
    k = Math.imul(k, M)
    h = Math.imul(h, M) ^ k
  }
  // Java's switch falls through: 3 trailing bytes mix all three, then multiply once.
  const rest = length & 3
  if (rest > 0) {
    if (rest === 3) h ^= (data[whole + 2] as number) << 16
    if (rest >= 2) h ^= (data[whole + 1] as number) << 8
    h ^= data[whole] as number
    h = Math.imul(h, M)
  }
  h ^= h >>> 13
  h = Math.imul(h, M)
  h ^= h >>> 15
  return h | 0
}

/** Java's `Utils.toPositive`: clears the sign bit (not `Math.abs`, which differs for MIN_VALUE). */
export function toPositive(n: number): number {
  return n & 0x7fffffff
}

/** The partition Java's default partitioner picks for a non-null key. */
export function keyPartition(key: Uint8Array, partitions: number): number {
  return toPositive(murmur2(key)) % partitions
}

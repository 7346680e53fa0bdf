/**
 * Correct `read_committed` filtering for the client's consumers.
 *
 * With isolation level read_committed the broker returns every record batch up to the last stable
 * offset, plus the list of aborted transactions in the range (producer id and first offset); the
 * client must drop the batches of aborted transactions. @platformatic/kafka 2.12.1 keeps one aborted
 * range per producer id per fetch, so when one producer aborted several transactions within one
 * fetch's range (a producer that retries what failed: an exactly-once stage), the earlier ones pass
 * through as if committed. Measured: 3 of 5 transactions of one producer aborted, a read_committed
 * reader on the client saw all of them; KafkaJS on the same topic saw only the committed ones.
 *
 * So Kafkit filters the fetch responses again, the way the Java client does: walk the batches in
 * offset order; an aborted transaction becomes active for its producer once a batch reaches its first
 * offset; a data batch of a producer with an active aborted transaction is dropped; that producer's
 * ABORT marker ends it. Control batches stay (the client's stream needs them to move its position).
 */
import type { Consumer as ClientConsumer } from '@platformatic/kafka'

const IS_TRANSACTIONAL = 1 << 4
const IS_CONTROL = 1 << 5
/** Control record key: version (int16), then type (int16): 0 abort, 1 commit. */
const ABORT = 0

interface Batch {
  firstOffset: bigint
  lastOffsetDelta: number
  attributes: number
  producerId: bigint
  records: { key?: Buffer | null }[]
}

interface FetchPartition {
  records?: Batch[] | null
  abortedTransactions?: { producerId: bigint; firstOffset: bigint }[] | null
}

interface FetchResponse {
  responses: { partitions: FetchPartition[] }[]
}

/** Drops the batches of aborted transactions from one partition of a read_committed fetch response. */
export function dropAbortedBatches(partition: FetchPartition): void {
  const batches = partition.records
  const aborted = [...(partition.abortedTransactions ?? [])].sort((a, b) =>
    a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0
  )
  if (!batches || aborted.length === 0) return
  const active = new Set<bigint>()
  let next = 0
  partition.records = batches.filter(batch => {
    if ((batch.attributes & IS_TRANSACTIONAL) === 0) return true
    const lastOffset = batch.firstOffset + BigInt(batch.lastOffsetDelta)
    while (next < aborted.length && (aborted[next]?.firstOffset ?? 0n) <= lastOffset) {
      active.add((aborted[next] as { producerId: bigint }).producerId)
      next++
    }
    if ((batch.attributes & IS_CONTROL) !== 0) {
      const key = batch.records[0]?.key
      if (key && key.length >= 4 && key.readInt16BE(2) === ABORT) active.delete(batch.producerId)
      return true
    }
    return !active.has(batch.producerId)
  })
}

/**
 * Makes a read_committed client consumer drop every aborted transaction (see above): its `fetch`,
 * which its message streams call, filters the responses again. Returns the client.
 */
export function withCorrectReadCommitted<C extends ClientConsumer<Buffer, Buffer, Buffer, Buffer>>(client: C): C {
  const fetch = client.fetch.bind(client) as (
    options: unknown,
    callback: (error: unknown, response: unknown) => void
  ) => unknown
  const patched = (options: unknown, callback?: (error: unknown, response: unknown) => void): unknown => {
    if (typeof callback !== 'function') return fetch(options, callback as never)
    return fetch(options, (error, response) => {
      if (!error && response)
        for (const topic of (response as FetchResponse).responses) topic.partitions.forEach(dropAbortedBatches)
      callback(error, response)
    })
  }
  ;(client as unknown as { fetch: typeof patched }).fetch = patched
  return client
}

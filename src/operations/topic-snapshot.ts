/**
 * Reads a topic as it stands now: from each partition's start (or a given offset) up to the end offsets
 * seen when the read began, then stops. Operations tooling (DLQ list/show/replay, tail) uses it: records
 * produced after the call are not waited for, so a read always ends. It reads committed records only
 * (read_committed, up to the last stable offset) and ends even when a partition's tail is a transaction
 * marker or an aborted transaction. It consumes with a throwaway group (MANUAL offsets, no commits) and
 * deletes that group afterwards.
 */
import { randomBytes } from 'node:crypto'
import { Admin, ClientConsumer, FetchIsolationLevels, MessagesStreamModes, type Message } from '../kafka/client.ts'
import { clientOptionsOf, type ConnectionOptions } from '../kafka/connection.ts'

export type RawRecord = Message<Buffer, Buffer, Buffer, Buffer>

/** The topic to read and where; the connection options (brokers, SASL, TLS) as for every Kafkit client. */
export interface TopicSnapshotOptions extends ConnectionOptions {
  topic: string
  /** First offset to read per partition (one offset: in every partition); others start at their earliest. */
  from?: ReadonlyMap<number, bigint> | bigint
  /** Only these partitions. Default: all. */
  partitions?: readonly number[]
  /** Offset (exclusive) to stop at per partition (one offset: in every partition), when before its end. */
  until?: ReadonlyMap<number, bigint> | bigint
  signal?: AbortSignal | undefined
}

export interface PartitionRange {
  partition: number
  start: bigint
  /** Exclusive: the partition's end offset when the snapshot began. */
  end: bigint
}

/** The offsets a snapshot would cover, without reading records. */
export async function snapshotRanges(options: TopicSnapshotOptions): Promise<PartitionRange[]> {
  const admin = new Admin(clientOptionsOf(options, 'kafkit-snapshot'))
  try {
    const metadata = await admin.metadata({ topics: [options.topic] })
    const count = metadata.topics.get(options.topic)?.partitionsCount ?? 0
    const partitions = options.partitions ?? Array.from({ length: count }, (_, i) => i)
    // The end is the last stable offset (read_committed): records of a transaction still open are not
    // part of the snapshot, and the read never waits for that transaction to finish.
    const query = async (timestamp: bigint) =>
      new Map(
        (
          await admin.listOffsets({
            isolationLevel: FetchIsolationLevels.READ_COMMITTED,
            topics: [
              { name: options.topic, partitions: partitions.map(partitionIndex => ({ partitionIndex, timestamp })) }
            ]
          })
        )[0]?.partitions.map(p => [p.partitionIndex, p.offset] as const) ?? []
      )
    const [earliest, latest] = await Promise.all([query(-2n), query(-1n)])
    return partitions.map(partition => {
      const low = earliest.get(partition) ?? 0n
      const requested = typeof options.from === 'bigint' ? options.from : options.from?.get(partition)
      const start = requested === undefined || requested < low ? low : requested
      const latestEnd = latest.get(partition) ?? 0n
      const limit = typeof options.until === 'bigint' ? options.until : options.until?.get(partition)
      return { partition, start, end: limit !== undefined && limit < latestEnd ? limit : latestEnd }
    })
  } finally {
    await admin.close()
  }
}

/** Yields every record of the snapshot, partition by partition order of arrival (offsets ascending per partition). */
export async function* readTopicSnapshot(options: TopicSnapshotOptions): AsyncGenerator<RawRecord> {
  const ranges = (await snapshotRanges(options)).filter(r => r.start < r.end)
  if (ranges.length === 0) return
  const { signal, topic } = options
  signal?.throwIfAborted()
  const groupId = `kafkit-snapshot-${randomBytes(6).toString('hex')}`
  const consumer = new ClientConsumer({
    ...clientOptionsOf(options, 'kafkit-snapshot'),
    groupId,
    maxWaitTime: 100,
    isolationLevel: FetchIsolationLevels.READ_COMMITTED
  })
  // A failed background rejoin of the throwaway group is an 'error' event: unheard, it would crash the
  // process. The snapshot reads assigned offsets by hand, so the stream's own errors are what count.
  consumer.on('error', () => undefined)
  const remaining = new Map(ranges.map(r => [r.partition, r] as const))
  try {
    const stream = await consumer.consume({
      topics: [topic],
      mode: MessagesStreamModes.MANUAL,
      offsets: ranges.map(r => ({ topic, partition: r.partition, offset: r.start })),
      autocommit: false
    })
    yield* readStream(stream, topic, remaining, signal)
  } finally {
    await consumer.close(true)
    const admin = new Admin(clientOptionsOf(options, 'kafkit-snapshot'))
    await admin.deleteGroups({ groups: [groupId] }).catch(() => undefined)
    await admin.close()
  }
}

type SnapshotStream = Awaited<ReturnType<ClientConsumer<Buffer, Buffer, Buffer, Buffer>['consume']>>

/** Yields the stream's records inside `remaining` until every partition in it was read to its end. */
async function* readStream(
  stream: SnapshotStream,
  topic: string,
  remaining: Map<number, PartitionRange>,
  signal: AbortSignal | undefined
): AsyncGenerator<RawRecord> {
  // The last offsets of a partition may hold no record to yield: a transaction's commit or abort
  // marker, or records of an aborted transaction. So a partition also ends once the stream's fetch
  // position passed the end and nothing it fetched is left unread; each fetch wakes the loop to check.
  const iterator = (stream as AsyncIterable<RawRecord>)[Symbol.asyncIterator]()
  let pending: Promise<void> | undefined
  let ready: IteratorResult<RawRecord> | undefined
  let failure: { error: unknown } | undefined
  let wake: (() => void) | undefined
  const nudge = () => {
    const resolve = wake
    wake = undefined
    resolve?.()
  }
  const fetchedThrough = (range: PartitionRange) =>
    (stream.offsetsToFetch.get(`${topic}:${range.partition}`) ?? -1n) >= range.end
  stream.on('fetch', nudge)
  signal?.addEventListener('abort', nudge)
  try {
    for (;;) {
      signal?.throwIfAborted()
      if (failure) throw failure.error
      if (ready === undefined && pending === undefined) {
        pending = iterator.next().then(
          result => {
            ready = result
            pending = undefined
            nudge()
          },
          (error: unknown) => {
            failure = { error }
            nudge()
          }
        )
      }
      if (ready !== undefined) {
        const result: IteratorResult<RawRecord> = ready
        ready = undefined
        if (result.done) break
        const record = result.value
        const range = remaining.get(record.partition)
        if (!range || record.offset >= range.end) continue
        yield record
        if (record.offset >= range.end - 1n) remaining.delete(record.partition)
        if (remaining.size === 0) break
        continue
      }
      if (stream.readableLength === 0 && [...remaining.values()].every(fetchedThrough)) {
        // The iterator may have taken the last record off the buffer without having resolved yet:
        // let it settle (microtasks and the stream's nextTick work run before setImmediate).
        await new Promise(resolve => setImmediate(resolve))
        if (ready === undefined && failure === undefined && stream.readableLength === 0) break
        continue
      }
      await new Promise<void>(resolve => {
        wake = resolve
      })
    }
  } finally {
    stream.off('fetch', nudge)
    signal?.removeEventListener('abort', nudge)
    await stream.close()
  }
}

/**
 * The smallest runtime that honours the contract at the top of src/handling/index.ts, for testing
 * handling end to end on a real broker: one partition stream, strictly in order, decode (strict UTF-8
 * JSON), execute, dead-letter and wait for the acknowledgement, then commit that record. It stops once
 * `expected` records reached a verdict. The consumer runtime (src/consumer) is the real thing; this
 * only shows that the pieces, driven as documented, put every record where it belongs.
 */
import { Consumer, MessagesStreamFallbackModes, MessagesStreamModes, type Message } from '@platformatic/kafka'
import type { DeadLetterWriter } from '../../../src/handling/dead-letter-writer.ts'
import type { HandlerExecutor, HandlingOutcome } from '../../../src/handling/handler-executor.ts'
import type { ConsumedMessage } from '../../../src/handling/types.ts'
import { readStandardHeaders } from '../../../src/message/headers.ts'
import { jsonSerde, utf8Strict } from '../../../src/message/serde.ts'

type RawRecord = Message<Buffer, Buffer, Buffer, Buffer>

export interface ReferenceWorkerOptions {
  brokers: string[]
  topic: string
  groupId: string
  executor: HandlerExecutor
  dlq: DeadLetterWriter
  expected: number
  signal: AbortSignal
}

/** Decodes like the runtime does; `error` is set when the key or value does not decode. */
export function decode(record: RawRecord): { message: ConsumedMessage<unknown>; error?: unknown } {
  const headerEntries = record.headerEntries.map(([name, value]) => [name.toString(), value] as const)
  const headers = new Map(headerEntries)
  const raw = { key: record.key ?? null, value: record.value ?? null }
  const base = {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    timestamp: new Date(Number(record.timestamp)),
    headers,
    headerEntries,
    meta: readStandardHeaders(headers),
    raw
  }
  try {
    const key = raw.key === null ? null : utf8Strict(raw.key)
    const value = raw.value === null ? null : jsonSerde().deserialize(raw.value)
    return { message: { ...base, key, value } }
  } catch (error) {
    return { message: { ...base, key: null, value: undefined }, error }
  }
}

export async function runReferenceWorker(options: ReferenceWorkerOptions): Promise<Map<bigint, HandlingOutcome>> {
  const { executor, dlq, groupId, signal } = options
  const consumer = new Consumer({
    clientId: 'kafkit-reference-worker',
    groupId,
    bootstrapBrokers: options.brokers,
    maxWaitTime: 100
  })
  const outcomes = new Map<bigint, HandlingOutcome>()
  try {
    const stream = await consumer.consume({
      topics: [options.topic],
      mode: MessagesStreamModes.COMMITTED,
      fallbackMode: MessagesStreamFallbackModes.EARLIEST,
      autocommit: false
    })
    try {
      for await (const record of stream as AsyncIterable<RawRecord>) {
        signal.throwIfAborted()
        const { message, error } = decode(record)
        const context = { signal, groupId }
        const outcome =
          error === undefined
            ? await executor.execute(message, context)
            : executor.rejectUndeserializable(message, error, context)
        if (outcome.kind === 'aborted') break
        if (outcome.kind === 'dead-letter') await dlq.write(message, outcome, { signal })
        await record.commit()
        outcomes.set(record.offset, outcome)
        if (outcomes.size >= options.expected) break
      }
    } finally {
      await stream.close()
    }
  } finally {
    await consumer.close(true)
  }
  return outcomes
}

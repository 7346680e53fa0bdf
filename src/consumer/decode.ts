/**
 * A fetched record as handlers see it (ConsumedMessage): headers as a map and in wire order, seed
 * 004's standard headers typed, the key decoded as strict UTF-8, the value through the serde, and the
 * raw bytes kept for dead-lettering. Decoding never throws: a record that does not decode comes back
 * with `error` set (and `value` undefined), so the runtime can dead-letter it with its raw bytes.
 */
import type { Message } from '@platformatic/kafka'
import type { ConsumedMessage } from '../handling/types.ts'
import { DeserializationError } from '../handling/errors.ts'
import { readStandardHeaders } from '../message/headers.ts'
import { utf8Strict, type Serde } from '../message/serde.ts'

export type RawRecord = Message<Buffer, Buffer, Buffer, Buffer>

export interface Decoded<V> {
  message: ConsumedMessage<V>
  error?: DeserializationError
}

export function decodeRecord<V>(record: RawRecord, serde: Serde<V>): Decoded<V> {
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
  let key: string | null = null
  try {
    key = raw.key === null ? null : utf8Strict(raw.key)
    const value = raw.value === null ? (null as V) : serde.deserialize(raw.value)
    return { message: { ...base, key, value } }
  } catch (error) {
    const what = key === null && raw.key !== null ? 'key is not valid UTF-8' : 'value could not be deserialized'
    return {
      message: { ...base, key, value: undefined as V },
      error: new DeserializationError(`record ${what}: ${(error as Error).message}`, { cause: error })
    }
  }
}

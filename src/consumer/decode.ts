/**
 * A fetched record as handlers see it (ConsumedMessage): headers as a map and in wire order, the
 * standard headers typed, the key decoded as strict UTF-8, the value through the serde, and the
 * raw bytes kept for dead-lettering. Decoding never throws: a record that does not decode comes back
 * as a DecodeFailure (its `value` undefined), so the runtime can dead-letter it with its raw bytes.
 */
import type { Message } from '../kafka/client.ts'
import type { ConsumedMessage } from '../handling/types.ts'
import { DeserializationError } from '../handling/errors.ts'
import { readStandardHeaders, type StandardHeaders } from '../message/headers.ts'
import { utf8Strict, type Serde } from '../message/serde.ts'
import { internAscii } from '../util/ascii-intern.ts'

export type RawRecord = Message<Buffer, Buffer, Buffer, Buffer>

/** A record that did not decode: the message as far as it went (value undefined) and why. */
export class DecodeFailure<V> {
  readonly message: ConsumedMessage<V>
  readonly error: DeserializationError

  constructor(message: ConsumedMessage<V>, error: DeserializationError) {
    this.message = message
    this.error = error
  }
}

const NO_HEADERS: ReadonlyMap<string, Buffer> = new Map()
const NO_ENTRIES: readonly (readonly [string, Buffer])[] = Object.freeze([])
const NO_META = Object.freeze(readStandardHeaders(new Map()))

export function decodeRecord<V>(record: RawRecord, serde: Serde<V>): ConsumedMessage<V> | DecodeFailure<V> {
  // Most records carry no headers: share one empty map and one empty meta instead of building them.
  let headers = NO_HEADERS
  let headerEntries = NO_ENTRIES
  let meta: StandardHeaders = NO_META
  if (record.headerEntries.length > 0) {
    // Header names repeat from record to record: one string per name (src/util/ascii-intern.ts).
    headerEntries = record.headerEntries.map(([name, value]) => [internAscii(name) ?? name.toString(), value] as const)
    headers = new Map(headerEntries)
    meta = readStandardHeaders(headerEntries)
  }
  const raw = { key: record.key ?? null, value: record.value ?? null }
  // Key and value are decoded before the message object is built, so every message is created with its
  // final field types: filling in fields created as null or undefined changes the object's shape per
  // record, and V8 then ran this function at half speed in some processes and not in others.
  let key: string | null = null
  let value: V | undefined
  let error: DeserializationError | undefined
  try {
    if (raw.key !== null) key = utf8Strict(raw.key)
    value = raw.value === null ? (null as V) : serde.deserialize(raw.value)
  } catch (cause) {
    const what = key === null && raw.key !== null ? 'key is not valid UTF-8' : 'value could not be deserialized'
    value = undefined
    error = new DeserializationError(`record ${what}: ${(cause as Error).message}`, { cause })
  }
  const message: ConsumedMessage<V> = {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    timestamp: new Date(Number(record.timestamp)),
    key,
    value: value as V,
    headers,
    headerEntries,
    meta,
    raw
  }
  return error === undefined ? message : new DecodeFailure(message, error)
}

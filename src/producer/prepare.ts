/**
 * A message into a PendingRecord: key, value (by the serde) and headers as bytes, the standard
 * headers stamped (`stampHeaders`), the size counted and held to `maxMessageBytes`. What cannot be
 * written throws a coded error here, before anything is buffered.
 */
import { MessageParts, type MessageHeaders, type OutgoingMessage } from '../message/builder.ts'
import { StandardHeader } from '../message/wire-format.ts'
import type { Serde } from '../message/serde.ts'
import { newEventIdBytes } from '../message/uuid.ts'
import { describe } from './error-text.ts'
import { MessageTooLargeError, ProduceError, SerializationError } from './errors.ts'
import type { ProducerConfig } from './options.ts'
import { EVENT_ID_HEADER, PendingRecord, TIMESTAMP_HEADER } from './record.ts'

/** Per-record framing bytes not counted in key/value/headers (length, attributes, deltas). */
const RECORD_OVERHEAD = 16
/** Most header names (each with its last value) kept encoded per producer. */
const HEADER_CACHE_SIZE = 512

let stampMs = -1
let stampBytes = Buffer.alloc(0)
/** The RFC 3339 `timestamp` header for `ms`; one Buffer per millisecond, shared by its messages. */
function timestampHeader(ms: number): Buffer {
  if (ms !== stampMs) {
    stampMs = ms
    stampBytes = Buffer.from(new Date(ms).toISOString(), 'latin1')
  }
  return stampBytes
}

/** A header name's bytes, and the last value sent under it with its bytes (most values repeat). */
interface HeaderSlot {
  readonly name: Buffer
  value: string | undefined
  bytes: Buffer
}

/** What the header loop found besides the headers themselves. */
interface HeaderScan {
  size: number
  eventId: string | undefined
  hasTimestamp: boolean
}

export class RecordPreparer<V> {
  readonly #config: Readonly<Pick<ProducerConfig, 'topic' | 'stampHeaders' | 'maxMessageBytes'>>
  readonly #serde: Serde<V>
  readonly #headerSlots = new Map<string, HeaderSlot>()

  constructor(config: Readonly<Pick<ProducerConfig, 'topic' | 'stampHeaders' | 'maxMessageBytes'>>, serde: Serde<V>) {
    this.#config = config
    this.#serde = serde
  }

  /**
   * The record for `message` (or a builder's fields), sent at `now` (performance.now()); throws when it
   * cannot be sent. A builder's message always gets `event-id` and `timestamp` (its build() adds them).
   */
  prepare(message: OutgoingMessage<V> | MessageParts<V>, now: number): PendingRecord {
    if (typeof message !== 'object' || message === null) {
      throw new SerializationError(
        `a message must be an object with a value, got ${message === null ? 'null' : typeof message}`
      )
    }
    const topic = message.topic ?? this.#config.topic
    if (topic === undefined) {
      throw new ProduceError('the message names no topic and the producer has no `topic` option', { retryable: false })
    }
    const key = keyBytes(message.key, topic)
    const value = this.#valueBytes(message.value, topic)
    const built = message instanceof MessageParts
    const scan: HeaderScan = {
      size: RECORD_OVERHEAD + (key === undefined ? 0 : key.length) + (value === null ? 0 : value.length),
      eventId: undefined,
      hasTimestamp: false
    }
    let headers = message.headers === undefined ? undefined : this.#headers(message.headers, topic, built, scan)
    let eventId: string | Buffer | undefined = scan.eventId
    if (built || this.#config.stampHeaders) {
      // One clock reading for both headers.
      const wall = Date.now()
      if (eventId === undefined) {
        eventId = newEventIdBytes(wall)
        headers ??= new Map()
        headers.set(EVENT_ID_HEADER, eventId)
        scan.size += EVENT_ID_HEADER.length + 36 + 2
      }
      if (!scan.hasTimestamp) {
        headers ??= new Map()
        const explicit = built ? message.stamp : undefined
        const stamp = explicit === undefined ? timestampHeader(wall) : Buffer.from(explicit, 'latin1')
        headers.set(TIMESTAMP_HEADER, stamp)
        scan.size += TIMESTAMP_HEADER.length + stamp.length + 2
      }
    }
    const size = scan.size
    const maxMessageBytes = this.#config.maxMessageBytes
    if (size > maxMessageBytes) {
      throw new MessageTooLargeError(
        `a message to ${topic} is ${size} bytes (key, value and headers), more than maxMessageBytes (${maxMessageBytes}); it was not sent`,
        { details: { topic, size, maxMessageBytes, eventId: eventIdText(eventId) } }
      )
    }
    const timestamp = recordTimestamp(message.timestamp, topic)
    return new PendingRecord(message, topic, key, value, headers, timestamp, size, eventId, now)
  }

  /** The headers as bytes (undefined values left out), counted into `scan`. */
  #headers(source: MessageHeaders, topic: string, built: boolean, scan: HeaderScan): Map<Buffer, Buffer> {
    const headers = new Map<Buffer, Buffer>()
    if (source instanceof Map) {
      for (const [name, raw] of source as ReadonlyMap<string, unknown>) {
        // build() replaces a null event id with a new one, as it does an absent one.
        if (raw === null && built && name === StandardHeader.eventId) continue
        this.#header(headers, name, raw, topic, scan)
      }
    } else {
      const record = source as Readonly<Record<string, unknown>>
      for (const name in record) {
        if (Object.hasOwn(record, name)) this.#header(headers, name, record[name], topic, scan)
      }
    }
    return headers
  }

  #header(headers: Map<Buffer, Buffer>, name: string, raw: unknown, topic: string, scan: HeaderScan): void {
    if (raw === undefined) return
    const slot = this.#slot(name)
    let bytes: Buffer
    if (typeof raw === 'string') {
      // Most header values repeat from message to message (a type, a source): encoded once while they do.
      if (raw !== slot.value) {
        slot.bytes = Buffer.from(raw, 'utf8')
        slot.value = raw
      }
      bytes = slot.bytes
    } else if (Buffer.isBuffer(raw)) {
      bytes = raw
    } else {
      throw new SerializationError(
        `header ${JSON.stringify(name)} of a message to ${topic} must be a string or a Buffer`
      )
    }
    headers.set(slot.name, bytes)
    scan.size += slot.name.length + bytes.length + 2
    if (name === StandardHeader.eventId) scan.eventId = typeof raw === 'string' ? raw : raw.toString('utf8')
    else if (name === StandardHeader.timestamp) scan.hasTimestamp = true
  }

  /** A header name's bytes, cached: the same few names come with every message. */
  headerName(name: string): Buffer {
    return this.#slot(name).name
  }

  #slot(name: string): HeaderSlot {
    let slot = this.#headerSlots.get(name)
    if (slot === undefined) {
      // Bounded: header names are few in practice; a producer fed unique names must not grow forever.
      if (this.#headerSlots.size >= HEADER_CACHE_SIZE) this.#headerSlots.clear()
      slot = { name: Buffer.from(name, 'utf8'), value: undefined, bytes: EMPTY }
      this.#headerSlots.set(name, slot)
    }
    return slot
  }

  #valueBytes(value: V, topic: string): Buffer | null {
    if (value === null) return null
    if (value === undefined)
      throw new SerializationError(`a message to ${topic} has no value (use null for a tombstone)`)
    let bytes: Buffer
    try {
      bytes = this.#serde.serialize(value)
    } catch (error) {
      throw new SerializationError(`the value of a message to ${topic} could not be serialized: ${describe(error)}`, {
        cause: error,
        details: { topic, contentType: this.#serde.contentType }
      })
    }
    if (!Buffer.isBuffer(bytes)) {
      throw new SerializationError(`the ${this.#serde.contentType} serde returned no Buffer for a message to ${topic}`)
    }
    return bytes
  }
}

const EMPTY = Buffer.alloc(0)

function eventIdText(id: string | Buffer | undefined): string | undefined {
  return id === undefined || typeof id === 'string' ? id : id.toString('latin1')
}

function keyBytes(key: unknown, topic: string): Buffer | undefined {
  if (key === undefined || key === null) return undefined
  if (typeof key === 'string') return Buffer.from(key, 'utf8')
  if (Buffer.isBuffer(key)) return key
  throw new SerializationError(`the key of a message to ${topic} must be a string or a Buffer, got ${typeof key}`)
}

function recordTimestamp(timestamp: Date | number | undefined, topic: string): bigint | undefined {
  if (timestamp === undefined) return undefined
  const ms = typeof timestamp === 'number' ? timestamp : timestamp.getTime()
  if (!Number.isFinite(ms)) throw new SerializationError(`a message to ${topic} has an invalid timestamp`)
  return BigInt(Math.trunc(ms))
}

/**
 * A message into a PendingRecord: key, value (by the serde) and headers as bytes, the standard
 * headers stamped (`stampHeaders`), the size counted and held to `maxMessageBytes`. What cannot be
 * written throws a coded error here, before anything is buffered.
 */
import type { OutgoingMessage } from '../message/builder.ts'
import { StandardHeader } from '../message/wire-format.ts'
import type { Serde } from '../message/serde.ts'
import { newEventIdBytes } from '../message/uuid.ts'
import { describe } from './error-text.ts'
import { MessageTooLargeError, ProduceError, SerializationError } from './errors.ts'
import type { ProducerConfig } from './options.ts'
import { PendingRecord } from './record.ts'

/** Per-record framing bytes not counted in key/value/headers (length, attributes, deltas). */
const RECORD_OVERHEAD = 16

const EVENT_ID = Buffer.from(StandardHeader.eventId)
const TIMESTAMP = Buffer.from(StandardHeader.timestamp)

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

export class RecordPreparer<V> {
  readonly #config: Readonly<Pick<ProducerConfig, 'topic' | 'stampHeaders' | 'maxMessageBytes'>>
  readonly #serde: Serde<V>
  readonly #headerNames = new Map<string, Buffer>()

  constructor(config: Readonly<Pick<ProducerConfig, 'topic' | 'stampHeaders' | 'maxMessageBytes'>>, serde: Serde<V>) {
    this.#config = config
    this.#serde = serde
  }

  /** The record for `message`, sent at `now` (performance.now()); throws when it cannot be sent. */
  prepare(message: OutgoingMessage<V>, now: number): PendingRecord {
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
    let size = RECORD_OVERHEAD + (key === undefined ? 0 : key.length) + (value === null ? 0 : value.length)
    let headers: Map<Buffer, Buffer> | undefined
    let eventId: string | undefined
    let hasTimestamp = false
    const source = message.headers
    if (source !== undefined) {
      headers = new Map()
      const entries = source instanceof Map ? source.entries() : Object.entries(source)
      for (const [name, raw] of entries as Iterable<[string, unknown]>) {
        if (raw === undefined) continue
        let bytes: Buffer
        if (typeof raw === 'string') bytes = Buffer.from(raw, 'utf8')
        else if (Buffer.isBuffer(raw)) bytes = raw
        else
          throw new SerializationError(
            `header ${JSON.stringify(name)} of a message to ${topic} must be a string or a Buffer`
          )
        const nameBytes = this.headerName(name)
        headers.set(nameBytes, bytes)
        size += nameBytes.length + bytes.length + 2
        if (name === StandardHeader.eventId) eventId = bytes.toString('utf8')
        else if (name === StandardHeader.timestamp) hasTimestamp = true
      }
    }
    if (this.#config.stampHeaders) {
      // One clock reading for both headers.
      const wall = Date.now()
      if (eventId === undefined) {
        const idBytes = newEventIdBytes(wall)
        eventId = idBytes.toString('latin1')
        headers ??= new Map()
        headers.set(EVENT_ID, idBytes)
        size += EVENT_ID.length + 36 + 2
      }
      if (!hasTimestamp) {
        headers ??= new Map()
        const stamp = timestampHeader(wall)
        headers.set(TIMESTAMP, stamp)
        size += TIMESTAMP.length + stamp.length + 2
      }
    }
    const maxMessageBytes = this.#config.maxMessageBytes
    if (size > maxMessageBytes) {
      throw new MessageTooLargeError(
        `a message to ${topic} is ${size} bytes (key, value and headers), more than maxMessageBytes (${maxMessageBytes}); it was not sent`,
        { details: { topic, size, maxMessageBytes, eventId } }
      )
    }
    const timestamp = recordTimestamp(message.timestamp, topic)
    return new PendingRecord(message, topic, key, value, headers, timestamp, size, eventId, now)
  }

  /** A header name's bytes, cached: the same few names come with every message. */
  headerName(name: string): Buffer {
    let bytes = this.#headerNames.get(name)
    if (bytes === undefined) {
      // Bounded: header names are few in practice; a producer fed unique names must not grow forever.
      if (this.#headerNames.size >= 512) this.#headerNames.clear()
      bytes = Buffer.from(name, 'utf8')
      this.#headerNames.set(name, bytes)
    }
    return bytes
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

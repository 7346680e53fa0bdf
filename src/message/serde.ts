/**
 * Serializers turn a typed value into bytes and back. JSON is the default; string, raw bytes and
 * custom ones plug in the same way. A deserializer that throws marks the record as undeserializable:
 * the consumer dead-letters it with its raw bytes instead of stalling the partition.
 */
export interface Serde<T> {
  /** A MIME-like name recorded in the `content-type` header, e.g. `application/json`. */
  readonly contentType: string
  serialize(value: T): Buffer
  deserialize(bytes: Buffer): T
}

export const jsonSerde = <T = unknown>(): Serde<T> => ({
  contentType: 'application/json',
  serialize: value => Buffer.from(JSON.stringify(value), 'utf8'),
  deserialize: bytes => JSON.parse(utf8Strict(bytes)) as T
})

export const stringSerde: Serde<string> = {
  contentType: 'text/plain',
  serialize: value => Buffer.from(value, 'utf8'),
  deserialize: bytes => utf8Strict(bytes)
}

export const bytesSerde: Serde<Buffer> = {
  contentType: 'application/octet-stream',
  serialize: value => value,
  deserialize: bytes => bytes
}

const strictDecoder = new TextDecoder('utf-8', { fatal: true })

/** Decodes UTF-8 and throws on invalid bytes (Buffer#toString would silently insert U+FFFD). */
export function utf8Strict(bytes: Buffer): string {
  // ASCII (every byte below 0x80) is valid UTF-8 and decodes faster as latin1; keys usually are.
  if (bytes.length <= 64) {
    let ascii = true
    for (let i = 0; i < bytes.length; i++) {
      if ((bytes[i] as number) >= 0x80) {
        ascii = false
        break
      }
    }
    if (ascii) return bytes.toString('latin1')
  }
  return strictDecoder.decode(bytes)
}

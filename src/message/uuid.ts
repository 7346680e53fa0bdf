/**
 * Event ids: UUIDv7 (RFC 9562) from the `uuid` package. Version 7 puts the millisecond time first, so
 * ids sort by creation time and index well in the stores they end up in (processed-id tables, sinks),
 * while the random bits keep them unique across producers without coordination.
 *
 * The random bytes come from a pool refilled by one `randomFillSync` call per 1,024 ids: the package's
 * default source asks WebCrypto for 16 bytes per id, which made an id cost ~1.6 µs, more than a
 * producer spends on the rest of a message. The counter that keeps ids of the same millisecond
 * increasing is kept here the way the package keeps it (RFC 9562 method 1, a random-seeded counter).
 */
import { randomFillSync } from 'node:crypto'
import { v7 } from 'uuid'

const POOL_BYTES = 16 * 1024
const pool = Buffer.allocUnsafe(POOL_BYTES)
let poolOffset = POOL_BYTES
let lastMs = -1
let sequence = 0

function randomBytes16(): Buffer {
  if (poolOffset + 16 > POOL_BYTES) {
    randomFillSync(pool)
    poolOffset = 0
  }
  const bytes = pool.subarray(poolOffset, poolOffset + 16)
  poolOffset += 16
  return bytes
}

/** Lower-case hex digits as ASCII codes. */
const HEX = Buffer.from('0123456789abcdef', 'latin1')
/** Where each of the 16 bytes' two digits start in the 36-character text (dashes at 8, 13, 18 and 23). */
const DIGITS_AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34]
const DASH = 0x2d
const id = new Uint8Array(16)

/**
 * A new UUIDv7 as its canonical 36-character lower-case text, in ASCII bytes: what goes on the wire as
 * the `event-id` header. Later calls sort after earlier ones. The package builds the 16 bytes; the text
 * is written here straight into bytes (the package's own text form joins 20 strings and lower-cases
 * them, which cost more than the rest of the id). `now`: the caller's clock reading, when it has one.
 */
export function newEventIdBytes(now: number = Date.now()): Buffer {
  const random = randomBytes16()
  if (now > lastMs) {
    sequence =
      (((random[6] as number) & 0x7f) << 24) |
      ((random[7] as number) << 16) |
      ((random[8] as number) << 8) |
      (random[9] as number)
    lastMs = now
  } else {
    sequence = (sequence + 1) | 0
    // The 31-bit counter wrapped within one millisecond: borrow the next millisecond, as the package does.
    if (sequence === 0) lastMs++
  }
  v7({ random, msecs: lastMs, seq: sequence }, id)
  const text = Buffer.allocUnsafe(36)
  text[8] = text[13] = text[18] = text[23] = DASH
  for (let i = 0; i < 16; i++) {
    const byte = id[i] as number
    const at = DIGITS_AT[i] as number
    text[at] = HEX[byte >> 4] as number
    text[at + 1] = HEX[byte & 0x0f] as number
  }
  return text
}

/** A new UUIDv7 as its canonical 36-character lower-case text; later calls sort after earlier ones. */
export function newEventId(): string {
  return newEventIdBytes().toString('latin1')
}

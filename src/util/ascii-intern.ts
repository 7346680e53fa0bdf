/**
 * Strings for short ASCII byte runs that repeat (header names, an event type, a source):
 * a bounded table of the last string seen per hash slot, so a run seen before costs a hash and a
 * compare instead of a new string (Buffer#toString is a native call, about 100 ns for a few bytes on
 * the benchmark machine). Each hit is checked character by character, so a run is never confused with
 * another; the table holds strings only, never the bytes, so nothing keeps a fetch's buffer alive.
 */

const SLOTS = 4096
/** Longer runs are decoded as they are: they are rarely repeated and cost more to hash. */
export const MAX_INTERNED = 64
// '' fills the empty slots: it is also the right answer for a zero-length run.
const table = new Array<string>(SLOTS).fill('')

/** The string of `bytes` when they are at most MAX_INTERNED bytes of ASCII, else undefined. */
export function internAscii(bytes: Buffer): string | undefined {
  const length = bytes.length
  if (length > MAX_INTERNED) return undefined
  // FNV-1a, which also checks that every byte is ASCII.
  let hash = 0x811c9dc5
  for (let i = 0; i < length; i++) {
    const byte = bytes[i] as number
    if (byte >= 0x80) return undefined
    hash = Math.imul(hash ^ byte, 0x01000193)
  }
  const slot = (hash >>> 0) % SLOTS
  const known = table[slot] as string
  if (known.length === length) {
    let same = true
    for (let i = 0; i < length; i++) {
      if (known.charCodeAt(i) !== bytes[i]) {
        same = false
        break
      }
    }
    if (same) return known
  }
  // ASCII is valid UTF-8, and latin1 decodes it to the same string, faster.
  const text = bytes.toString('latin1')
  table[slot] = text
  return text
}

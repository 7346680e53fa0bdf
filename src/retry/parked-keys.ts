/**
 * The state of per-key ordering for one origin topic, as a pure function of its parked-keys topic
 * (`<topic>.retry.parked`, compacted, partition = origin partition). Three kinds of entries, keyed so
 * that compaction keeps exactly the live ones:
 *
 * - `t|<key>`: the key's train: `{"head":"<offset>"}`, the origin offset of the one record of the key
 *   that is in the retry flow (on a tier or the release topic); a tombstone when the train ended;
 * - `p|<key>|<offset>`: a record parked behind the head: its value (one flag byte, then the bytes) and
 *   its original headers; a tombstone once it was released;
 * - `r|<key>|<offset>`: a resolution: the record at that origin offset succeeded or was dead-lettered
 *   on a tier (written by whichever worker handled it); a tombstone once acted upon.
 *
 * Each entry key also names the consumer group (see `entryKeys`); `<key>` is the record key in base64url. Every worker reads the whole topic into this state; only the
 * owner of an origin partition (in the origin group) writes `t` and `p` entries and acts on resolutions,
 * so each key has one writer of its train at a time. `decide` says what the origin does with a record
 * and `step` what the owner does next for a key.
 */
import { PARKED_HEADER_PREFIX, PARKED_TIMESTAMP_HEADER } from '../message/wire-format.ts'

export { PARKED_HEADER_PREFIX, PARKED_TIMESTAMP_HEADER }
export interface ParkedRecord {
  /** Origin offset. */
  offset: bigint
  key: Buffer
  value: Buffer | null
  /** Original headers, in order. */
  headers: [string, Buffer][]
  timestamp: Date | undefined
}

interface KeyEntry {
  head: bigint | undefined
  parked: Map<bigint, ParkedRecord>
  resolved: Map<bigint, string>
}

export type ParkDecision = 'handle' | 'held' | 'park'

export type KeyStep =
  | { kind: 'idle' }
  /** Hand `next` to the release topic, make it the head, drop the resolutions in `drop`. */
  | { kind: 'release'; next: ParkedRecord; drop: bigint[] }
  /** The head resolved and nothing is parked: end the train, drop the resolutions in `drop`. */
  | { kind: 'end'; drop: bigint[] }
  /** Resolutions of earlier heads (duplicates after a crash) to drop. */
  | { kind: 'gc'; drop: bigint[] }

export type ParkedEntryKey = { kind: 't'; keyId: string } | { kind: 'p' | 'r'; keyId: string; offset: bigint }

export const keyIdOf = (key: Buffer): string => key.toString('base64url')

/**
 * The entry keys of one consumer group: `<group>|t|<key>`, `<group>|p|<key>|<offset>`,
 * `<group>|r|<key>|<offset>`, group and key in base64url. Groups that consume the same origin topic
 * share its parked-keys topic and never see each other's entries.
 */
export interface EntryKeys {
  train: (keyId: string) => string
  parked: (keyId: string, offset: bigint) => string
  resolution: (keyId: string, offset: bigint) => string
  /** The entry, or undefined when it is malformed or another group's. */
  parse: (text: string) => ParkedEntryKey | undefined
}

export function entryKeys(groupId: string): EntryKeys {
  const group = Buffer.from(groupId, 'utf8').toString('base64url')
  return {
    train: keyId => `${group}|t|${keyId}`,
    parked: (keyId, offset) => `${group}|p|${keyId}|${offset}`,
    resolution: (keyId, offset) => `${group}|r|${keyId}|${offset}`,
    parse: text => {
      const [owner, kind, keyId, offset] = text.split('|')
      if (owner !== group || keyId === undefined) return undefined
      if (kind === 't') return { kind, keyId }
      if ((kind === 'p' || kind === 'r') && offset !== undefined && /^\d+$/.test(offset)) {
        return { kind, keyId, offset: BigInt(offset) }
      }
      return undefined
    }
  }
}

/** A parked value: one flag byte (0 null, 1 bytes follow), so a null value never reads as a tombstone. */
export function encodeParkedValue(value: Buffer | null): Buffer {
  return value === null ? Buffer.from([0]) : Buffer.concat([Buffer.from([1]), value])
}

export function decodeParkedValue(envelope: Buffer): Buffer | null {
  return envelope[0] === 0 ? null : envelope.subarray(1)
}

export function encodeTrain(head: bigint): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, head: head.toString() }))
}

function decodeTrainHead(value: Buffer): bigint | undefined {
  try {
    const head = (JSON.parse(value.toString('utf8')) as { head?: unknown }).head
    return typeof head === 'string' && /^\d+$/.test(head) ? BigInt(head) : undefined
  } catch {
    return undefined
  }
}

export function encodeResolution(outcome: 'done' | 'dead-letter', at: Date): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, outcome, at: at.toISOString() }))
}

function minOffset(offsets: Iterable<bigint>): bigint | undefined {
  let min: bigint | undefined
  for (const offset of offsets) if (min === undefined || offset < min) min = offset
  return min
}

export class ParkedKeys {
  readonly #partitions = new Map<number, Map<string, KeyEntry>>()
  readonly #keys: EntryKeys

  constructor(groupId: string) {
    this.#keys = entryKeys(groupId)
  }

  /**
   * Applies one entry of the parked-keys topic (value undefined or null: a tombstone); returns the key
   * it touched (undefined for another group's entry).
   */
  apply(
    partition: number,
    entryKey: string,
    value: Buffer | null | undefined,
    headers: Iterable<readonly [string, Buffer]> = []
  ): string | undefined {
    const parsed = this.#keys.parse(entryKey)
    if (!parsed) return undefined
    let keys = this.#partitions.get(partition)
    if (!keys) {
      keys = new Map()
      this.#partitions.set(partition, keys)
    }
    let entry = keys.get(parsed.keyId)
    if (!entry) {
      entry = { head: undefined, parked: new Map(), resolved: new Map() }
      keys.set(parsed.keyId, entry)
    }
    const tombstone = value === undefined || value === null
    if (parsed.kind === 't') {
      entry.head = tombstone ? undefined : decodeTrainHead(value)
    } else if (parsed.kind === 'p') {
      if (tombstone) entry.parked.delete(parsed.offset)
      else {
        const original: [string, Buffer][] = []
        let timestamp: Date | undefined
        for (const [name, headerValue] of headers) {
          if (name === PARKED_TIMESTAMP_HEADER) {
            const at = new Date(headerValue.toString('utf8'))
            timestamp = Number.isNaN(at.getTime()) ? undefined : at
          } else if (!name.startsWith(PARKED_HEADER_PREFIX)) original.push([name, headerValue])
        }
        entry.parked.set(parsed.offset, {
          offset: parsed.offset,
          key: Buffer.from(parsed.keyId, 'base64url'),
          value: decodeParkedValue(value),
          headers: original,
          timestamp
        })
      }
    } else if (tombstone) entry.resolved.delete(parsed.offset)
    else entry.resolved.set(parsed.offset, value.toString('utf8'))
    if (entry.head === undefined && entry.parked.size === 0 && entry.resolved.size === 0) keys.delete(parsed.keyId)
    return parsed.keyId
  }

  /** Is the key held back (a record in retry, or records parked)? */
  blocked(partition: number, keyId: string): boolean {
    const entry = this.#partitions.get(partition)?.get(keyId)
    return entry !== undefined && (entry.head !== undefined || entry.parked.size > 0)
  }

  /**
   * What the origin does with its record at `offset` of this key: `handle` it (the key is free),
   * `park` it behind the key's head, or nothing (`held`): it is the head or parked already, or it came
   * before the head and was settled before the head failed (a redelivery after a crash).
   */
  decide(partition: number, keyId: string, offset: bigint): ParkDecision {
    const entry = this.#partitions.get(partition)?.get(keyId)
    if (!entry || (entry.head === undefined && entry.parked.size === 0)) return 'handle'
    if (entry.parked.has(offset)) return 'held'
    const front = entry.head ?? minOffset(entry.parked.keys())
    return front === undefined || offset <= front ? 'held' : 'park'
  }

  /** What the owner of the partition does next for this key. */
  step(partition: number, keyId: string): KeyStep {
    const entry = this.#partitions.get(partition)?.get(keyId)
    if (!entry) return { kind: 'idle' }
    const resolved = [...entry.resolved.keys()]
    const next = minOffset(entry.parked.keys())
    const release = (offset: bigint): KeyStep => ({
      kind: 'release',
      next: entry.parked.get(offset) as ParkedRecord,
      drop: resolved.filter(r => r < offset)
    })
    if (entry.head !== undefined) {
      if (entry.resolved.has(entry.head)) return next === undefined ? { kind: 'end', drop: resolved } : release(next)
      const head = entry.head
      const stale = resolved.filter(r => r < head)
      return stale.length > 0 ? { kind: 'gc', drop: stale } : { kind: 'idle' }
    }
    // No train but parked records (a crash between writes of another owner): release the first.
    if (next !== undefined) return release(next)
    return resolved.length > 0 ? { kind: 'gc', drop: resolved } : { kind: 'idle' }
  }

  /** The keys of a partition with any state. */
  keys(partition: number): string[] {
    return [...(this.#partitions.get(partition)?.keys() ?? [])]
  }

  /** Keys held back and records parked, over all partitions. */
  counts(): { blockedKeys: number; parkedRecords: number } {
    let blockedKeys = 0
    let parkedRecords = 0
    for (const keys of this.#partitions.values()) {
      for (const entry of keys.values()) {
        if (entry.head !== undefined || entry.parked.size > 0) blockedKeys++
        parkedRecords += entry.parked.size
      }
    }
    return { blockedKeys, parkedRecords }
  }
}

/** Shared set-up of the retry tests: produce `{ id, key }` records, remove a flow's topics afterwards. */
import { Admin, Producer } from '@platformatic/kafka'
import { readTopicSnapshot } from '../../../src/operations/topic-snapshot.ts'

export const quiet = { debug() {}, info() {}, warn() {}, error() {} }

/** How an undecodable record's value starts; its id follows. */
export const UNDECODABLE = 'not json: '

/** The id of a record as produced by produceIds, from its value (undecodable ones included). */
export function idOf(value: Buffer | null | undefined): number {
  const text = String(value)
  return text.startsWith(UNDECODABLE) ? Number(text.slice(UNDECODABLE.length)) : (JSON.parse(text) as { id: number }).id
}

/** Produces records `{ id, key, seq }` with ids 0..count-1 (idempotent, acks all), in id order per key. */
export async function produceIds(
  brokers: string[],
  topic: string,
  count: number,
  options: {
    keys?: number
    key?: (id: number) => string | null
    from?: number
    /** Ids produced as a value that is not JSON (undecodable), instead of `{ id, key, seq }`. */
    undecodable?: (id: number) => boolean
  } = {}
): Promise<void> {
  const producer = new Producer({ clientId: 'kafkit-retry-test', bootstrapBrokers: brokers, idempotent: true })
  const keyOf = options.key ?? ((id: number) => `key-${id % (options.keys ?? 10)}`)
  const from = options.from ?? 0
  try {
    for (let start = from; start < from + count; start += 500) {
      const messages = []
      for (let id = start; id < Math.min(from + count, start + 500); id++) {
        const key = keyOf(id)
        messages.push({
          topic,
          ...(key === null ? {} : { key: Buffer.from(key) }),
          value: Buffer.from(options.undecodable?.(id) ? `${UNDECODABLE}${id}` : JSON.stringify({ id, key }))
        })
      }
      await producer.send({ messages, acks: -1 })
    }
  } finally {
    await producer.close()
  }
}

/** Deletes every topic whose name starts with `origin` (the origin, its tiers, release, parked, DLQ). */
export async function deleteFlowTopics(brokers: string[], origin: string): Promise<void> {
  const admin = new Admin({ clientId: 'kafkit-retry-test', bootstrapBrokers: brokers })
  try {
    const topics = (await admin.listTopics()).filter(name => name === origin || name.startsWith(`${origin}.`))
    if (topics.length > 0) await admin.deleteTopics({ topics })
  } finally {
    await admin.close()
  }
}

export interface LedgerEvents {
  attempts: { id: number; at: number; topic: string; lastFailure: number | undefined }[]
  failures: { id: number; at: number }[]
  successes: { id: number; key: string; at: number }[]
}

/** Reads a retry worker's ledger (see retry-worker.ts). */
export function readLedger(text: string): LedgerEvents {
  const events: LedgerEvents = { attempts: [], failures: [], successes: [] }
  for (const line of text.split('\n')) {
    const [kind, id, a, b, c] = line.split(' ')
    if (kind === 'A') {
      events.attempts.push({
        id: Number(id),
        at: Number(a),
        topic: b as string,
        lastFailure: c === '-' ? undefined : Number(c)
      })
    } else if (kind === 'F') events.failures.push({ id: Number(id), at: Number(a) })
    else if (kind === 'S') events.successes.push({ id: Number(id), key: a as string, at: Number(b) })
  }
  return events
}

/** Per key, the ids in the order they first succeeded; and the keys whose order differs from produce order. */
export function firstSuccessOrder(successes: LedgerEvents['successes']): {
  perKey: Map<string, number[]>
  outOfOrder: string[]
} {
  const seen = new Set<number>()
  const perKey = new Map<string, number[]>()
  for (const { id, key } of successes) {
    if (seen.has(id)) continue
    seen.add(id)
    perKey.set(key, [...(perKey.get(key) ?? []), id])
  }
  const outOfOrder: string[] = []
  for (const [key, order] of perKey) {
    const sorted = [...order].sort((x, y) => x - y)
    if (order.some((id, i) => id !== sorted[i])) outOfOrder.push(`${key}: ${order.join(',')}`)
  }
  return { perKey, outOfOrder }
}

/** Records parked now (live `p|` entries of the parked-keys topic, read as it stands). */
export async function liveParkedRecords(brokers: string[], parkedTopic: string): Promise<number> {
  const latest = new Map<string, boolean>()
  for await (const record of readTopicSnapshot({ brokers, topic: parkedTopic })) {
    const key = record.key?.toString() ?? ''
    // `<group>|p|<key>|<offset>` entries (see src/retry/parked-keys.ts).
    if (key.split('|')[1] === 'p') latest.set(key, record.value !== undefined && record.value !== null)
  }
  return [...latest.values()].filter(Boolean).length
}

export { sleep, waitFor } from '../../helpers/wait.ts'

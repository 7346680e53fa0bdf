/** Shared set-up of the consumer runtime's broker tests: produce keyed JSON records, read the group's offsets. */
import { Admin, Producer } from '@platformatic/kafka'
import { Consumer } from '../../../src/consumer/consumer.ts'
import { eventually, sleep, waitFor } from '../../helpers/wait.ts'

export const quiet = { debug() {}, info() {}, warn() {}, error() {} }

export interface Produced {
  key: string
  seq: number
}

/** Produces `count` records `{ key, seq }` over `keys` keys (idempotent, acks all); seq counts per key. */
export async function produceKeyed(
  brokers: string[],
  topic: string,
  count: number,
  options: { keys?: number; start?: number; headers?: Record<string, string>; value?: (i: number) => Buffer } = {}
): Promise<Produced[]> {
  const producer = new Producer({ clientId: 'kafkit-consumer-test', bootstrapBrokers: brokers, idempotent: true })
  const keys = options.keys ?? 10
  const start = options.start ?? 0
  const produced: Produced[] = []
  try {
    for (let from = 0; from < count; from += 500) {
      const messages = []
      for (let i = from; i < Math.min(count, from + 500); i++) {
        const n = start + i
        const key = `key-${n % keys}`
        const seq = Math.floor(n / keys)
        produced.push({ key, seq })
        messages.push({
          topic,
          key: Buffer.from(key),
          value: options.value ? options.value(n) : Buffer.from(JSON.stringify({ key, seq })),
          headers: new Map(Object.entries(options.headers ?? {}).map(([k, v]) => [Buffer.from(k), Buffer.from(v)]))
        })
      }
      await producer.send({ messages, acks: -1 })
    }
  } finally {
    await producer.close()
  }
  return produced
}

/** The group's committed offset per partition of `topic` (-1 when none). */
export async function committedOffsets(
  brokers: string[],
  groupId: string,
  topic: string
): Promise<Map<number, bigint>> {
  const admin = new Admin({ clientId: 'kafkit-consumer-test', bootstrapBrokers: brokers })
  try {
    const [group] = await admin.listConsumerGroupOffsets({ groups: [groupId] })
    const offsets = new Map<number, bigint>()
    for (const partition of group?.topics.find(t => t.name === topic)?.partitions ?? []) {
      offsets.set(partition.partitionIndex, partition.committedOffset)
    }
    return offsets
  } finally {
    await admin.close()
  }
}

export const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value))

/** The group's committed offsets summed over `topic`'s partitions, polled until `total` or the timeout. */
export async function committedSum(
  brokers: string[],
  groupId: string,
  topic: string,
  total: number,
  timeoutMs: number
): Promise<bigint> {
  let sum = 0n
  await eventually(
    async () => {
      sum = [...(await committedOffsets(brokers, groupId, topic)).values()].reduce((a, b) => a + b, 0n)
      return sum >= BigInt(total)
    },
    timeoutMs,
    250
  )
  return sum
}

/**
 * A worker for the broker-fault tests: a 5 ms handler that notes each record it handled, commits every
 * 200 ms, short connect and request timeouts; its warnings are collected, and VERBOSE prints them and
 * its errors.
 */
export function busyWorker(
  brokers: string[],
  topic: string,
  groupId: string
): { consumer: Consumer<{ seq: number }>; handled: Set<string>; warnings: string[] } {
  const handled = new Set<string>()
  const warnings: string[] = []
  const consumer = new Consumer<{ seq: number }>({
    brokers,
    groupId,
    topics: [topic],
    startOffset: 'earliest',
    ensureTopics: false,
    commitIntervalMs: 200,
    connectTimeoutMs: 2000,
    requestTimeoutMs: 10_000,
    logger: {
      ...quiet,
      warn: (f: object, m: string) => {
        warnings.push(m)
        if (process.env.VERBOSE) console.error(m, f)
      },
      error: (f: object, m: string) => {
        if (process.env.VERBOSE) console.error(m, f)
      }
    },
    env: {},
    handler: async message => {
      await sleep(5)
      handled.add(`${message.partition}:${message.offset}`)
    }
  })
  return { consumer, handled, warnings }
}

export { sleep, waitFor }

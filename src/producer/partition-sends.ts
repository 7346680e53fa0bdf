/**
 * One client send per partition. The Kafka client groups a send's messages into one request per
 * leader, and when that request fails it retries all of it against the leader of its first partition.
 * After a failover the partitions of a dead (or paused) leader usually move to different nodes, so
 * such a retry keeps reaching a node that leads only some of them: NOT_LEADER_OR_FOLLOWER for the rest,
 * on every try, until the retries run out (seen with a node SIGSTOPped on three nodes: nothing of
 * those partitions was written for two minutes). A send that holds one partition is always retried
 * against that partition's leader, with the same producer id and sequence numbers.
 */
import type { MessageToProduce, ProduceResult } from '../kafka/client.ts'
import type { PartitionOutcomes } from '../kafka/produce-outcome.ts'
import { partitionOutcomes } from '../kafka/produce-outcome.ts'

type Bytes = MessageToProduce<Buffer, Buffer, Buffer, Buffer>

export type ClientSend = (options: { messages: Bytes[]; acks: number }) => Promise<ProduceResult>

/** Some of a batch's partition sends failed: what each partition did, and the first failure. */
export class PartitionSendsFailure extends Error {
  readonly outcomes: PartitionOutcomes
  readonly error: unknown

  constructor(outcomes: PartitionOutcomes, error: unknown) {
    super(`${outcomes.failed.size} partition send(s) failed`, { cause: error })
    this.outcomes = outcomes
    this.error = error
  }
}

/** The messages by `topic:partition`, in their order; undefined when they all go to one partition. */
function byPartition(messages: Bytes[]): Map<string, Bytes[]> | undefined {
  const first = messages[0]
  if (first === undefined) return undefined
  let mixed = false
  for (const message of messages) {
    if (message.partition !== first.partition || message.topic !== first.topic) {
      mixed = true
      break
    }
  }
  if (!mixed) return undefined
  const groups = new Map<string, Bytes[]>()
  for (const message of messages) {
    const key = `${message.topic}:${message.partition}`
    const group = groups.get(key)
    if (group === undefined) groups.set(key, [message])
    else group.push(message)
  }
  return groups
}

/**
 * One send in flight per partition: a partition's next send starts once its previous one settled. A
 * later send that overtook a retried one would meet the broker's sequence check
 * (OUT_OF_ORDER_SEQUENCE_NUMBER), and the client then starts a new producer id and writes it first:
 * the partition's order would be lost (seen in the failover test as keys out of order).
 */
export class PartitionLanes {
  readonly #tails = new Map<string, Promise<unknown>>()

  /** Runs `send` after the previous send of `key` settled. */
  run<T>(key: string, send: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key)
    const next = previous === undefined ? send() : previous.then(send, send)
    const tail = next.catch(() => undefined)
    this.#tails.set(key, tail)
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    })
    return next
  }
}

/**
 * Sends `messages` as one client send per partition, each in its partition's lane. Resolves with every
 * partition's offset; rejects with a PartitionSendsFailure when any partition failed (the others may
 * have been written).
 */
export async function sendPerPartition(
  send: ClientSend,
  messages: Bytes[],
  acks: number,
  lanes: PartitionLanes
): Promise<ProduceResult> {
  const groups = byPartition(messages)
  if (groups === undefined) {
    const first = messages[0] as Bytes
    return lanes.run(`${first.topic}:${first.partition}`, () => send({ messages, acks }))
  }
  const keys = [...groups.keys()]
  const settled = await Promise.allSettled(
    keys.map(key => lanes.run(key, () => send({ messages: groups.get(key) as Bytes[], acks })))
  )
  const offsets: NonNullable<ProduceResult['offsets']> = []
  const written = new Map<string, bigint>()
  const failed = new Map<string, Error>()
  let firstError: unknown
  settled.forEach((outcome, i) => {
    const key = keys[i] as string
    if (outcome.status === 'fulfilled') {
      for (const entry of outcome.value.offsets ?? []) {
        offsets.push(entry)
        written.set(`${entry.topic}:${entry.partition}`, entry.offset)
      }
      return
    }
    firstError ??= outcome.reason
    // A failed send of one partition may still say it was written (a late attempt succeeded).
    const { written: late } = partitionOutcomes(outcome.reason)
    const base = late.get(key)
    if (base !== undefined) written.set(key, base)
    else failed.set(key, outcome.reason instanceof Error ? outcome.reason : new Error(String(outcome.reason)))
  })
  if (firstError === undefined) return { offsets }
  throw new PartitionSendsFailure({ written, failed }, firstError)
}

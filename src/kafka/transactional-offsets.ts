/**
 * Consumed offsets inside a producer transaction (exactly-once consume-transform-produce): the offsets
 * commit if and only if the transaction commits. The client sends them as TxnOffsetCommit with the
 * group's generation and member id, so the group coordinator refuses offsets from a member whose
 * generation is over (a zombie that lost its partitions), and the transaction then aborts.
 *
 * And the read that must follow a takeover: the committed offset of a partition once every transaction
 * that may still commit offsets for it has ended (`requireStable`: the coordinator answers
 * UNSTABLE_OFFSET_COMMIT while one is pending).
 */
import type { Admin, Producer as ClientProducer } from '@platformatic/kafka'
import { KafkitError } from '../errors/kafkit-error.ts'

/** The client's transaction (its class is not exported by name). */
export type ClientTx = Awaited<ReturnType<ClientProducer<Buffer, Buffer, Buffer, Buffer>['beginTransaction']>>

/** Who consumed: the group, and the generation and member in which it owned the partitions. */
export interface ConsumerGroupMetadata {
  groupId: string
  generationId: number
  memberId: string
  /** The node id of the group's coordinator. */
  coordinatorId: number
}

/** The next offset to consume of one partition (the last consumed offset + 1). */
export interface TransactionOffset {
  topic: string
  partition: number
  offset: bigint
}

/** Adds the group to the transaction, then each partition's next offset. */
export async function addOffsetsToTransaction(
  client: ClientTx,
  group: ConsumerGroupMetadata,
  offsets: readonly TransactionOffset[]
): Promise<void> {
  // The client reads only the group id of the consumer here, and the metadata of the "message" for
  // the offset: its position is committed as offset + 1.
  await client.addConsumer({ groupId: group.groupId } as never)
  for (const { topic, partition, offset } of offsets) {
    await client.addOffset({ topic, partition, offset: offset - 1n, metadata: { consumer: group } } as never)
  }
}

const UNSTABLE = /UNSTABLE_OFFSET_COMMIT|unstable offset/i

/**
 * The group's committed offset of one partition once no transaction is pending for it (-1n when none
 * is committed). Retries while the coordinator reports the offsets unstable, up to `timeoutMs`.
 */
export async function stableCommittedOffset(
  admin: Admin,
  groupId: string,
  topic: string,
  partition: number,
  timeoutMs: number,
  signal?: AbortSignal
): Promise<bigint> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    signal?.throwIfAborted()
    try {
      const groups = await admin.listConsumerGroupOffsets({
        groups: [{ groupId, topics: [{ name: topic, partitionIndexes: [partition] }] }],
        requireStable: true
      })
      const found = groups[0]?.topics.find(t => t.name === topic)?.partitions.find(p => p.partitionIndex === partition)
      return found?.committedOffset ?? -1n
    } catch (error) {
      if (!UNSTABLE.test(String((error as Error).message) + JSON.stringify(error)) || Date.now() > deadline) {
        throw new KafkitError(
          'KAFKIT_OFFSETS_UNSTABLE',
          `could not read a stable committed offset of ${topic}/${partition} for group ${groupId}: ${(error as Error).message}`,
          {
            cause: error,
            retryable: true
          }
        )
      }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
}

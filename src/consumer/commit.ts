/**
 * Offset commits sent in one given generation of the group, once.
 *
 * The client's own `commit()` is not safe for a worker that shares its partitions: when the broker
 * refuses a commit because the group has moved on to a new generation (ILLEGAL_GENERATION,
 * REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID), it re-joins the group and sends the same offsets again in
 * the new generation. By then the partitions may belong to another member, which may already have
 * committed further: the late commit moves that member's position back, and as that member has nothing
 * new to commit, the group's position stays behind (the records after it are redelivered after the next
 * rebalance, and the lag never reaches 0 meanwhile). Seen with cooperative-sticky: a revoked
 * partition's last commit landed after the new owner's.
 *
 * So Kafkit sends OffsetCommit itself through the client's connection to the group coordinator, with
 * the generation in which it decided the partitions were its own. A refusal stays a refusal: the
 * records are redelivered to the partition's owner, which at-least-once allows. Only the classic
 * protocol: the consumer protocol (KIP-848) commits with the member epoch, which the client keeps to
 * itself, so it goes through the client's `commit()` (see docs/consumer.md).
 */
import {
  kGetApi,
  kGetConnection,
  kMetadata,
  type API,
  type ClusterMetadata,
  type Connection,
  type Consumer as ClientConsumer
} from '@platformatic/kafka'

type Client = ClientConsumer<Buffer, Buffer, Buffer, Buffer>

interface OffsetCommitRequestTopic {
  name: string
  partitions: {
    partitionIndex: number
    committedOffset: bigint
    committedLeaderEpoch: number
    committedMetadata: null
  }[]
}

type OffsetCommitApi = API<
  [
    groupId: string,
    generation: number,
    memberId: string,
    groupInstanceId: string | null,
    topics: OffsetCommitRequestTopic[]
  ],
  unknown
>

/** Who commits: the generation (classic protocol) and member id the offsets are committed in. */
export interface CommitIdentity {
  generation: number
  memberId: string
}

export interface OffsetToCommit {
  topic: string
  partition: number
  offset: bigint
  leaderEpoch: number
}

function fromCallback<T>(start: (callback: (error: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    start((error, value) => (error ? reject(error) : resolve(value as T)))
  })
}

/** Sends one OffsetCommit request for `offsets` in `identity`'s generation; rejects when the broker refuses it. */
export async function commitInGeneration(
  client: Client,
  groupId: string,
  identity: CommitIdentity,
  offsets: readonly OffsetToCommit[]
): Promise<void> {
  const coordinatorId = await client.findGroupCoordinator()
  const metadata = await fromCallback<ClusterMetadata>(callback =>
    client[kMetadata]({ topics: client.topics.current }, callback)
  )
  const broker = metadata.brokers.get(coordinatorId)
  if (broker === undefined) throw new Error(`the group coordinator (broker ${coordinatorId}) is not in the metadata`)
  const connection = await fromCallback<Connection>(callback => client[kGetConnection](broker, callback))
  const api = await fromCallback<OffsetCommitApi>(callback => client[kGetApi]('OffsetCommit', callback))
  const topics = new Map<string, OffsetCommitRequestTopic>()
  for (const { topic, partition, offset, leaderEpoch } of offsets) {
    let entry = topics.get(topic)
    if (entry === undefined) topics.set(topic, (entry = { name: topic, partitions: [] }))
    entry.partitions.push({
      partitionIndex: partition,
      committedOffset: offset,
      committedLeaderEpoch: leaderEpoch,
      committedMetadata: null
    })
  }
  await api.async(connection, groupId, identity.generation, identity.memberId, null, [...topics.values()])
}

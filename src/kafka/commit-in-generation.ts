/**
 * Offset commits sent in one given generation of the group, and never in another.
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
  FindCoordinatorKeyTypes,
  findErrorBy,
  kGetApi,
  kGetBootstrapConnection,
  kGetConnection,
  kMetadata,
  type API,
  type ClusterMetadata,
  type Connection,
  type Consumer as ClientConsumer
} from '@platformatic/kafka'
import { KafkitError } from '../errors/kafkit-error.ts'

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

type FindCoordinatorApi = API<
  [keyType: number, keys: string[]],
  { coordinators: { key: string; nodeId: number; errorCode: number }[] }
>

/** The coordinator found by Kafkit itself after the client's cached one failed it. */
const found = new WeakMap<Client, number>()

function coordinatorUnknown(message: string, groupId: string): KafkitError {
  return new KafkitError('KAFKIT_COORDINATOR_UNKNOWN', message, { retryable: true, details: { groupId } })
}

/** Asks the cluster (not the client's cache) which broker coordinates `groupId`. */
async function lookUpCoordinator(client: Client, groupId: string): Promise<number> {
  const connection = await fromCallback<Connection>(callback => client[kGetBootstrapConnection](callback))
  const api = await fromCallback<FindCoordinatorApi>(callback => client[kGetApi]('FindCoordinator', callback))
  const response = await api.async(connection, FindCoordinatorKeyTypes.GROUP, [groupId])
  const entry = response.coordinators.find(c => c.key === groupId) ?? response.coordinators[0]
  if (entry === undefined || entry.nodeId < 0)
    throw coordinatorUnknown(`no coordinator is known for group ${groupId}`, groupId)
  found.set(client, entry.nodeId)
  return entry.nodeId
}

async function send(
  client: Client,
  coordinatorId: number,
  groupId: string,
  identity: CommitIdentity,
  topics: OffsetCommitRequestTopic[]
): Promise<void> {
  const metadata = await fromCallback<ClusterMetadata>(callback =>
    client[kMetadata]({ topics: client.topics.current }, callback)
  )
  const broker = metadata.brokers.get(coordinatorId)
  if (broker === undefined)
    throw coordinatorUnknown(`the group coordinator (broker ${coordinatorId}) is not in the metadata`, groupId)
  const connection = await fromCallback<Connection>(callback => client[kGetConnection](broker, callback))
  const api = await fromCallback<OffsetCommitApi>(callback => client[kGetApi]('OffsetCommit', callback))
  await api.async(connection, groupId, identity.generation, identity.memberId, null, topics)
}

/**
 * Sends OffsetCommit for `offsets` in `identity`'s generation; rejects when the broker refuses it. A
 * failure that is not about the generation (the coordinator's node is gone, moved, or still loading)
 * is tried once more, in the same generation, on the coordinator looked up afresh: the client only
 * refreshes its cached coordinator when one of its own requests fails.
 */
export async function commitInGeneration(
  client: Client,
  groupId: string,
  identity: CommitIdentity,
  offsets: readonly OffsetToCommit[]
): Promise<void> {
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
  const request = [...topics.values()]
  try {
    await send(client, found.get(client) ?? (await client.findGroupCoordinator()), groupId, identity, request)
  } catch (error) {
    // Refused for its generation or membership (the errors the client itself re-joins on): sending it
    // again cannot help, and must not happen.
    if (findErrorBy(error as Error, 'needsRejoin', true) !== null) throw error
    await send(client, await lookUpCoordinator(client, groupId), groupId, identity, request)
  }
}

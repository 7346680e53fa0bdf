/**
 * Reading a failed @platformatic/kafka `send` per partition. One send carries one record batch per
 * partition, grouped into one request per broker; when it fails, some partitions may still have
 * been written. The client reports that in layers: `error.produced.offsets` for brokers that
 * answered, and for a broker that answered with errors a `ResponseError` whose `response` holds every
 * partition's result and whose child `ProtocolError`s carry a `path` naming the failed partition.
 * Retries wrap attempts in `MultipleErrors`. This module flattens all of it into "partition written
 * at offset" and "partition failed with error", so each message gets its own outcome and a message
 * already written is never reported failed (or sent again).
 */

interface ErrorTree {
  code?: unknown
  errors?: unknown
  response?: unknown
  produced?: unknown
  path?: unknown
}

interface PartitionResponse {
  index: number
  errorCode: number
  baseOffset: bigint
}

interface ProduceResponse {
  responses?: { name: string; partitionResponses: PartitionResponse[] }[]
}

export interface PartitionOutcomes {
  /** `topic:partition` → base offset of the batch written there. */
  written: Map<string, bigint>
  /** `topic:partition` → why that partition's batch was not written (when known per partition). */
  failed: Map<string, Error>
}

const PATH = /^\/responses\/(\d+)\/partition_responses\/(\d+)$/

/** Walks the error tree of a failed send and collects what each partition did. */
export function partitionOutcomes(error: unknown): PartitionOutcomes {
  const written = new Map<string, bigint>()
  const failed = new Map<string, Error>()
  const visit = (node: unknown, depth: number): void => {
    if (depth > 8 || typeof node !== 'object' || node === null) return
    const tree = node as ErrorTree
    const produced = tree.produced as { offsets?: { topic: string; partition: number; offset: bigint }[] } | undefined
    for (const entry of produced?.offsets ?? []) written.set(`${entry.topic}:${entry.partition}`, entry.offset)
    if (tree.code === 'PLT_KFK_RESPONSE' && typeof tree.response === 'object' && tree.response !== null) {
      const responses = (tree.response as ProduceResponse).responses ?? []
      const children = Array.isArray(tree.errors) ? (tree.errors as ErrorTree[]) : []
      responses.forEach((topic, i) => {
        topic.partitionResponses.forEach((partition, j) => {
          const key = `${topic.name}:${partition.index}`
          if (partition.errorCode === 0) {
            written.set(key, partition.baseOffset)
            failed.delete(key)
          } else if (!written.has(key)) {
            const child = children.find(
              c => typeof c.path === 'string' && PATH.exec(c.path)?.slice(1).join('/') === `${i}/${j}`
            )
            if (child instanceof Error) failed.set(key, child)
          }
        })
      })
      return
    }
    // Attempts are in order: a later attempt's per-partition result replaces an earlier one.
    if (Array.isArray(tree.errors)) for (const child of tree.errors) visit(child, depth + 1)
  }
  visit(error, 0)
  return { written, failed }
}

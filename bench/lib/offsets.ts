/** What a bench program asks of the group after a run: how many records its committed offsets cover. */
import type { Admin } from '@platformatic/kafka'

/** Records of `topic` covered by `group`'s committed offsets (at most each partition's end). */
export async function committedRecords(admin: Admin, group: string, topic: string, ends: number[]): Promise<number> {
  const [listed] = await admin.listConsumerGroupOffsets({ groups: [group] })
  const committed = new Map<number, number>()
  for (const t of listed?.topics ?? []) {
    if (t.name !== topic) continue
    for (const p of t.partitions) committed.set(p.partitionIndex, Math.max(0, Number(p.committedOffset)))
  }
  return ends.reduce((n, end, partition) => n + Math.min(end, committed.get(partition) ?? 0), 0)
}

/**
 * Declarative topics: a list of specs is compared with the cluster (`planTopics`) and the differences
 * Kafka allows are applied (`applyTopicPlan`): create missing topics, add partitions, set configs.
 * What Kafka cannot change in place (fewer partitions, another replication factor) is a conflict that
 * names the topic and the way out, and nothing is changed. Retry/DLQ provisioning, the sinks and the
 * demo all declare their topics this way.
 */
import { ConfigResourceTypes, IncrementalAlterConfigOperationTypes, type Admin } from '../kafka/client.ts'
import { withAdmin, type AdminSource } from '../kafka/admin.ts'
import { KafkitError } from '../errors/kafkit-error.ts'
import { checkTopicName } from './topic-naming.ts'

export interface TopicSpec {
  name: string
  partitions: number
  /** Default: the broker's default.replication.factor (-1 lets the broker decide). */
  replicationFactor?: number
  /** Topic configs that must equal these values, e.g. `{ 'cleanup.policy': 'compact' }`. */
  configs?: Record<string, string>
  /** Numeric configs that must be at least these values (`-1` counts as infinite), e.g. retention.ms. */
  atLeast?: Record<string, number>
}

export type TopicChange =
  { kind: 'partitions'; from: number; to: number } | { kind: 'config'; key: string; from: string | null; to: string }

export type TopicPlanEntry =
  | { topic: string; action: 'create'; spec: TopicSpec }
  | { topic: string; action: 'unchanged'; spec: TopicSpec }
  | { topic: string; action: 'update'; spec: TopicSpec; changes: TopicChange[] }
  | { topic: string; action: 'conflict'; spec: TopicSpec; problems: string[] }

export interface TopicPlan {
  entries: TopicPlanEntry[]
  /** Names that break the `<domain>.<entity>.<event-type>` convention: advice, never an error. */
  warnings: string[]
}

export class TopicConflictError extends KafkitError {
  constructor(message: string, details: Record<string, unknown>) {
    super('KAFKIT_TOPIC_CONFLICT', message, { details })
  }
}

function required(spec: TopicSpec): Record<string, string> {
  const values: Record<string, string> = { ...spec.configs }
  for (const [key, min] of Object.entries(spec.atLeast ?? {})) values[key] ??= String(min)
  return values
}

function satisfies(spec: TopicSpec, key: string, actual: string | null): boolean {
  const exact = spec.configs?.[key]
  if (exact !== undefined) return actual === exact
  const min = spec.atLeast?.[key]
  if (min === undefined) return true
  const value = Number(actual)
  return actual !== null && (value === -1 || value >= min)
}

/** Compares `specs` with the cluster; changes nothing. `connection`: brokers, SASL, TLS (or the environment). */
export async function planTopics(connection: AdminSource, specs: TopicSpec[]): Promise<TopicPlan> {
  return withAdmin(connection, 'kafkit-topics', admin => planTopicsWith(admin, specs))
}

/** Applies a plan; refuses (changing nothing) when any entry is a conflict. */
export async function applyTopicPlan(connection: AdminSource, plan: TopicPlan): Promise<void> {
  return withAdmin(connection, 'kafkit-topics', admin => applyTopicPlanWith(admin, plan))
}

/** Plans and applies in one call; returns the plan (its warnings name unconventional topics). */
export async function ensureTopics(connection: AdminSource, specs: TopicSpec[]): Promise<TopicPlan> {
  return withAdmin(connection, 'kafkit-topics', async admin => {
    const plan = await planTopicsWith(admin, specs)
    await applyTopicPlanWith(admin, plan)
    return plan
  })
}

export async function planTopicsWith(admin: Admin, specs: TopicSpec[]): Promise<TopicPlan> {
  const warnings: string[] = []
  for (const spec of specs) {
    const check = checkTopicName(spec.name)
    if (!check.legal) {
      throw new TopicConflictError(check.problems[0] ?? `illegal topic name ${spec.name}`, { topic: spec.name })
    }
    if (!check.conventional) warnings.push(...check.problems)
    if (!Number.isInteger(spec.partitions) || spec.partitions < 1) {
      throw new TopicConflictError(
        `topic ${spec.name}: partitions must be a whole number >= 1, got ${spec.partitions}`,
        {
          topic: spec.name
        }
      )
    }
  }
  const existing = new Set(await admin.listTopics({ includeInternals: false }))
  const present = specs.filter(s => existing.has(s.name))
  const metadata =
    present.length > 0 ? await admin.metadata({ topics: present.map(s => s.name), forceUpdate: true }) : undefined
  const configs =
    present.length > 0
      ? await admin.describeConfigs({
          resources: present.map(s => ({ resourceType: ConfigResourceTypes.TOPIC, resourceName: s.name }))
        })
      : []

  const entries = specs.map((spec): TopicPlanEntry => {
    if (!existing.has(spec.name)) return { topic: spec.name, action: 'create', spec }
    const info = metadata?.topics.get(spec.name)
    const problems: string[] = []
    const changes: TopicChange[] = []
    const partitions = info?.partitionsCount ?? 0
    if (partitions > spec.partitions) {
      problems.push(
        `topic ${spec.name} has ${partitions} partitions and the spec wants ${spec.partitions}: Kafka cannot remove partitions; raise the spec to ${partitions} or recreate the topic`
      )
    } else if (partitions < spec.partitions) {
      changes.push({ kind: 'partitions', from: partitions, to: spec.partitions })
    }
    const replicas = info?.partitions[0]?.replicas.length
    if (spec.replicationFactor !== undefined && spec.replicationFactor > 0 && replicas !== spec.replicationFactor) {
      problems.push(
        `topic ${spec.name} has replication factor ${String(replicas)} and the spec wants ${spec.replicationFactor}: change it with a partition reassignment, or align the spec`
      )
    }
    const actual = new Map(
      configs.find(c => c.resourceName === spec.name)?.configs.map(c => [c.name, c.value] as const) ?? []
    )
    for (const [key, want] of Object.entries(required(spec))) {
      const have = actual.get(key) ?? null
      if (!satisfies(spec, key, have)) changes.push({ kind: 'config', key, from: have, to: want })
    }
    if (problems.length > 0) return { topic: spec.name, action: 'conflict', spec, problems }
    if (changes.length > 0) return { topic: spec.name, action: 'update', spec, changes }
    return { topic: spec.name, action: 'unchanged', spec }
  })
  return { entries, warnings }
}

export async function applyTopicPlanWith(admin: Admin, plan: TopicPlan): Promise<void> {
  const conflicts = plan.entries.filter(e => e.action === 'conflict')
  if (conflicts.length > 0) {
    const problems = conflicts.flatMap(e => e.problems)
    throw new TopicConflictError(problems.join('; '), { topics: conflicts.map(e => e.topic) })
  }
  for (const entry of plan.entries) {
    if (entry.action === 'create') {
      const { spec } = entry
      await admin.createTopics({
        topics: [spec.name],
        partitions: spec.partitions,
        replicas: spec.replicationFactor ?? -1,
        configs: Object.entries(required(spec)).map(([name, value]) => ({ name, value }))
      })
    } else if (entry.action === 'update') {
      for (const change of entry.changes) {
        if (change.kind === 'partitions') {
          await admin.createPartitions({ topics: [{ name: entry.topic, count: change.to }] })
        }
      }
      const configChanges = entry.changes.filter(c => c.kind === 'config')
      if (configChanges.length > 0) {
        await admin.incrementalAlterConfigs({
          resources: [
            {
              resourceType: ConfigResourceTypes.TOPIC,
              resourceName: entry.topic,
              configs: configChanges.map(c => ({
                name: c.key,
                configOperation: IncrementalAlterConfigOperationTypes.SET,
                value: c.to
              }))
            }
          ]
        })
      }
    }
  }
  await waitForTopics(
    admin,
    plan.entries.filter(e => e.action !== 'unchanged').map(e => e.spec)
  )
}

/** Metadata shows every partition of every topic with a leader (creation is asynchronous in Kafka). */
async function waitForTopics(admin: Admin, specs: TopicSpec[], timeoutMs = 30_000): Promise<void> {
  if (specs.length === 0) return
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const metadata = await admin.metadata({ topics: specs.map(s => s.name), forceUpdate: true })
    const ready = specs.every(spec => {
      const info = metadata.topics.get(spec.name)
      return info?.partitionsCount === spec.partitions && info.partitions.every(p => p.leader >= 0)
    })
    if (ready) return
    if (Date.now() > deadline) {
      throw new TopicConflictError(
        `topics ${specs.map(s => s.name).join(', ')} did not get leaders within ${timeoutMs} ms`,
        {
          topics: specs.map(s => s.name)
        }
      )
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

/**
 * The topics a retrying consumer needs besides its origin: one per retry tier
 * (`<topic>.retry.<delay>`, each with one fixed delay so its records come due in order) and the
 * dead-letter topic (`<topic>.dlq`). `retryTopicNames` derives the names (overridable by a template or
 * a function); `planRetryTopics` compares them with the cluster and `ensureRetryTopics` creates the
 * missing ones like their origin (partition count, replication factor, room for Kafkit's headers) with
 * a retention well past the longest delay.
 *
 * Existing topics are checked, never altered: they may be shared or owned by whoever runs the cluster.
 * A retry topic fits when it has at least the origin's partitions (a retry record can keep its origin
 * partition number; extra partitions stay unused), deletes rather than compacts (compaction would drop
 * every retry but the last per key), keeps records longer than its delay and accepts records as large
 * as the origin does. The DLQ may have any partition count; it must not be compacted either. A misfit
 * is a KAFKIT_RETRY_TOPIC_MISFIT error naming the topic, what is wrong and what to do, raised before
 * anything is created. Names off the `<domain>.<entity>.<event-type>` convention are warnings only.
 */
import { ConfigResourceTypes, type Admin } from '../kafka/client.ts'
import { withAdmin, type AdminSource } from '../kafka/admin.ts'
import { formatDuration, parseDuration } from '../config/duration.ts'
import { ConfigError, KafkitError, type KafkitErrorOptions } from '../errors/kafkit-error.ts'
import { checkTopicName } from './topic-naming.ts'
import { applyTopicPlanWith, planTopicsWith, type TopicPlan, type TopicSpec } from './topic-plan.ts'

/** A tier's delay: milliseconds, or a duration text such as `250ms`, `30s`, `5m`, `1h`. */
export type RetryDelay = number | string

/** The default tiers: 5m, 10m, 20m, 40m. */
export const DEFAULT_RETRY_TIERS: readonly number[] = Object.freeze([300_000, 600_000, 1_200_000, 2_400_000])

/**
 * A topic name from its origin: a function, or a template with `{topic}`, `{delay}` (compact, e.g.
 * `5m`), `{delayMs}` and `{tier}` (1-based) for retry topics, and `{topic}` for the DLQ.
 */
export type RetryTopicNamer = string | ((origin: string, delayMs: number, tier: number) => string)
export type DeadLetterTopicNamer = string | ((origin: string) => string)

export interface RetryTopicNaming {
  /** Default `{topic}.retry.{delay}`. */
  retryTopic?: RetryTopicNamer
  /** Default `{topic}.dlq`. */
  dlqTopic?: DeadLetterTopicNamer
}

export interface RetryTier {
  /** 1-based, in the order given. */
  tier: number
  delayMs: number
  topic: string
}

export interface RetryTopicNames {
  origin: string
  tiers: RetryTier[]
  dlq: string
}

export const DEFAULT_RETRY_TOPIC_TEMPLATE = '{topic}.retry.{delay}'
export const DEFAULT_DLQ_TOPIC_TEMPLATE = '{topic}.dlq'

/** An existing retry or DLQ topic does not fit its origin; nothing was created or changed. */
export class RetryTopicMisfitError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_RETRY_TOPIC_MISFIT', message, options)
  }
}

/** A topic an operation needs does not exist. */
export class TopicNotFoundError extends KafkitError {
  constructor(topic: string, hint: string) {
    super('KAFKIT_TOPIC_NOT_FOUND', `topic ${topic} does not exist: ${hint}`, { details: { topic } })
  }
}

/** `300000` → `5m`, `5400000` → `1h30m`, `250` → `250ms`, `86400000` → `1d`: stable, lower-case, no dots. */
export function formatDelay(delayMs: number): string {
  if (!Number.isSafeInteger(delayMs) || delayMs < 0) {
    throw new ConfigError(`a retry delay must be a whole number of milliseconds >= 0, got ${delayMs}`)
  }
  return formatDuration(delayMs)
}

/** A delay as milliseconds (a number is taken as milliseconds). */
export function delayMs(delay: RetryDelay, where = 'retry delay'): number {
  let ms: number
  if (typeof delay === 'number') {
    ms = delay
  } else {
    try {
      ms = parseDuration(delay)
    } catch (error) {
      throw new ConfigError(`${where} ${JSON.stringify(delay)}: ${(error as Error).message}`, {
        details: { delay }
      })
    }
  }
  if (!Number.isSafeInteger(ms) || ms < 1) {
    throw new ConfigError(`${where} must be at least 1 ms (a whole number), got ${JSON.stringify(delay)}`, {
      details: { delay }
    })
  }
  return ms
}

function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const value = values[name]
    if (value === undefined) {
      throw new ConfigError(
        `topic name template ${JSON.stringify(template)} uses ${whole}; known: ${Object.keys(values)
          .map(k => `{${k}}`)
          .join(', ')}`
      )
    }
    return value
  })
}

/**
 * The retry and DLQ topic names for `origin`. Throws ConfigError for a bad delay, an illegal name, or
 * two of the topics (origin, tiers, DLQ) ending up with the same name.
 */
export function retryTopicNames(
  origin: string,
  options: RetryTopicNaming & { tiers?: readonly RetryDelay[] } = {}
): RetryTopicNames {
  const tiers = (options.tiers ?? DEFAULT_RETRY_TIERS).map((delay, i): RetryTier => {
    const ms = delayMs(delay, `retry tier ${i + 1}`)
    const namer = options.retryTopic ?? DEFAULT_RETRY_TOPIC_TEMPLATE
    const topic =
      typeof namer === 'function'
        ? namer(origin, ms, i + 1)
        : fill(namer, { topic: origin, delay: formatDelay(ms), delayMs: String(ms), tier: String(i + 1) })
    return { tier: i + 1, delayMs: ms, topic }
  })
  const dlqNamer = options.dlqTopic ?? DEFAULT_DLQ_TOPIC_TEMPLATE
  const dlq = typeof dlqNamer === 'function' ? dlqNamer(origin) : fill(dlqNamer, { topic: origin })
  const seen = new Map<string, string>([[origin, 'the origin']])
  for (const [topic, role] of [
    ...tiers.map(t => [t.topic, `retry tier ${t.tier} (${formatDelay(t.delayMs)})`] as const),
    [dlq, 'the DLQ'] as const
  ]) {
    const check = checkTopicName(topic)
    if (!check.legal) throw new ConfigError(`${role}: ${check.problems[0] ?? `illegal topic name ${topic}`}`)
    const other = seen.get(topic)
    if (other !== undefined) {
      throw new ConfigError(
        `${role} and ${other} would both use topic ${topic}: give each tier its own delay, or name the topics with {tier}`,
        { details: { topic } }
      )
    }
    seen.set(topic, role)
  }
  return { origin, tiers, dlq }
}

export interface RetryTopicOptions extends RetryTopicNaming {
  /** retention.ms of created retry topics. Default: max(7 days, 4 × the longest delay). */
  retentionMs?: number
  /** retention.ms of a created DLQ. Default: max(30 days, 4 × the longest delay). */
  dlqRetentionMs?: number
  /** Replication factor of created topics. Default: the origin's. */
  replicationFactor?: number
  /**
   * Bytes added to the origin's max.message.bytes for created topics: room for the retry and
   * dead-letter headers (error message and stack). Default 65536.
   */
  headerRoomBytes?: number
}

export type RetryTopicRole = 'retry' | 'dlq'

export interface RetryTopicStatus {
  topic: string
  role: RetryTopicRole
  /** Retry topics only. */
  tier?: number
  delayMs?: number
  /** `create`: missing; `fits`: exists and fits; `misfit`: exists and does not fit (see problems). */
  action: 'create' | 'fits' | 'misfit'
  /** The spec a missing topic is created with. */
  spec: TopicSpec
  /** Why an existing topic does not fit, each with the way out. */
  problems: string[]
  /** Advice: the topic works but is weaker than recommended. */
  warnings: string[]
}

export interface RetryTopicPlan {
  names: RetryTopicNames
  origin: { topic: string; partitions: number; replicationFactor: number; maxMessageBytes: number }
  topics: RetryTopicStatus[]
  /** Naming advice (the `<domain>.<entity>.<event-type>` convention) and fit advice, one line each. */
  warnings: string[]
}

const DAY = 86_400_000
const DEFAULT_HEADER_ROOM = 65_536
/** The broker's default message.max.bytes, for a topic whose config cannot be read. */
const KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588

function numeric(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined || value === '') return undefined
  const n = Number(value)
  return Number.isFinite(n) ? n : undefined
}

function describeMs(ms: number): string {
  return ms === -1 ? 'infinite' : `${ms} ms (${formatDelay(ms)})`
}

/** Compares the retry and DLQ topics of `origin` with the cluster; changes nothing. */
export async function planRetryTopics(
  source: AdminSource,
  origin: string,
  tiers: readonly RetryDelay[] = DEFAULT_RETRY_TIERS,
  options: RetryTopicOptions = {}
): Promise<RetryTopicPlan> {
  const names = retryTopicNames(origin, { ...options, tiers })
  return withAdmin(source, 'kafkit-retry-topics', admin => plan(admin, names, options))
}

/** What `plan` knows of the origin and the cluster when it checks the retry and DLQ topics. */
interface PlanFacts {
  origin: string
  existing: ReadonlySet<string>
  metadata: Awaited<ReturnType<Admin['metadata']>>
  configOf: (topic: string) => Map<string, string | null | undefined>
  originPartitions: number
  originReplicas: number
  originMaxBytes: number
  replicationFactor: number
  room: number
  retention: number
  dlqRetention: number
}

/** retention.ms of the retry topics and of the DLQ; throws when the retry topics' would not outlast a tier's delay. */
function retentionsOf(names: RetryTopicNames, options: RetryTopicOptions): { retention: number; dlqRetention: number } {
  const longest = Math.max(0, ...names.tiers.map(t => t.delayMs))
  const retention = options.retentionMs ?? Math.max(7 * DAY, 4 * longest)
  const dlqRetention = options.dlqRetentionMs ?? Math.max(30 * DAY, 4 * longest)
  for (const tier of names.tiers) {
    if (retention !== -1 && retention <= tier.delayMs) {
      throw new ConfigError(
        `retentionMs ${retention} is not longer than retry tier ${tier.tier}'s delay ${describeMs(tier.delayMs)}: records would be deleted before they come due`
      )
    }
  }
  return { retention, dlqRetention }
}

/** The topics that exist, and the metadata and configs of the origin and of its retry and DLQ topics that exist. */
async function readCluster(
  admin: Admin,
  origin: string,
  derived: readonly string[]
): Promise<Pick<PlanFacts, 'existing' | 'metadata' | 'configOf'>> {
  const existing = new Set(await admin.listTopics({ includeInternals: false }))
  if (!existing.has(origin)) {
    throw new TopicNotFoundError(origin, 'create the origin topic first; its retry and DLQ topics are shaped after it')
  }
  const present = [origin, ...derived.filter(t => existing.has(t))]
  const metadata = await admin.metadata({ topics: present, forceUpdate: true })
  const described = await admin.describeConfigs({
    resources: present.map(name => ({ resourceType: ConfigResourceTypes.TOPIC, resourceName: name }))
  })
  const configOf = (topic: string) =>
    new Map(described.find(d => d.resourceName === topic)?.configs.map(c => [c.name, c.value] as const) ?? [])
  return { existing, metadata, configOf }
}

/** The spec a missing retry or DLQ topic is created with: shaped after its origin. */
function specFor(facts: PlanFacts, topic: string, retentionMs: number): TopicSpec {
  return {
    name: topic,
    partitions: facts.originPartitions,
    replicationFactor: facts.replicationFactor,
    configs: {
      'cleanup.policy': 'delete',
      'retention.ms': String(retentionMs),
      'max.message.bytes': String(facts.originMaxBytes + facts.room)
    }
  }
}

/** Whether an existing retry or DLQ topic fits its origin: its problems (each with the way out) and advice. */
function checkExisting(
  facts: PlanFacts,
  topic: string,
  role: RetryTopicRole,
  tier: RetryTier | undefined
): Omit<RetryTopicStatus, 'role' | 'spec' | 'topic'> {
  const { origin, originPartitions, originReplicas, originMaxBytes, room } = facts
  const problems: string[] = []
  const advice: string[] = []
  const info = facts.metadata.topics.get(topic)
  const config = facts.configOf(topic)
  const partitions = info?.partitionsCount ?? 0
  const what = tier ? `retry topic ${topic} (tier ${tier.tier}, delay ${formatDelay(tier.delayMs)})` : `DLQ ${topic}`
  if (role === 'retry' && partitions < originPartitions) {
    problems.push(
      `${what} has ${partitions} partition(s), fewer than its origin ${origin}'s ${originPartitions}: grow it with kafka-topics.sh --alter --topic ${topic} --partitions ${originPartitions}`
    )
  }
  const policy = config.get('cleanup.policy') ?? 'delete'
  if (policy.split(',').some(p => p.trim() === 'compact')) {
    problems.push(
      `${what} has cleanup.policy=${policy}: compaction keeps only the last record per key and would drop ${role === 'retry' ? 'retries' : 'dead letters'}; set cleanup.policy=delete (kafka-configs.sh --alter --entity-type topics --entity-name ${topic} --add-config cleanup.policy=delete)`
    )
  }
  const retentionMs = numeric(config.get('retention.ms'))
  if (retentionMs !== undefined && retentionMs !== -1) {
    const recommended = role === 'retry' ? facts.retention : facts.dlqRetention
    if (tier && retentionMs <= tier.delayMs) {
      problems.push(
        `${what} keeps records ${describeMs(retentionMs)}, not longer than its delay ${describeMs(tier.delayMs)}: records would be deleted before they come due; raise it with kafka-configs.sh --alter --entity-type topics --entity-name ${topic} --add-config retention.ms=${recommended}`
      )
    } else if (retentionMs < recommended) {
      advice.push(
        `${what} keeps records ${describeMs(retentionMs)}; ${describeMs(recommended)} is recommended so ${role === 'retry' ? 'a stopped worker does not lose retries' : 'dead letters stay until someone looks at them'}`
      )
    }
  }
  const maxBytes = numeric(config.get('max.message.bytes'))
  if (maxBytes !== undefined && maxBytes < originMaxBytes) {
    problems.push(
      `${what} accepts records up to ${maxBytes} bytes, less than its origin's ${originMaxBytes}: a large record could not be ${role === 'retry' ? 'retried' : 'dead-lettered'}; raise max.message.bytes to ${originMaxBytes + room}`
    )
  }
  const replicas = info?.partitions[0]?.replicas.length ?? 0
  if (replicas < originReplicas) {
    advice.push(
      `${what} has replication factor ${replicas}, lower than its origin's ${originReplicas}: a broker loss could lose records the origin would keep`
    )
  }
  return { action: problems.length > 0 ? 'misfit' : 'fits', problems, warnings: advice }
}

async function plan(admin: Admin, names: RetryTopicNames, options: RetryTopicOptions): Promise<RetryTopicPlan> {
  const origin = names.origin
  const { retention, dlqRetention } = retentionsOf(names, options)
  const derived = [...names.tiers.map(t => t.topic), names.dlq]
  const cluster = await readCluster(admin, origin, derived)
  const originInfo = cluster.metadata.topics.get(origin)
  const originReplicas = originInfo?.partitions[0]?.replicas.length ?? 1
  const facts: PlanFacts = {
    ...cluster,
    origin,
    originPartitions: originInfo?.partitionsCount ?? 0,
    originReplicas,
    originMaxBytes: numeric(cluster.configOf(origin).get('max.message.bytes')) ?? KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    replicationFactor: options.replicationFactor ?? originReplicas,
    room: options.headerRoomBytes ?? DEFAULT_HEADER_ROOM,
    retention,
    dlqRetention
  }
  const warnings: string[] = []
  for (const topic of [origin, ...derived]) {
    const check = checkTopicName(topic)
    if (!check.conventional) warnings.push(...check.problems)
  }

  const topics: RetryTopicStatus[] = [
    ...names.tiers.map(tier => ({ tier, role: 'retry' as const, spec: specFor(facts, tier.topic, retention) })),
    { tier: undefined, role: 'dlq' as const, spec: specFor(facts, names.dlq, dlqRetention) }
  ].map(({ tier, role, spec }): RetryTopicStatus => {
    const base = {
      topic: spec.name,
      role,
      ...(tier ? { tier: tier.tier, delayMs: tier.delayMs } : {}),
      spec
    }
    if (!cluster.existing.has(spec.name)) return { ...base, action: 'create', problems: [], warnings: [] }
    return { ...base, ...checkExisting(facts, spec.name, role, tier) }
  })
  for (const t of topics) warnings.push(...t.warnings)
  return {
    names,
    origin: {
      topic: origin,
      partitions: facts.originPartitions,
      replicationFactor: originReplicas,
      maxMessageBytes: facts.originMaxBytes
    },
    topics,
    warnings
  }
}

/**
 * Creates the missing retry and DLQ topics of `origin` and checks the existing ones. Throws
 * RetryTopicMisfitError (listing every misfit with its way out) before creating anything when an
 * existing topic does not fit; returns the plan (its warnings carry naming and fit advice).
 */
export async function ensureRetryTopics(
  source: AdminSource,
  origin: string,
  tiers: readonly RetryDelay[] = DEFAULT_RETRY_TIERS,
  options: RetryTopicOptions = {}
): Promise<RetryTopicPlan> {
  const names = retryTopicNames(origin, { ...options, tiers })
  return withAdmin(source, 'kafkit-retry-topics', admin => ensure(admin, names, options, 3))
}

async function ensure(
  admin: Admin,
  names: RetryTopicNames,
  options: RetryTopicOptions,
  attempts: number
): Promise<RetryTopicPlan> {
  const result = await plan(admin, names, options)
  const misfits = result.topics.filter(t => t.action === 'misfit')
  if (misfits.length > 0) {
    throw new RetryTopicMisfitError(
      `${misfits.length} existing topic(s) for ${names.origin} do not fit (nothing was created): ${misfits
        .flatMap(t => t.problems)
        .join('; ')}`,
      { details: { origin: names.origin, topics: misfits.map(t => ({ topic: t.topic, problems: t.problems })) } }
    )
  }
  const missing = result.topics.filter(t => t.action === 'create').map(t => t.spec)
  if (missing.length === 0) return result
  // planTopics reads the cluster again: a topic someone created meanwhile is checked, not re-created.
  const topicPlan: TopicPlan = await planTopicsWith(admin, missing)
  if (topicPlan.entries.some(e => e.action !== 'create') && attempts > 1) {
    return ensure(admin, names, options, attempts - 1)
  }
  await applyTopicPlanWith(admin, { ...topicPlan, entries: topicPlan.entries.filter(e => e.action === 'create') })
  return result
}

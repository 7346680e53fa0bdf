/**
 * Kafkit's wire format: every header it writes or reads, in one place. `headerSpecs` says what each one
 * means, who writes it, and since which format version; docs/headers.md is generated from it, and a
 * unit test keeps the two in step and checks that every name below has its entry.
 *
 * - standard headers: written by the message builder and the producer, read into `message.meta`;
 * - `kafkit-dlq-*`: a dead-letter record's origin and failure (consumer, sink, producer DLQ);
 * - `kafkit-retry-*`: a record on a retry tier (or the release topic of per-key ordering);
 * - `kafkit-replay-group`: a dead letter replayed for one consumer group only;
 * - `kafkit-park-*`: an entry of per-key ordering's parked-keys topic.
 * Values are UTF-8 text; times ISO 8601 in UTC; offsets decimal strings.
 */

export const StandardHeader = {
  eventId: 'event-id',
  eventType: 'event-type',
  correlationId: 'correlation-id',
  conversationId: 'conversation-id',
  schemaVersion: 'schema-version',
  source: 'source',
  timestamp: 'timestamp',
  retryCount: 'retry-count'
} as const

/** The headers Kafkit adds to a dead-letter record. */
export const DeadLetterHeader = {
  /** Format version of these headers (currently 1). */
  version: 'kafkit-dlq-version',
  originTopic: 'kafkit-dlq-origin-topic',
  originPartition: 'kafkit-dlq-origin-partition',
  originOffset: 'kafkit-dlq-origin-offset',
  /** The original record's timestamp. */
  originTimestamp: 'kafkit-dlq-origin-timestamp',
  consumerGroup: 'kafkit-dlq-consumer-group',
  /** `transient` (retries exhausted) or `permanent`. */
  errorKind: 'kafkit-dlq-error-kind',
  /** The error's class name, e.g. `PermanentError`, `SyntaxError`. */
  errorClass: 'kafkit-dlq-error-class',
  /** The Kafkit error code or Node error code, when the error has one. */
  errorCode: 'kafkit-dlq-error-code',
  /** The message of the error and of its causes, cut to a bound. */
  errorMessage: 'kafkit-dlq-error-message',
  /** The stack, cut to a bound; absent when disabled or unknown. */
  errorStack: 'kafkit-dlq-error-stack',
  attempts: 'kafkit-dlq-attempts',
  firstFailureAt: 'kafkit-dlq-first-failure-at',
  lastFailureAt: 'kafkit-dlq-last-failure-at',
  deadLetteredAt: 'kafkit-dlq-dead-lettered-at',
  /** On a record the producer dead-lettered (its retries ran out): the producer's client id. */
  producer: 'kafkit-dlq-producer'
} as const

export const DEAD_LETTER_HEADER_PREFIX = 'kafkit-dlq-'
export const DEAD_LETTER_FORMAT_VERSION = 1

export const RetryHeader = {
  /** Format version of these headers (currently 1). */
  version: 'kafkit-retry-version',
  /** The delayed attempt this record is for: 1 on the first tier, 2 on the second, ...; 0 for a released parked record. */
  attempt: 'kafkit-retry-attempt',
  /** The tier the record is on (1-based); 0 on the release topic. */
  tier: 'kafkit-retry-tier',
  /** The tier's delay in milliseconds. */
  delayMs: 'kafkit-retry-delay-ms',
  /** When the record may be handled again: the last failure plus the tier's delay. */
  dueAt: 'kafkit-retry-due-at',
  originTopic: 'kafkit-retry-origin-topic',
  originPartition: 'kafkit-retry-origin-partition',
  originOffset: 'kafkit-retry-origin-offset',
  /** The original record's timestamp. */
  originTimestamp: 'kafkit-retry-origin-timestamp',
  /** The consumer group of the origin topic. */
  consumerGroup: 'kafkit-retry-consumer-group',
  /** Handler calls so far, in-place retries included. */
  handlerAttempts: 'kafkit-retry-handler-attempts',
  firstFailureAt: 'kafkit-retry-first-failure-at',
  lastFailureAt: 'kafkit-retry-last-failure-at',
  /** The last error: its class, its Kafkit or Node code (when it has one) and its message (bounded). */
  errorClass: 'kafkit-retry-error-class',
  errorCode: 'kafkit-retry-error-code',
  errorMessage: 'kafkit-retry-error-message',
  /** `1` when per-key ordering holds later records of the same key behind this one. */
  keyOrder: 'kafkit-retry-key-order'
} as const

export const RETRY_HEADER_PREFIX = 'kafkit-retry-'
export const RETRY_FORMAT_VERSION = 1

/** Headers a replayed record carries besides its original ones. */
export const ReplayHeader = {
  /** `<dlqTopic>/<partition>@<offset>`: the dead-letter record this record replays. */
  replayOf: 'kafkit-replay-of',
  /** The consumer group the replay is meant for; Kafkit consumers of other groups skip the record. */
  group: 'kafkit-replay-group'
} as const

export const REPLAY_HEADER_PREFIX = 'kafkit-replay-'

/** Replayed dead-letter records meant for one group only carry this header (see `kafkit dlq replay`). */
export const REPLAY_GROUP_HEADER = ReplayHeader.group

export const PARKED_HEADER_PREFIX = 'kafkit-park-'
/** The original record's timestamp, on a parked entry. */
export const PARKED_TIMESTAMP_HEADER = 'kafkit-park-origin-timestamp'

export type HeaderFamily = 'standard' | 'dead-letter' | 'retry' | 'replay' | 'parked'

export interface HeaderSpec {
  name: string
  family: HeaderFamily
  /** The format version that introduced it (the family's `*-version` header says which a record has). */
  since: number
  /** Who writes it, and what it holds. */
  meaning: string
}

const spec = (family: HeaderFamily, entries: Record<string, string>, since = 1): HeaderSpec[] =>
  Object.entries(entries).map(([name, meaning]) => ({ name, family, since, meaning }))

/** Every header of the wire format with its meaning (docs/headers.md is generated from this). */
export const headerSpecs: readonly HeaderSpec[] = [
  ...spec('standard', {
    [StandardHeader.eventId]:
      'A unique id of the event (UUIDv7 when the producer stamps it); idempotent consumers key on it.',
    [StandardHeader.eventType]: 'What happened, e.g. `todos.task.created`; the event router routes on it.',
    [StandardHeader.correlationId]: 'Ties a request, its reply and the events it caused together.',
    [StandardHeader.conversationId]: 'Groups the messages of one conversation or workflow.',
    [StandardHeader.schemaVersion]: 'The version of the value schema, for readers that upcast old events.',
    [StandardHeader.source]: 'The service or component that produced the event.',
    [StandardHeader.timestamp]: 'When the event happened, RFC 3339 in UTC (the producer stamps it when absent).',
    [StandardHeader.retryCount]: 'How often the message was retried so far.'
  }),
  ...spec('dead-letter', {
    [DeadLetterHeader.version]: 'Format version of the dead-letter headers (1).',
    [DeadLetterHeader.originTopic]: 'The topic the failed record came from.',
    [DeadLetterHeader.originPartition]: 'Its partition.',
    [DeadLetterHeader.originOffset]: 'Its offset (decimal).',
    [DeadLetterHeader.originTimestamp]: 'Its timestamp.',
    [DeadLetterHeader.consumerGroup]: 'The consumer group that failed to handle it.',
    [DeadLetterHeader.errorKind]: '`permanent`, or `transient` when retries ran out.',
    [DeadLetterHeader.errorClass]: "The error's class name, e.g. `PermanentError`.",
    [DeadLetterHeader.errorCode]: 'The Kafkit or Node error code, when the error has one.',
    [DeadLetterHeader.errorMessage]: 'The message of the error and of its causes, cut to a bound.',
    [DeadLetterHeader.errorStack]: 'The stack, cut to a bound; absent when disabled or unknown.',
    [DeadLetterHeader.attempts]: 'Handler attempts (or produce attempts) made, retry tiers included.',
    [DeadLetterHeader.firstFailureAt]: 'When the record first failed.',
    [DeadLetterHeader.lastFailureAt]: 'When it last failed.',
    [DeadLetterHeader.deadLetteredAt]: 'When the dead-letter record was written.',
    [DeadLetterHeader.producer]:
      "On a record the producer dead-lettered (its retries ran out): the producer's client id."
  }),
  ...spec('retry', {
    [RetryHeader.version]: 'Format version of the retry headers (1).',
    [RetryHeader.attempt]:
      'The delayed attempt the record is for: 1 on the first tier, ...; 0 for a released parked record.',
    [RetryHeader.tier]: 'The tier the record is on (1-based); 0 on the release topic.',
    [RetryHeader.delayMs]: "The tier's delay in milliseconds.",
    [RetryHeader.dueAt]: "When the record may be handled again: the last failure plus the tier's delay.",
    [RetryHeader.originTopic]: 'The topic the record first failed on.',
    [RetryHeader.originPartition]: 'Its partition.',
    [RetryHeader.originOffset]: 'Its offset (decimal).',
    [RetryHeader.originTimestamp]: 'Its timestamp.',
    [RetryHeader.consumerGroup]: 'The consumer group of the origin topic (tier consumers skip other groups’ records).',
    [RetryHeader.handlerAttempts]: 'Handler calls so far, in-place retries included.',
    [RetryHeader.firstFailureAt]: 'When the record first failed.',
    [RetryHeader.lastFailureAt]: 'When it last failed.',
    [RetryHeader.errorClass]: "The last error's class name.",
    [RetryHeader.errorCode]: "The last error's Kafkit or Node code, when it has one.",
    [RetryHeader.errorMessage]: "The last error's message and causes, cut to a bound.",
    [RetryHeader.keyOrder]: '`1` when per-key ordering holds later records of the same key behind this one.'
  }),
  ...spec('replay', {
    [ReplayHeader.replayOf]: '`<dlqTopic>/<partition>@<offset>`: the dead-letter record this record replays.',
    [ReplayHeader.group]: 'The consumer group a replay is meant for; Kafkit consumers of other groups skip the record.'
  }),
  ...spec('parked', {
    [PARKED_TIMESTAMP_HEADER]: "The original record's timestamp, on an entry of the parked-keys topic."
  })
]

/** Every header name the constants above define (what headerSpecs must cover). */
export function wireHeaderNames(): string[] {
  return [
    ...Object.values(StandardHeader),
    ...Object.values(DeadLetterHeader),
    ...Object.values(RetryHeader),
    ...Object.values(ReplayHeader),
    PARKED_TIMESTAMP_HEADER
  ]
}

/** docs/headers.md's table. */
export function headersTable(): string {
  const rows = headerSpecs.map(
    h => `| \`${h.name}\` | ${h.family} | ${h.since} | ${h.meaning.replaceAll('|', '\\|')} |`
  )
  return ['| Header | Family | Since version | Meaning |', '| --- | --- | --- | --- |', ...rows].join('\n')
}

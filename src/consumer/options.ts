/**
 * The consumer's options: one schema (type, defaults, validation, the docs/options.md table) with the
 * `KAFKA_CONSUMER_*` environment names beside the connection ones, and the max poll records / max
 * poll interval. Precedence: defaults < environment < code. Functions (handlers,
 * middleware, serdes, classifiers) are passed beside the options, not through the schema.
 */
import { z } from 'zod'
import { duration } from '../config/duration.ts'
import { connectionEnv, connectionSecrets, connectionShape } from '../kafka/connection.ts'
import { defineOptions } from '../config/define-options.ts'
import { envBytes, envDuration, envInteger, envList, envStartOffset, envString } from '../config/env-parsers.ts'

const MiB = 1024 * 1024

export const consumerOptions = defineOptions({
  component: 'consumer',
  envPrefix: 'KAFKA_CONSUMER_',
  secrets: connectionSecrets,
  env: {
    ...connectionEnv,
    groupId: envString('KAFKA_CONSUMER_GROUP_ID'),
    topics: envList('KAFKA_CONSUMER_TOPICS'),
    groupInstanceId: envString('KAFKA_CONSUMER_GROUP_INSTANCE_ID'),
    groupProtocol: envString('KAFKA_CONSUMER_GROUP_PROTOCOL'),
    assignor: envString('KAFKA_CONSUMER_ASSIGNOR'),
    startOffset: envStartOffset('KAFKA_CONSUMER_START_OFFSET'),
    minBytes: envBytes('KAFKA_CONSUMER_MIN_BYTES'),
    maxBytes: envBytes('KAFKA_CONSUMER_MAX_BYTES'),
    maxWaitMs: envDuration('KAFKA_CONSUMER_MAX_WAIT'),
    maxBytesPerPartition: envBytes('KAFKA_CONSUMER_MAX_BYTES_PER_PARTITION'),
    commitIntervalMs: envDuration('KAFKA_CONSUMER_COMMIT_INTERVAL'),
    heartbeatIntervalMs: envDuration('KAFKA_CONSUMER_HEARTBEAT_INTERVAL'),
    sessionTimeoutMs: envDuration('KAFKA_CONSUMER_SESSION_TIMEOUT'),
    rebalanceTimeoutMs: envDuration('KAFKA_CONSUMER_REBALANCE_TIMEOUT'),
    dlqTopic: envString('KAFKA_CONSUMER_DLQ_TOPIC'),
    maxRetries: envInteger('KAFKA_CONSUMER_MAX_RETRIES'),
    maxPollRecords: envInteger('KAFKA_CONSUMER_MAX_POLL_RECORDS'),
    maxPollIntervalMs: envDuration('KAFKA_CONSUMER_MAX_POLL_INTERVAL'),
    'concurrency.mode': envString('KAFKA_CONSUMER_ORDERING'),
    'concurrency.limit': envInteger('KAFKA_CONSUMER_CONCURRENCY')
  },
  schema: z.strictObject({
    ...connectionShape,
    groupId: z.string().min(1).describe('Consumer group id. Required (in code or KAFKA_CONSUMER_GROUP_ID).'),
    topics: z.array(z.string().min(1)).min(1).describe('Topics to subscribe to. Required.'),
    groupInstanceId: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Static membership (KIP-345): a stable id per worker instance, so a restart within sessionTimeoutMs keeps its partitions without a rebalance.'
      ),
    groupProtocol: z
      .enum(['classic', 'consumer'])
      .default('classic')
      .describe(
        '`classic`: the JoinGroup/SyncGroup protocol with a client-side assignor. `consumer`: the new protocol (KIP-848, Kafka 4.0+), assignment computed by the broker; assignor, sessionTimeoutMs and heartbeatIntervalMs are then set on the broker side.'
      ),
    assignor: z
      .enum(['roundrobin', 'cooperative-sticky'])
      .default('roundrobin')
      .describe(
        'Classic protocol assignor: `roundrobin` is eager (every rebalance revokes every partition), `cooperative-sticky` revokes only the partitions that move.'
      ),
    startOffset: z
      .enum(['earliest', 'latest'])
      .default('latest')
      .describe(
        'Where a partition without a committed offset starts: `latest` (-1, newest) by default, or `earliest` (-2, oldest).'
      ),
    minBytes: z.number().int().min(1).default(1).describe('Fetch: least bytes the broker waits for.'),
    maxBytes: z
      .number()
      .int()
      .min(1024)
      .default(10 * MiB)
      .describe('Fetch: most bytes per fetch response (default 10MB).'),
    maxBytesPerPartition: z
      .number()
      .int()
      .min(1024)
      .default(MiB)
      .describe(
        "Fetch: most bytes per partition in one fetch response (Java's max.partition.fetch.bytes). Keeps one partition from filling a whole response, so every assigned partition has records to work on."
      ),
    maxWaitMs: duration(0).default(500).describe('Fetch: longest the broker waits for minBytes.'),
    isolationLevel: z
      .enum(['read_committed', 'read_uncommitted'])
      .default('read_committed')
      .describe('`read_committed` never delivers records of aborted transactions.'),
    commitStrategy: z
      .enum(['message', 'batch', 'interval', 'external'])
      .default('interval')
      .describe(
        'When settled offsets are committed: `message` after every settled record (most commits, least redelivery), `batch` after every batch handler call and whenever a partition has nothing left in flight, `interval` every commitIntervalMs (or commitEveryMessages); always on revoke and stop. `external`: never by the consumer, because the handler commits them itself (an exactly-once stage, in its transactions).'
      ),
    commitIntervalMs: duration(1).default(1000).describe('`interval` strategy: commit period (default 1s).'),
    commitEveryMessages: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('`interval` strategy: also commit once this many records settled since the last commit.'),
    heartbeatIntervalMs: duration(1).default(3000).describe('Classic protocol heartbeat period.'),
    sessionTimeoutMs: duration(1)
      .default(10_000)
      .describe('Classic protocol: a member silent this long is removed from the group.'),
    rebalanceTimeoutMs: duration(1)
      .default(60_000)
      .describe('How long the group waits for members to rejoin during a rebalance.'),
    revokeDrainMs: duration(0)
      .default(10_000)
      .describe(
        'On revoke: how long in-flight work of the revoked partitions may finish (and be committed) before it is aborted and left to the next owner.'
      ),
    shutdownTimeoutMs: duration(0)
      .default(30_000)
      .describe('stop(): how long in-flight work may finish before it is aborted (and redelivered later).'),
    concurrency: z
      .strictObject({
        mode: z
          .enum(['partition', 'key', 'unordered'])
          .default('partition')
          .describe(
            '`partition`: one record at a time per partition, in order. `key`: records of different keys in parallel, the same key strictly in order. `unordered`: no order.'
          ),
        limit: z
          .number()
          .int()
          .min(1)
          .max(10_000)
          .default(16)
          .describe('Most handler calls running at once across all partitions.')
      })
      .prefault({})
      .describe('Concurrency of handler calls.'),
    maxPollRecords: z
      .number()
      .int()
      .min(1)
      .default(500)
      .describe(
        'Max poll records: the largest batch given to a batch handler, and how many records the client reads ahead of the worker.'
      ),
    batchLingerMs: duration(0)
      .default(0)
      .describe(
        'Batch handlers: how long a partition with fewer than maxPollRecords records waits for more before its batch starts (0: at once).'
      ),
    maxBufferedRecords: z
      .number()
      .int()
      .min(1)
      .default(2000)
      .describe(
        'Records held by the worker (queued + in flight) before fetching pauses; fetching resumes below half of it. Bounds memory whatever the lag.'
      ),
    maxPollIntervalMs: duration(1)
      .default(300_000)
      .describe(
        'Max poll interval: the longest one handler call may run; then its signal aborts and the attempt fails as a transient timeout (KAFKIT_HANDLER_TIMEOUT), so a stuck handler never holds its partition forever. Checked on a tick of a tenth of it (50 ms to 5 s): a call fails between this and this plus two ticks after it started, never earlier.'
      ),
    maxRetries: z
      .number()
      .int()
      .min(0)
      .default(3)
      .describe('In-place retries of a transient failure before the record is dead-lettered.'),
    retryBackoff: z
      .strictObject({
        baseMs: duration(0).default(100).describe('Cap of the first retry delay.'),
        maxMs: duration(0).default(10_000).describe('Largest retry delay.')
      })
      .prefault({})
      .describe('Exponential backoff with full jitter between in-place retries.'),
    dlqTopic: z
      .string()
      .min(1)
      .optional()
      .describe('Dead-letter topic for every subscribed topic. Absent: `<topic>.dlq` per origin topic.'),
    onDeadLetter: z
      .enum(['dlq', 'stop'])
      .default('dlq')
      .describe(
        '`dlq`: a record that fails permanently (or exhausts its retries) goes to the dead-letter topic and the partition moves on. `stop`: the consumer stops instead (nothing committed past the record; done() rejects with KAFKIT_CONSUMER_STOPPED naming it), like Kafka Connect errors.tolerance=none.'
      ),
    ensureTopics: z
      .boolean()
      .default(true)
      .describe('Create missing dead-letter topics at start (partition count of the origin, or 1 for a shared one).'),
    breaker: z
      .strictObject({
        threshold: z
          .number()
          .int()
          .min(1)
          .default(3)
          .describe('Consecutive transient failures that open it (at most maxRetries + 1).'),
        cooldownMs: duration(0).default(30_000).describe('Open time before one probe.')
      })
      .optional()
      .describe(
        'Consumer circuit breaker for downstream outages: while open, fetching pauses and nothing is committed or dead-lettered. Absent: off.'
      ),
    handleSignals: z
      .boolean()
      .default(false)
      .describe('Stop gracefully on SIGTERM and SIGINT (then the process may exit on its own).')
  })
})

export type ConsumerOptions = z.input<typeof consumerOptions.schema>
export type ConsumerConfig = z.output<typeof consumerOptions.schema>

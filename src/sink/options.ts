/**
 * The options of the sink runner, in Kafka Connect's terms where Connect has one (`topics`,
 * `batch.size`, `linger.ms`, `errors.tolerance`, `errors.deadletterqueue.topic.name`): one schema,
 * validated once, with `KAFKA_SINK_*` environment variables beside the connection ones, and
 * documented in docs/options.md. The writer, the mapping and the serde are passed beside them.
 */
import { z } from 'zod'
import { duration } from '../config/duration.ts'
import { connectionEnv, connectionSecrets, connectionShape } from '../kafka/connection.ts'
import { defineOptions } from '../config/define-options.ts'
import { envBytes, envDuration, envInteger, envList, envStartOffset, envString } from '../config/env-parsers.ts'

export const sinkOptions = defineOptions({
  component: 'sink',
  envPrefix: 'KAFKA_SINK_',
  secrets: connectionSecrets,
  env: {
    ...connectionEnv,
    groupId: envString('KAFKA_SINK_GROUP_ID'),
    topics: envList('KAFKA_SINK_TOPICS'),
    batchSize: envInteger('KAFKA_SINK_BATCH_SIZE'),
    'concurrency.limit': envInteger('KAFKA_SINK_CONCURRENCY'),
    maxBytes: envBytes('KAFKA_SINK_MAX_BYTES'),
    maxWaitMs: envDuration('KAFKA_SINK_MAX_WAIT'),
    lingerMs: envDuration('KAFKA_SINK_LINGER'),
    maxRetries: envInteger('KAFKA_SINK_MAX_RETRIES'),
    errorsTolerance: envString('KAFKA_SINK_ERRORS_TOLERANCE'),
    dlqTopic: envString('KAFKA_SINK_DLQ_TOPIC'),
    groupInstanceId: envString('KAFKA_SINK_GROUP_INSTANCE_ID'),
    startOffset: envStartOffset('KAFKA_SINK_START_OFFSET')
  },
  schema: z
    .strictObject({
      ...connectionShape,
      groupId: z
        .string()
        .min(1)
        .describe('Consumer group of the sink (exactly-once writers key their stored offsets by it). Required.'),
      topics: z.array(z.string().min(1)).min(1).describe('Topics to sink (Connect `topics`). Required.'),
      batchSize: z
        .number()
        .int()
        .min(1)
        .default(500)
        .describe('Records of one partition written per database transaction (Connect `batch.size`).'),
      lingerMs: duration(0)
        .default(200)
        .describe('How long a partial batch waits for more records before it is written (Connect `linger.ms`).'),
      maxRetries: z
        .number()
        .int()
        .min(0)
        .default(5)
        .describe(
          'In-place retries of a failed write before the breaker takes over (transient) or the batch is split (permanent).'
        ),
      retryBackoff: z
        .strictObject({
          baseMs: duration(0).default(200).describe('Cap of the first retry delay.'),
          maxMs: duration(0).default(5_000).describe('Largest retry delay.')
        })
        .prefault({})
        .describe('Exponential backoff with full jitter between write retries.'),
      concurrency: z
        .strictObject({
          limit: z
            .number()
            .int()
            .min(1)
            .default(2)
            .describe(
              'Partitions written at the same time (each partition one batch at a time, in order); at most the database pool size.'
            )
        })
        .prefault({})
        .describe(
          "The consumer's `concurrency`, with partition ordering always (a sink writes each partition in order)."
        ),
      maxBufferedRecords: z
        .number()
        .int()
        .min(1)
        .optional()
        .describe(
          'Records held (queued + being written) before fetching pauses; default batchSize x (concurrency.limit + 2), enough for every partition in flight to have its next batch ready.'
        ),
      errorsTolerance: z
        .enum(['none', 'all'])
        .default('none')
        .describe(
          'A bad record (undecodable, mapping threw, row rejected by the database): `none` stops the sink before it (Connect default), `all` dead-letters it and goes on (Connect `errors.tolerance`).'
        ),
      dlqTopic: z
        .string()
        .min(1)
        .optional()
        .describe(
          'Dead-letter topic for bad records (Connect `errors.deadletterqueue.topic.name`); required with `errorsTolerance: all`.'
        ),
      breaker: z
        .strictObject({
          threshold: z
            .number()
            .int()
            .min(1)
            .default(3)
            .describe(
              'Consecutive failed writes (database unavailable) that open the breaker; at most maxRetries + 1.'
            ),
          cooldownMs: duration(0).default(5_000).describe('Open time before one probe write.')
        })
        .prefault({})
        .describe('Circuit breaker: while open the partitions are paused and nothing is committed or dead-lettered.'),
      startOffset: z
        .enum(['earliest', 'latest'])
        .default('earliest')
        .describe(
          "Where a partition without a committed offset starts: `earliest` (-2, oldest) by default, so a new sink stores what the topic already holds, or `latest` (-1, new records only). The same option as the consumer's, whose default is `latest`."
        ),
      maxWaitMs: duration(1).default(200).describe('Fetch: longest the broker waits for data.'),
      maxBytes: z
        .number()
        .int()
        .min(1024)
        .default(1024 * 1024)
        .describe(
          'Fetch: most bytes one fetch returns. The client lets one partition fill a whole fetch, so a smaller fetch makes the broker rotate through the partitions and several partitions have batches ready to write at once (bench/sink).'
        ),
      sessionTimeoutMs: duration(1)
        .default(30_000)
        .describe('Group session timeout: how long a crashed worker keeps its partitions before they move.'),
      heartbeatIntervalMs: duration(1).default(3_000).describe('Group heartbeat interval (below sessionTimeoutMs).'),
      groupInstanceId: z
        .string()
        .min(1)
        .optional()
        .describe(
          'Static group membership: a restarted worker with the same id takes its partitions back at once, without a rebalance.'
        )
    })
    .superRefine((options, context) => {
      if (options.errorsTolerance === 'all' && options.dlqTopic === undefined) {
        context.addIssue({
          code: 'custom',
          path: ['dlqTopic'],
          message: 'a topic name when errorsTolerance is all (bad records go there)'
        })
      }
      if (options.breaker.threshold > options.maxRetries + 1) {
        context.addIssue({
          code: 'custom',
          path: ['breaker', 'threshold'],
          message: `at most maxRetries + 1 (${options.maxRetries + 1}), so an outage opens the breaker before a batch exhausts its retries`
        })
      }
    })
})

export type SinkOptions = z.input<typeof sinkOptions.schema>
export type SinkConfig = z.output<typeof sinkOptions.schema>

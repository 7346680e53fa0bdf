/**
 * The producer's options: one schema (type, defaults, validation, the docs/options.md table), the
 * `KAFKA_PRODUCER_*` environment names beside the connection ones, and tuning presets as profiles
 * (`throughput`, `latency`, `exactlyOnce`), each overridable key by key. Precedence:
 * defaults < profile < environment < code. Functions (serdes, a custom partitioner) are passed beside
 * the options, not through the schema.
 */
import { z } from 'zod'
import { ConfigError } from '../errors/kafkit-error.ts'
import { duration } from '../config/duration.ts'
import { connectionEnv, connectionSecrets, connectionShape } from '../kafka/connection.ts'
import { defineOptions, type EnvBinding } from '../config/define-options.ts'
import { envBoolean, envBytes, envDuration, envInteger, envString, parseInteger } from '../config/env-parsers.ts'

/** `KAFKA_PRODUCER_REQUIRE_ACKS`: `-1`/`all`, `0`/`none`, `1`/`leader`. */
const envAcks = (name: string): EnvBinding => ({
  name,
  parse: raw => {
    const value = raw.trim().toLowerCase()
    if (value === 'all' || value === '-1') return -1
    if (value === 'none' || value === '0') return 0
    if (value === 'leader' || value === '1') return 1
    throw new ConfigError('expected -1 (all), 0 (none) or 1 (leader)')
  }
})

/** `KAFKA_PRODUCER_MAX_ATTEMPTS` counts attempts (first try included); the option counts retries. */
const envAttemptsAsRetries = (name: string): EnvBinding => ({
  name,
  parse: raw => {
    const attempts = parseInteger(raw)
    if (attempts < 1) throw new ConfigError('expected at least 1 attempt')
    return attempts - 1
  }
})

const MiB = 1024 * 1024

export const producerProfiles = ['throughput', 'latency', 'exactlyOnce'] as const
export type ProducerProfile = (typeof producerProfiles)[number]

export const producerOptions = defineOptions({
  component: 'producer',
  envPrefix: 'KAFKA_PRODUCER_',
  secrets: connectionSecrets,
  env: {
    ...connectionEnv,
    profile: envString('KAFKA_PRODUCER_PROFILE'),
    topic: envString('KAFKA_PRODUCER_TOPIC'),
    acks: envAcks('KAFKA_PRODUCER_REQUIRE_ACKS'),
    idempotent: envBoolean('KAFKA_PRODUCER_IDEMPOTENT'),
    maxRetries: envAttemptsAsRetries('KAFKA_PRODUCER_MAX_ATTEMPTS'),
    lingerMs: envDuration('KAFKA_PRODUCER_BATCH_TIMEOUT'),
    batchSize: envInteger('KAFKA_PRODUCER_BATCH_SIZE'),
    batchBytes: envBytes('KAFKA_PRODUCER_BATCH_BYTES'),
    compression: envString('KAFKA_PRODUCER_COMPRESSION'),
    async: envBoolean('KAFKA_PRODUCER_ASYNC'),
    dlqTopic: envString('KAFKA_PRODUCER_DLQ_TOPIC'),
    maxInFlight: envInteger('KAFKA_PRODUCER_MAX_IN_FLIGHT'),
    bufferMemory: envBytes('KAFKA_PRODUCER_BUFFER_MEMORY'),
    deliveryTimeoutMs: envDuration('KAFKA_PRODUCER_DELIVERY_TIMEOUT'),
    transactionalId: envString('KAFKA_PRODUCER_TRANSACTIONAL_ID')
  },
  profiles: {
    // "High Throughput": big batches, a long linger, lz4, more memory and requests in flight.
    throughput: {
      batchSize: 10_000,
      lingerMs: 100,
      compression: 'lz4',
      bufferMemory: 64 * MiB,
      maxInFlight: 10
    },
    // "Low Latency": every message its own request, at once, uncompressed, one at a time.
    latency: { batchSize: 1, lingerMs: 0, compression: 'none', maxInFlight: 1 },
    // "Reliability (Exactly-Once)": idempotent, acks=all, strict order (retries are bounded by
    // deliveryTimeoutMs, as in every profile).
    exactlyOnce: { idempotent: true, acks: -1, maxInFlight: 1 }
  },
  schema: z
    .strictObject({
      ...connectionShape,
      profile: z
        .enum(producerProfiles)
        .optional()
        .describe(
          'A tuning preset applied under the environment and code: `throughput` (batchSize 10000, lingerMs 100, lz4, bufferMemory 64 MiB, maxInFlight 10), `latency` (batchSize 1, lingerMs 0, none, maxInFlight 1), `exactlyOnce` (idempotent, acks -1, maxInFlight 1).'
        ),
      topic: z.string().min(1).optional().describe('Default topic for messages that name none.'),
      acks: z
        .union([z.literal(-1), z.literal(0), z.literal(1)])
        .default(-1)
        .describe(
          'Acknowledgement to wait for: -1 all in-sync replicas, 1 the leader only, 0 none (no offsets, no delivery guarantee).'
        ),
      idempotent: z
        .boolean()
        .default(true)
        .describe(
          'Idempotent producer: the broker drops retried duplicates (producer id + sequence numbers). Needs acks -1.'
        ),
      maxInFlight: z
        .number()
        .int()
        .min(1)
        .max(100)
        .default(5)
        .describe(
          'Produce requests outstanding at once. 1 keeps strict order per partition even when a request has to be retried.'
        ),
      batchSize: z
        .number()
        .int()
        .min(1)
        .default(1000)
        .describe('Most messages per produce request; a batch that reaches it is sent at once.'),
      batchBytes: z
        .number()
        .int()
        .min(1024)
        .default(MiB)
        .describe(
          'Most bytes (keys, values, headers) per produce request; a batch that reaches it is sent at once. Keep it at or below the broker `message.max.bytes` (1 MiB by default).'
        ),
      lingerMs: duration(0)
        .default(5)
        .describe(
          'How long a batch that is not full waits for more messages before it is sent. 0: as soon as a request slot is free (messages still batch up while all slots are busy).'
        ),
      compression: z
        .enum(['none', 'gzip', 'snappy', 'lz4', 'zstd'])
        .default('none')
        .describe('Compression of each record batch.'),
      maxMessageBytes: z
        .number()
        .int()
        .min(1)
        .default(MiB)
        .describe(
          'Largest message (key + value + headers) accepted; a larger one fails at once with KAFKIT_MESSAGE_TOO_LARGE and nothing else is affected.'
        ),
      bufferMemory: z
        .number()
        .int()
        .min(1024)
        .default(8 * MiB)
        .describe(
          'Bytes of messages held (waiting or in flight) before sends wait or fail (bufferFullBehavior). With the other defaults, 8 MiB holds maxInFlight full requests (5 × batchBytes) and the batch being filled; more adds no throughput, only records held longer, which costs garbage-collection CPU per message. Raise it to absorb longer bursts without waiting.'
        ),
      bufferFullBehavior: z
        .enum(['wait', 'fail'])
        .default('wait')
        .describe(
          'When bufferMemory is used up: `wait` holds the send until there is room (at most maxBlockMs), `fail` rejects it at once with KAFKIT_PRODUCER_BUFFER_FULL.'
        ),
      maxBlockMs: duration(0)
        .default(60_000)
        .describe('Longest a send waits for buffer room before it fails with KAFKIT_PRODUCER_BUFFER_FULL.'),
      deliveryTimeoutMs: duration(1)
        .default(120_000)
        .describe(
          'Longest a message may take from send() to its acknowledgement, waiting for buffer room, batching and every retry included (Kafka `delivery.timeout.ms`). Then it fails with KAFKIT_SEND_TIMEOUT; one already sent may still be written.'
        ),
      maxRetries: z
        .number()
        .int()
        .min(0)
        .optional()
        .describe(
          'An extra bound on retries of a request that failed with a retriable error (leader moved, broker unreachable, not enough replicas); unset, a request is retried until deliveryTimeoutMs. Other errors are not retried. KAFKA_PRODUCER_MAX_ATTEMPTS counts attempts, so it sets this to attempts - 1. With idempotence, 0 or at least 2.'
        ),
      retryBackoff: z
        .strictObject({
          baseMs: duration(0).default(100).describe('Cap of the first retry delay (Kafka `retry.backoff.ms`).'),
          maxMs: duration(0).default(1000).describe('Largest retry delay (Kafka `retry.backoff.max.ms`).')
        })
        .prefault({})
        .describe(
          'Exponential backoff with jitter between retries: a random delay in [cap/2, cap], cap = min(maxMs, baseMs * 2^(retry-1)). Leader and connection errors also refresh the cluster metadata before the next try.'
        ),
      breaker: z
        .strictObject({
          enabled: z.boolean().default(true).describe('Use the circuit breaker.'),
          openAfterMs: duration(1)
            .default(60_000)
            .describe(
              "The breaker opens when requests have kept failing with retriable errors for this long without any acknowledgement: the cluster as a whole takes no writes. A node of several going down does not open it (its partitions move to other leaders within the brokers' session timeout; a request hung on a paused node ends within requestTimeoutMs)."
            ),
          cooldownMs: duration(0)
            .default(30_000)
            .describe(
              'How long it stays open (new sends fail fast with KAFKIT_CIRCUIT_OPEN; messages already accepted keep their delivery timeout) before one probe message.'
            )
        })
        .prefault({})
        .describe('Circuit breaker: fails sends fast while the cluster takes no writes.'),
      dlqTopic: z
        .string()
        .min(1)
        .optional()
        .describe(
          'Dead-letter topic for messages that failed for good with a retriable error before their delivery timeout (their maxRetries ran out): they are written there with `kafkit-dlq-*` headers and send() resolves with status `dead-lettered`. Not used inside transactions.'
        ),
      partitioner: z
        .enum(['murmur2', 'round-robin'])
        .default('murmur2')
        .describe(
          "`murmur2`: keyed messages by Java's default hash (same partition as a Java producer), keyless ones stick to one partition per batch, moving on batch by batch; `round-robin`: every message to the next partition, keys ignored. A function (message, key bytes, partition count) => partition is accepted in code."
        ),
      stampHeaders: z
        .boolean()
        .default(true)
        .describe('Add `event-id` (UUIDv7) and `timestamp` (RFC 3339) to messages that lack them.'),
      async: z
        .boolean()
        .default(false)
        .describe(
          'Async writes: send() resolves (status `queued`) once the message is buffered, not acknowledged; failures go to metrics, the `failed` event and the DLQ.'
        ),
      transactionalId: z
        .string()
        .min(1)
        .optional()
        .describe(
          'Transactional id: a restarted producer with the same id fences its predecessor. Absent: transactions still work with a random id (no fencing across restarts).'
        ),
      autocreateTopics: z
        .boolean()
        .default(false)
        .describe('Let the broker create a missing topic on first use (if the broker allows it).'),
      metadataMaxAgeMs: duration(100)
        .default(30_000)
        .describe('How often partition counts are refreshed (new partitions start receiving keyless messages).')
    })
    .superRefine((options, context) => {
      if (options.idempotent && options.acks !== -1) {
        context.addIssue({
          code: 'custom',
          path: ['acks'],
          message: '-1 while idempotent is true (idempotence needs acknowledgement by all in-sync replicas)'
        })
      }
      if (options.idempotent && options.maxRetries === 1) {
        context.addIssue({
          code: 'custom',
          path: ['maxRetries'],
          message:
            '0 or at least 2 while idempotent is true (the Kafka client turns a single retry of an idempotent producer into unlimited ones)'
        })
      }
      if (options.retryBackoff.maxMs < options.retryBackoff.baseMs) {
        context.addIssue({
          code: 'custom',
          path: ['retryBackoff', 'maxMs'],
          message: `at least retryBackoff.baseMs (${options.retryBackoff.baseMs})`
        })
      }
    })
})

/** What the constructor takes (besides functions): every key optional, with its default. */
export type ProducerOptions = z.input<typeof producerOptions.schema>
/** The resolved, frozen options. */
export type ProducerConfig = z.output<typeof producerOptions.schema>

/**
 * Producer configuration: seed 004's environment names, seed 002's profiles, precedence, and the
 * invalid cases that must fail at construction naming key, value and what is allowed.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { producerOptions } from '../../../src/producer/options.ts'
import { Producer } from '../../../src/producer/producer.ts'

const brokers = ['127.0.0.1:1']

function configError(fn: () => unknown): Error & { code: string; details: Record<string, unknown> } {
  try {
    fn()
  } catch (error) {
    assert.ok(isKafkitError(error), `a KafkitError, got ${String(error)}`)
    assert.equal(error.code, 'KAFKIT_CONFIG_INVALID')
    return error
  }
  assert.fail('expected a ConfigError')
}

test('defaults: idempotent, acks all, Java-compatible partitioner, breaker on, 32 MiB buffer', () => {
  const config = producerOptions.resolve({ brokers }, { env: {} })
  assert.equal(config.idempotent, true)
  assert.equal(config.acks, -1)
  assert.equal(config.partitioner, 'murmur2')
  assert.equal(config.compression, 'none')
  assert.equal(config.maxRetries, undefined, 'retries are bounded by deliveryTimeoutMs')
  assert.deepEqual(config.retryBackoff, { baseMs: 100, maxMs: 1000 })
  assert.deepEqual(config.breaker, { enabled: true, openAfterMs: 60_000, cooldownMs: 30_000 })
  assert.equal(config.bufferMemory, 8 * 1024 * 1024)
  assert.equal(config.bufferFullBehavior, 'wait')
  assert.equal(config.deliveryTimeoutMs, 120_000)
  assert.equal(config.stampHeaders, true)
  assert.equal(config.async, false)
})

test("seed 004's environment variables map onto the options", () => {
  const env = {
    KAFKA_BROKERS: 'b1:9092,b2:9092',
    KAFKA_CLIENT_ID: 'bookings',
    KAFKA_PRODUCER_MAX_ATTEMPTS: '3',
    KAFKA_PRODUCER_BATCH_TIMEOUT: '10ms',
    KAFKA_PRODUCER_REQUIRE_ACKS: 'all',
    KAFKA_PRODUCER_COMPRESSION: 'snappy',
    KAFKA_PRODUCER_ASYNC: 'true',
    KAFKA_PRODUCER_DLQ_TOPIC: 'dlq-domain-services',
    KAFKA_PRODUCER_BUFFER_MEMORY: '64MB',
    KAFKA_PRODUCER_DELIVERY_TIMEOUT: '5s'
  }
  const config = producerOptions.resolve({}, { env })
  assert.deepEqual(config.brokers, ['b1:9092', 'b2:9092'])
  assert.equal(config.clientId, 'bookings')
  assert.equal(config.maxRetries, 2, 'MAX_ATTEMPTS counts the first try')
  assert.equal(config.lingerMs, 10)
  assert.equal(config.acks, -1)
  assert.equal(config.compression, 'snappy')
  assert.equal(config.async, true)
  assert.equal(config.dlqTopic, 'dlq-domain-services')
  assert.equal(config.bufferMemory, 64 * 1024 * 1024)
  assert.equal(config.deliveryTimeoutMs, 5000)
  for (const [raw, acks] of [
    ['-1', -1],
    ['0', 0],
    ['1', 1],
    ['leader', 1],
    ['none', 0]
  ] as const) {
    const resolved = producerOptions.resolve(
      { idempotent: false },
      { env: { KAFKA_BROKERS: 'b:1', KAFKA_PRODUCER_REQUIRE_ACKS: raw } }
    )
    assert.equal(resolved.acks, acks, `REQUIRE_ACKS=${raw}`)
  }
})

test('profiles apply under environment and code, key by key', () => {
  const throughput = producerOptions.resolve({ brokers }, { env: {}, profile: 'throughput' })
  assert.equal(throughput.batchSize, 10_000)
  assert.equal(throughput.lingerMs, 100)
  assert.equal(throughput.compression, 'lz4')
  assert.equal(throughput.bufferMemory, 64 * 1024 * 1024)
  assert.equal(throughput.maxInFlight, 10)
  const latency = producerOptions.resolve({ brokers }, { env: {}, profile: 'latency' })
  assert.deepEqual([latency.batchSize, latency.lingerMs, latency.compression, latency.maxInFlight], [1, 0, 'none', 1])
  const exactlyOnce = producerOptions.resolve({ brokers, maxInFlight: 2 }, { env: {}, profile: 'exactlyOnce' })
  assert.deepEqual([exactlyOnce.idempotent, exactlyOnce.acks, exactlyOnce.maxRetries], [true, -1, undefined])
  assert.equal(exactlyOnce.maxInFlight, 2, 'code beats the profile')
  const fromEnv = producerOptions.resolve(
    { brokers },
    { env: { KAFKA_PRODUCER_COMPRESSION: 'zstd' }, profile: 'throughput' }
  )
  assert.equal(fromEnv.compression, 'zstd', 'environment beats the profile')
  // The constructor takes the profile from the options or KAFKA_PRODUCER_PROFILE.
  const producer = new Producer({ brokers, env: { KAFKA_PRODUCER_PROFILE: 'latency' } })
  assert.equal(producer.config.batchSize, 1)
  const coded = new Producer({ brokers, profile: 'throughput', lingerMs: 7, env: {} })
  assert.equal(coded.config.lingerMs, 7)
  assert.equal(coded.config.batchSize, 10_000)
})

test('invalid configuration fails at construction with key, value and what is allowed', () => {
  const cases: [Record<string, unknown>, Record<string, string>, RegExp][] = [
    [
      { compression: 'brotli' },
      {},
      /`compression`: got "brotli", expected one of "none", "gzip", "snappy", "lz4", "zstd"/
    ],
    [{}, { KAFKA_PRODUCER_COMPRESSION: 'brotli' }, /`compression` \(from KAFKA_PRODUCER_COMPRESSION\): got "brotli"/],
    [{ acks: 1 }, {}, /`acks`: got 1, expected -1 while idempotent is true/],
    [
      {},
      { KAFKA_PRODUCER_REQUIRE_ACKS: 'two' },
      /KAFKA_PRODUCER_REQUIRE_ACKS="two": expected -1 \(all\), 0 \(none\) or 1 \(leader\)/
    ],
    [{}, { KAFKA_PRODUCER_MAX_ATTEMPTS: '0' }, /KAFKA_PRODUCER_MAX_ATTEMPTS="0": expected at least 1 attempt/],
    [{ maxRetries: 1 }, {}, /`maxRetries`: got 1, expected 0 or at least 2 while idempotent is true/],
    [{ maxRetries: -1 }, {}, /`maxRetries`: got -1, expected at least 0/],
    [{ maxInFlight: 0 }, {}, /`maxInFlight`: got 0, expected at least 1/],
    [{ lingerMs: 'soon' }, {}, /`lingerMs`: got "soon", expected a duration such as 250, 250ms, 30s, 5m, 1h30m or 1d/],
    [{ lingerMs: -5 }, {}, /`lingerMs`: got -5, expected at least 0/],
    [{ lingerMs: true }, {}, /`lingerMs`: got true, expected a number of milliseconds or a duration such as 30s or 5m/],
    [{}, { KAFKA_PRODUCER_BATCH_TIMEOUT: 'soon' }, /KAFKA_PRODUCER_BATCH_TIMEOUT="soon": expected a duration/],
    [{ bufferFullBehavior: 'drop' }, {}, /`bufferFullBehavior`: got "drop", expected one of "wait", "fail"/],
    [
      { retryBackoff: { baseMs: 500, maxMs: 100 } },
      {},
      /`retryBackoff.maxMs`: got 100, expected at least retryBackoff.baseMs \(500\)/
    ],
    [{ breaker: { openAfterMs: 0 } }, {}, /`breaker.openAfterMs`: got 0, expected at least 1/],
    [{ partitioner: 'random' }, {}, /`partitioner`: got "random", expected one of "murmur2", "round-robin"/],
    [{ batchSze: 10 }, {}, /unknown option `batchSze`/],
    [{}, { KAFKA_PRODUCER_BATCH_TIMEOUTS: '1s' }, /unknown environment variable KAFKA_PRODUCER_BATCH_TIMEOUTS/],
    [{ brokers: ['localhost'] }, {}, /`brokers.0`: got "localhost"/],
    [{ profile: 'turbo' }, {}, /profile "turbo" is unknown; use one of throughput, latency, exactlyOnce/]
  ]
  for (const [options, env, expected] of cases) {
    const error = configError(() => new Producer({ brokers, ...options, env }))
    assert.match(error.message, expected)
  }
  const missing = configError(() => new Producer({ env: {} }))
  assert.match(missing.message, /`brokers`/)
})

test('secrets from the environment never appear in errors or in the redacted config', () => {
  const env = {
    KAFKA_BROKERS: 'b:1',
    KAFKA_SASL_MECHANISM: 'PLAIN',
    KAFKA_SASL_USERNAME: 'u',
    KAFKA_SASL_PASSWORD: 'hunter2-secret'
  }
  const producer = new Producer({ env })
  assert.equal(producer.config.sasl?.password, 'hunter2-secret')
  assert.doesNotMatch(JSON.stringify(producerOptions.redact(producer.config)), /hunter2-secret/)
  const error = configError(
    () => new Producer({ sasl: { mechanism: 'PLAIN', password: 42 as unknown as string }, env })
  )
  assert.doesNotMatch(error.message, /42|hunter2/)
  assert.doesNotMatch(producerOptions.table(), /hunter2/)
})

test('every time option takes milliseconds or a duration in one grammar, in code and in the environment', () => {
  const config = producerOptions.resolve(
    { brokers, lingerMs: '10ms', deliveryTimeoutMs: '2m', retryBackoff: { baseMs: 100, maxMs: '1.5s' } },
    { env: { KAFKA_PRODUCER_BATCH_TIMEOUT: '5ms' } }
  )
  assert.equal(config.lingerMs, 10, 'code beats the environment')
  assert.equal(config.deliveryTimeoutMs, 120_000)
  assert.equal(config.retryBackoff.maxMs, 1500)
  assert.equal(
    producerOptions.resolve({ brokers, deliveryTimeoutMs: '1h30m' }, { env: {} }).deliveryTimeoutMs,
    5_400_000
  )
  assert.equal(
    producerOptions.resolve({ brokers }, { env: { KAFKA_PRODUCER_DELIVERY_TIMEOUT: '1s500ms' } }).deliveryTimeoutMs,
    1500
  )
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { z } from 'zod'
import { connectionEnv, connectionSecrets, connectionShape } from '../../../src/kafka/connection.ts'
import { defineOptions } from '../../../src/config/define-options.ts'
import { envDuration, envInteger, parseBytes, parseDurationMs } from '../../../src/config/env-parsers.ts'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'

const options = defineOptions({
  component: 'sample',
  schema: z.strictObject({
    ...connectionShape,
    retries: z.number().int().min(0).max(10).default(3).describe('How often to retry.'),
    lingerMs: z.number().int().min(0).default(0).describe('Batch wait.'),
    acks: z.enum(['0', '1', 'all']).default('all').describe('Acks.')
  }),
  env: { ...connectionEnv, retries: envInteger('KAFKA_SAMPLE_RETRIES'), lingerMs: envDuration('KAFKA_SAMPLE_LINGER') },
  envPrefix: 'KAFKA_SAMPLE_',
  secrets: connectionSecrets,
  profiles: { fast: { lingerMs: 50, retries: 1 } }
})

function configError(fn: () => unknown): Error & { code: string; details: Record<string, unknown> } {
  try {
    fn()
  } catch (error) {
    assert.ok(isKafkitError(error))
    assert.equal(error.code, 'KAFKIT_CONFIG_INVALID')
    return error
  }
  assert.fail('expected a ConfigError')
}

test('precedence: defaults < profile < environment < code, result frozen', () => {
  const env = { KAFKA_BROKERS: 'a:1,b:2', KAFKA_SAMPLE_LINGER: '2s' }
  const resolved = options.resolve({ retries: 7 }, { env, profile: 'fast' })
  assert.deepEqual(resolved.brokers, ['a:1', 'b:2'])
  assert.equal(resolved.lingerMs, 2000, 'environment beats profile')
  assert.equal(resolved.retries, 7, 'code beats profile')
  assert.equal(resolved.acks, 'all', 'default')
  assert.ok(Object.isFrozen(resolved) && Object.isFrozen(resolved.brokers))
})

test('an invalid value names the key, the value and what is allowed', () => {
  const error = configError(() => options.resolve({ brokers: ['a:1'], retries: 99 }, { env: {} }))
  assert.match(error.message, /`retries`: got 99, expected at most 10/)
  const acks = configError(() => options.resolve({ brokers: ['a:1'], acks: '2' as 'all' }, { env: {} }))
  assert.match(acks.message, /`acks`: got "2", expected one of "0", "1", "all"/)
})

test('environment errors name the variable', () => {
  const error = configError(() => options.resolve({ brokers: ['a:1'] }, { env: { KAFKA_SAMPLE_RETRIES: 'lots' } }))
  assert.match(error.message, /KAFKA_SAMPLE_RETRIES="lots": expected a whole number/)
  const range = configError(() => options.resolve({ brokers: ['a:1'] }, { env: { KAFKA_SAMPLE_RETRIES: '50' } }))
  assert.match(range.message, /`retries` \(from KAFKA_SAMPLE_RETRIES\): got 50/)
})

test('unknown keys, unknown variables with the prefix and unknown profiles fail', () => {
  const key = configError(() => options.resolve({ brokers: ['a:1'], retires: 1 } as never, { env: {} }))
  assert.match(key.message, /unknown option `retires`/)
  const variable = configError(() => options.resolve({ brokers: ['a:1'] }, { env: { KAFKA_SAMPLE_RETRYS: '1' } }))
  assert.match(variable.message, /unknown environment variable KAFKA_SAMPLE_RETRYS/)
  const profile = configError(() => options.resolve({ brokers: ['a:1'] }, { env: {}, profile: 'turbo' }))
  assert.match(profile.message, /profile "turbo" is unknown; use one of fast/)
})

test('missing brokers is reported', () => {
  const error = configError(() => options.resolve({}, { env: {} }))
  assert.match(error.message, /`brokers`/)
})

test('secrets never appear in errors or redacted copies', () => {
  const env = { KAFKA_BROKERS: 'a:1', KAFKA_SASL_MECHANISM: 'PLAIN', KAFKA_SASL_PASSWORD: 's3cr3t-pw' }
  const resolved = options.resolve({}, { env })
  assert.equal(resolved.sasl?.password, 's3cr3t-pw')
  assert.doesNotMatch(JSON.stringify(options.redact(resolved)), /s3cr3t-pw/)
  const error = configError(() =>
    options.resolve({ sasl: { mechanism: 'PLAIN', password: 12 as unknown as string } }, { env })
  )
  assert.doesNotMatch(error.message, /12/)
  assert.match(error.message, /sasl\.password/)
  assert.doesNotMatch(options.table(), /s3cr3t/)
})

test('the options table lists every key with type, default and variable', () => {
  const table = options.table()
  assert.match(
    table,
    /\| `retries` \| integer \(>= 0, <= 10\) \| `3` \| `KAFKA_SAMPLE_RETRIES` \| How often to retry\. \|/
  )
  assert.match(table, /\| `sasl\.password` \| string \| {2}\| `KAFKA_SASL_PASSWORD` \|/)
  assert.match(table, /\| `acks` \| `"0"` \\\| `"1"` \\\| `"all"` \|/)
})

test('duration and size parsers', () => {
  assert.equal(parseDurationMs('10ms'), 10)
  assert.equal(parseDurationMs('1.5s'), 1500)
  assert.equal(parseDurationMs('5m'), 300_000)
  assert.equal(parseBytes('10MB'), 10 * 1024 * 1024)
  assert.throws(() => parseDurationMs('soon'), /expected a duration/)
})

/** The one connection model of the entry points that take nothing but a connection (topology, DLQ operations, testing). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { clientOptionsOf, pickConnection } from '../../../src/kafka/connection.ts'

test('brokers from code win over KAFKA_BROKERS; the tool names the client unless KAFKA_CLIENT_ID does', () => {
  const env = { KAFKA_BROKERS: 'env-a:9092,env-b:9092' }
  assert.deepEqual(clientOptionsOf({}, 'kafkit-tool', env).bootstrapBrokers, ['env-a:9092', 'env-b:9092'])
  const given = clientOptionsOf({ brokers: ['code:9092'], requestTimeoutMs: '5s' }, 'kafkit-tool', env)
  assert.deepEqual(given.bootstrapBrokers, ['code:9092'])
  assert.equal(given.clientId, 'kafkit-tool')
  assert.equal(given.requestTimeout, 5000)
  assert.equal(clientOptionsOf({}, 'kafkit-tool', { ...env, KAFKA_CLIENT_ID: 'billing' }).clientId, 'billing')
  assert.equal(clientOptionsOf({ clientId: 'mine' }, 'kafkit-tool', env).clientId, 'mine')
})

test('no brokers anywhere, or a bad one, is a ConfigError naming the key; a password is never printed', () => {
  assert.throws(
    () => clientOptionsOf({}, 'kafkit-tool', {}),
    (error: unknown) =>
      isKafkitError(error) && error.code === 'KAFKIT_CONFIG_INVALID' && /`brokers`/.test(error.message)
  )
  assert.throws(() => clientOptionsOf({ brokers: ['no-port'] }, 'kafkit-tool', {}), /`brokers.0`.*host:port/)
  assert.throws(
    () =>
      clientOptionsOf(
        { brokers: ['a:1'], sasl: { mechanism: 'NOPE' as 'PLAIN', password: 'hunter2' } },
        'kafkit-tool',
        {}
      ),
    (error: unknown) =>
      error instanceof Error && /sasl.mechanism/.test(error.message) && !error.message.includes('hunter2')
  )
})

test('pickConnection keeps the connection keys of a larger options object and nothing else', () => {
  const options = { brokers: ['a:1'], topic: 't', signal: undefined, clientId: 'c' }
  assert.deepEqual(pickConnection(options), { brokers: ['a:1'], clientId: 'c' })
})

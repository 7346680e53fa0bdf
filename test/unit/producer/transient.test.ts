/** Which client failures count as retriable (src/kafka/errors.ts), on the client's own error classes. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MultipleErrors, NetworkError, ProtocolError, TimeoutError } from '@platformatic/kafka'
import { isRetriable as isTransient } from '../../../src/kafka/errors.ts'

test('network trouble, timeouts and retriable broker errors are transient, also inside retries', () => {
  assert.equal(isTransient(new NetworkError('Connection closed')), true)
  assert.equal(isTransient(new TimeoutError('Request timed out')), true)
  assert.equal(isTransient(new ProtocolError('NOT_LEADER_OR_FOLLOWER')), true)
  const retried = new MultipleErrors('fetch failed 4 times.', [
    new NetworkError('Connection closed'),
    new ProtocolError('NOT_COORDINATOR')
  ])
  assert.equal(isTransient(retried), true)
})

test('a closed client or pool is not transient: it never reopens', () => {
  const closed = new NetworkError('Client is closed.', { canRetry: false, closed: true })
  assert.equal(isTransient(closed), false)
  assert.equal(isTransient(new MultipleErrors('consume failed.', [closed])), false)
})

test('errors about the request itself are not transient', () => {
  assert.equal(isTransient(new ProtocolError('MESSAGE_TOO_LARGE')), false)
  assert.equal(isTransient(new ProtocolError('TOPIC_AUTHORIZATION_FAILED')), false)
  assert.equal(isTransient(new Error('plain')), false)
  assert.equal(isTransient(undefined), false)
})

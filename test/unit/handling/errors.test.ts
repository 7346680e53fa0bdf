import assert from 'node:assert/strict'
import { test } from 'node:test'
import { KafkitError } from '../../../src/errors/kafkit-error.ts'
import {
  BusinessError,
  classifyError,
  createErrorClassifier,
  DeserializationError,
  explicitKind,
  HandlerTimeoutError,
  PermanentError,
  SchemaMismatchError,
  TransientError
} from '../../../src/handling/errors.ts'

test('the three kinds carry their kind, code and retryable flag', () => {
  const transient = new TransientError('db down', { retryAfterMs: 500 })
  assert.equal(transient.kind, 'transient')
  assert.equal(transient.code, 'KAFKIT_HANDLER_TRANSIENT')
  assert.equal(transient.retryable, true)
  assert.equal(transient.retryAfterMs, 500)
  assert.equal(transient.name, 'TransientError')
  const permanent = new PermanentError('bad schema')
  assert.deepEqual(
    [permanent.kind, permanent.code, permanent.retryable],
    ['permanent', 'KAFKIT_HANDLER_PERMANENT', false]
  )
  const business = new BusinessError('booking conflict')
  assert.deepEqual([business.kind, business.code, business.retryable], ['business', 'KAFKIT_HANDLER_BUSINESS', false])
  assert.equal(new DeserializationError('x').code, 'KAFKIT_DESERIALIZATION_FAILED')
  assert.equal(new DeserializationError('x').kind, 'permanent')
  assert.equal(new SchemaMismatchError('x').kind, 'permanent')
  assert.equal(new HandlerTimeoutError('x').kind, 'transient')
  assert.equal(new HandlerTimeoutError('x').code, 'KAFKIT_HANDLER_TIMEOUT')
  assert.ok(transient instanceof KafkitError)
})

test("seed 004's message lists classify plain errors, case-insensitively", () => {
  for (const text of [
    'connect: Connection refused',
    'request TIMEOUT after 30s',
    'context deadline exceeded',
    'dial tcp: network is unreachable',
    'write: broken pipe',
    'read tcp 10.0.0.1: i/o timeout',
    'Temporary failure in name resolution'
  ]) {
    assert.equal(classifyError(new Error(text)), 'transient', text)
  }
  for (const text of [
    'Invalid message format',
    'schema mismatch on field x',
    'Deserialization failed',
    'unknown topic foo'
  ]) {
    assert.equal(classifyError(new Error(text)), 'permanent', text)
  }
})

test('unknown errors are transient by default; the fallback and the lists are configurable', () => {
  assert.equal(classifyError(new Error('something odd')), 'transient')
  assert.equal(classifyError('a thrown string'), 'transient')
  assert.equal(classifyError(undefined), 'transient')
  const strict = createErrorClassifier({ fallback: 'permanent', transientPatterns: ['Too Many Requests'] })
  assert.equal(strict(new Error('something odd')), 'permanent')
  assert.equal(strict(new Error('HTTP 429 too many requests')), 'transient')
  const extra = createErrorClassifier({ permanentPatterns: ['not found'] })
  assert.equal(extra(new Error('customer not found')), 'permanent')
})

test('explicit kinds win, also deep in the cause chain and over the message text', () => {
  assert.equal(classifyError(new BusinessError('timeout of the booking window')), 'business')
  assert.equal(classifyError(new TransientError('invalid message?')), 'transient')
  const wrapped = new Error('save failed', {
    cause: new Error('layer', { cause: new PermanentError('no such account') })
  })
  assert.equal(classifyError(wrapped), 'permanent')
  assert.equal(explicitKind(wrapped), undefined, 'explicitKind looks at the error itself only')
  assert.equal(explicitKind(new BusinessError('x')), 'business')
})

test('network error codes, TimeoutError, retryable Kafkit errors and SyntaxError are recognised', () => {
  const refused = Object.assign(new Error('connect failed'), { code: 'ECONNREFUSED' })
  assert.equal(classifyError(refused), 'transient')
  assert.equal(classifyError(new Error('query failed', { cause: refused })), 'transient')
  assert.equal(classifyError(new DOMException('The operation timed out', 'TimeoutError')), 'transient')
  assert.equal(classifyError(new KafkitError('KAFKIT_TOPIC_CONFLICT', 'x', { retryable: true })), 'transient')
  let syntax: unknown
  try {
    JSON.parse('{nope')
  } catch (error) {
    syntax = error
  }
  assert.equal(classifyError(syntax), 'permanent')
})

test('a cyclic cause chain does not hang the classifier', () => {
  const a = new Error('a')
  const b = new Error('b', { cause: a })
  ;(a as { cause?: unknown }).cause = b
  assert.equal(classifyError(a), 'transient')
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { checkTopicName } from '../../../src/topology/topic-naming.ts'

test('conventional names and their derived retry/DLQ topics pass', () => {
  for (const name of [
    'todos.task.created',
    'users.account.registered',
    'todos.task.events.retry.5m',
    'todos.task.events.dlq'
  ]) {
    assert.deepEqual(checkTopicName(name), { legal: true, conventional: true, problems: [] }, name)
  }
})

test('unconventional names are legal with advice', () => {
  const check = checkTopicName('xact-downloads')
  assert.equal(check.legal, true)
  assert.equal(check.conventional, false)
  assert.match(check.problems[0] ?? '', /<domain>\.<entity>\.<event-type>/)
  assert.equal(checkTopicName('Todos.Task.Created').conventional, false)
})

test('illegal names are reported', () => {
  assert.equal(checkTopicName('has space').legal, false)
  assert.equal(checkTopicName('x'.repeat(250)).legal, false)
  assert.equal(checkTopicName('..').legal, false)
  assert.match(checkTopicName('a.b_c.d').problems.join(), /mixes "\." and "_"/)
})

import assert from 'node:assert/strict'
import diagnostics from 'node:diagnostics_channel'
import { test } from 'node:test'
import { z } from 'zod'
import { HANDLER_CHANNEL, type HandlerEvent } from '../../../src/handling/diagnostics.ts'
import { BusinessError, PermanentError, SchemaMismatchError } from '../../../src/handling/errors.ts'
import { EventRouter } from '../../../src/handling/event-router.ts'
import { HandlerExecutor } from '../../../src/handling/handler-executor.ts'
import type { Middleware } from '../../../src/handling/types.ts'
import { captureLogger, consumed, context, resolved } from './fixtures.ts'

interface TodoEvents {
  'todos.task.created': { todoId: string; title: string }
  'todos.task.completed': { todoId: string }
}

test('routes by the event-type header, the ce_type header or a structured CloudEvent', async () => {
  const seen: string[] = []
  const router = new EventRouter<TodoEvents>({ logger: captureLogger() })
    .on('todos.task.created', m => resolved(seen.push(`created:${m.value.title}`)))
    .on('todos.task.completed', m => resolved(seen.push(`completed:${m.value.todoId}`)))
  const handle = router.handler()
  await handle(consumed({ headers: { 'event-type': 'todos.task.created' }, value: { todoId: '1', title: 'milk' } }), {
    ...context(),
    attempt: 1
  })
  await handle(consumed({ headers: { ce_type: 'todos.task.completed' }, value: { todoId: '2' } }), {
    ...context(),
    attempt: 1
  })
  await handle(consumed({ value: { specversion: '1.0', type: 'todos.task.completed', id: 'x', todoId: '3' } }), {
    ...context(),
    attempt: 1
  })
  assert.deepEqual(seen, ['created:milk', 'completed:2', 'completed:3'])
  assert.deepEqual(router.types, ['todos.task.created', 'todos.task.completed'])
})

test('a custom extractor replaces the default', async () => {
  const seen: unknown[] = []
  const router = new EventRouter({
    logger: captureLogger(),
    eventType: m => (m.value as { kind?: string }).kind
  }).on('ping', m => resolved(seen.push(m.value)))
  await router.handler()(consumed({ value: { kind: 'ping' } }), { ...context(), attempt: 1 })
  assert.deepEqual(seen, [{ kind: 'ping' }])
})

test('by default an unknown type is skipped (and published), a message without a type is dead-lettered', async t => {
  const events: HandlerEvent[] = []
  const listener = (event: unknown) => events.push(event as HandlerEvent)
  diagnostics.subscribe(HANDLER_CHANNEL, listener)
  t.after(() => diagnostics.unsubscribe(HANDLER_CHANNEL, listener))
  let calls = 0
  const router = new EventRouter({ logger: captureLogger() }).on('known', () => resolved(calls++))
  const executor = new HandlerExecutor({ handler: router.handler(), logger: captureLogger() })
  const unknown = await executor.execute(consumed({ headers: { 'event-type': 'other.type' } }), context())
  assert.equal(unknown.kind, 'done')
  const untyped = await executor.execute(consumed(), context())
  assert.equal(untyped.kind, 'dead-letter')
  assert.equal(untyped.kind === 'dead-letter' && untyped.reason, 'permanent')
  assert.equal(untyped.kind === 'dead-letter' && (untyped.error as PermanentError).code, 'KAFKIT_EVENT_UNROUTABLE')
  assert.equal(calls, 0)
  assert.deepEqual(
    events.flatMap(e => (e.type === 'unrouted' ? [`${e.eventType}:${e.action}`] : [])),
    ['other.type:skip', 'undefined:dead-letter']
  )
})

test('fallbacks are configurable: business, dead-letter or a handler', async () => {
  const business = new EventRouter({ fallback: 'business', logger: captureLogger() }).handler()
  await assert.rejects(
    business(consumed({ headers: { 'event-type': 'x' } }), { ...context(), attempt: 1 }),
    (error: unknown) => error instanceof BusinessError && error.code === 'KAFKIT_EVENT_UNROUTABLE'
  )
  const strict = new EventRouter({ fallback: 'dead-letter', logger: captureLogger() }).handler()
  await assert.rejects(
    strict(consumed({ headers: { 'event-type': 'x' } }), { ...context(), attempt: 1 }),
    PermanentError
  )
  const seen: (string | undefined)[] = []
  const custom = new EventRouter({
    fallback: m => resolved(seen.push(m.meta.eventType)),
    missingType: 'skip',
    logger: captureLogger()
  }).handler()
  await custom(consumed({ headers: { 'event-type': 'y' } }), { ...context(), attempt: 1 })
  await custom(consumed(), { ...context(), attempt: 1 })
  assert.deepEqual(seen, ['y'])
  assert.throws(() => new EventRouter({ fallback: 'drop' as 'skip' }), /`fallback`: got "drop"/)
})

test('a route schema parses the value; a mismatch is a permanent SchemaMismatchError', async () => {
  const seen: unknown[] = []
  const schema = z.object({ todoId: z.string(), title: z.string().min(1) })
  const router = new EventRouter<TodoEvents>({ logger: captureLogger() }).on(
    'todos.task.created',
    m => resolved(seen.push(m.value)),
    { schema }
  )
  const handle = router.handler()
  await handle(
    consumed({ headers: { 'event-type': 'todos.task.created' }, value: { todoId: '1', title: 't', extra: true } }),
    { ...context(), attempt: 1 }
  )
  assert.deepEqual(seen, [{ todoId: '1', title: 't' }], 'the handler gets the parsed value')
  await assert.rejects(
    handle(consumed({ headers: { 'event-type': 'todos.task.created' }, value: { todoId: 1 } }), {
      ...context(),
      attempt: 1
    }),
    (error: unknown) =>
      error instanceof SchemaMismatchError &&
      error.kind === 'permanent' &&
      /todoId: Invalid input: expected string, received number; title: /.test(error.message)
  )
})

test('router middleware wraps every message, route middleware only its route, in order', async () => {
  const order: string[] = []
  const tag =
    <V>(name: string): Middleware<V> =>
    next =>
    async (m, c) => {
      order.push(`${name}>`)
      await next(m, c)
      order.push(`<${name}`)
    }
  const router = new EventRouter<TodoEvents>({ middleware: [tag('r1')], logger: captureLogger() })
  router.use(tag('r2'))
  router.on('todos.task.created', () => resolved(order.push('handler')), { middleware: [tag('h1'), tag('h2')] })
  const handle = router.handler()
  await handle(consumed({ headers: { 'event-type': 'todos.task.created' } }), { ...context(), attempt: 1 })
  assert.deepEqual(order, ['r1>', 'r2>', 'h1>', 'h2>', 'handler', '<h2', '<h1', '<r2', '<r1'])
  order.length = 0
  await handle(consumed({ headers: { 'event-type': 'unknown' } }), { ...context(), attempt: 1 })
  assert.deepEqual(order, ['r1>', 'r2>', '<r2', '<r1'], 'router middleware sees unrouted messages too')
  assert.throws(() => router.on('todos.task.completed', async () => {}), /before handler\(\) is taken/)
})

test('an event type can have only one handler', () => {
  const router = new EventRouter({ logger: captureLogger() }).on('a', async () => {})
  assert.throws(() => router.on('a', async () => {}), /already has a handler/)
  assert.throws(() => router.on('', async () => {}), /non-empty string/)
})

import assert from 'node:assert/strict'
import diagnostics from 'node:diagnostics_channel'
import { test } from 'node:test'
import { HANDLER_CHANNEL, type HandlerEvent } from '../../../src/handling/diagnostics.ts'
import { BusinessError, DeserializationError, PermanentError, TransientError } from '../../../src/handling/errors.ts'
import { HandlerExecutor } from '../../../src/handling/handler-executor.ts'
import type { ConsumedMessage, HandlerContext } from '../../../src/handling/types.ts'
import { batchContext, captureLogger, consumed, context, resolved } from './fixtures.ts'

const fast = { retryBackoff: { baseMs: 1, maxMs: 4 } }

function events(t: { after: (fn: () => void) => void }): HandlerEvent[] {
  const seen: HandlerEvent[] = []
  const listener = (event: unknown) => seen.push(event as HandlerEvent)
  diagnostics.subscribe(HANDLER_CHANNEL, listener)
  t.after(() => diagnostics.unsubscribe(HANDLER_CHANNEL, listener))
  return seen
}

test('a successful handler is done after one attempt and sees attempt 1 and the context', async () => {
  const seen: HandlerContext[] = []
  const executor = new HandlerExecutor({ handler: (_m, c) => resolved(seen.push(c)), logger: captureLogger() })
  const outcome = await executor.execute(consumed(), context())
  assert.deepEqual(outcome, { kind: 'done', attempts: 1 })
  assert.equal(seen[0]?.attempt, 1)
  assert.equal(seen[0]?.groupId, 'group-1')
})

test('transient failures are retried in place with growing backoff, then succeed', async t => {
  const seen = events(t)
  let calls = 0
  const attempts: number[] = []
  const executor = new HandlerExecutor({
    ...fast,
    retryBackoff: { baseMs: 2, maxMs: 100, jitter: 'none' },
    maxRetries: 5,
    logger: captureLogger(),
    handler: async (_m, c) => {
      await Promise.resolve()
      attempts.push(c.attempt)
      if (++calls < 4) throw new Error('connect ECONNREFUSED 127.0.0.1:5432')
    }
  })
  const outcome = await executor.execute(consumed(), context())
  assert.deepEqual(outcome, { kind: 'done', attempts: 4 })
  assert.deepEqual(attempts, [1, 2, 3, 4])
  const delays = seen.flatMap(e => (e.type === 'retry' ? [e.delayMs] : []))
  assert.deepEqual(delays, [2, 4, 8], 'exponential backoff without jitter')
})

test('transient failures past maxRetries are dead-lettered with attempts and failure times', async () => {
  let now = 1_000
  let calls = 0
  const executor = new HandlerExecutor({
    ...fast,
    maxRetries: 2,
    now: () => (now += 10),
    logger: captureLogger(),
    handler: () => {
      calls++
      return Promise.reject(new TransientError('downstream unavailable'))
    }
  })
  const outcome = await executor.execute(consumed(), context())
  assert.equal(calls, 3, 'one attempt plus two retries')
  assert.equal(outcome.kind, 'dead-letter')
  if (outcome.kind !== 'dead-letter') return
  assert.equal(outcome.reason, 'transient')
  assert.equal(outcome.attempts, 3)
  assert.ok(outcome.error instanceof TransientError)
  assert.equal(outcome.firstFailureAt.getTime(), 1_010)
  assert.equal(outcome.lastFailureAt.getTime(), 1_030)
})

test('a permanent failure is dead-lettered at once; a business refusal is committed and logged', async () => {
  let calls = 0
  const logger = captureLogger()
  const permanent = new HandlerExecutor({
    ...fast,
    logger,
    handler: () => {
      calls++
      return Promise.reject(new PermanentError('invalid schema'))
    }
  })
  const dead = await permanent.execute(consumed(), context())
  assert.equal(calls, 1)
  assert.equal(dead.kind, 'dead-letter')
  assert.equal(dead.kind === 'dead-letter' && dead.reason, 'permanent')

  const business = new HandlerExecutor({
    ...fast,
    logger,
    handler: () => {
      calls++
      return Promise.reject(new BusinessError('booking already exists'))
    }
  })
  const refused = await business.execute(consumed({ headers: { 'event-id': 'e-1' } }), context())
  assert.equal(calls, 2, 'not retried')
  assert.equal(refused.kind, 'business')
  const line = logger.lines.find(l => l.level === 'warn')
  assert.ok(line, 'the business refusal is logged')
  assert.equal(line.fields.eventId, 'e-1')
  assert.equal(JSON.stringify(line).includes('world'), false, 'the value is not logged')
  // The verdict is logged where the record goes, once it is there (the dead-letter writer, a retry tier).
  assert.equal(
    logger.lines.some(l => l.level === 'error'),
    false
  )
})

test('plain errors are classified by message; a custom classifier overrides and may defer', async () => {
  const kinds: string[] = []
  const run = async (error: Error, classify?: (e: unknown) => 'permanent' | 'business' | 'transient' | undefined) => {
    const executor = new HandlerExecutor({
      ...fast,
      maxRetries: 1,
      logger: captureLogger(),
      ...(classify ? { classify } : {}),
      handler: () => Promise.reject(error)
    })
    const outcome = await executor.execute(consumed(), context())
    kinds.push(outcome.kind === 'dead-letter' ? `${outcome.kind}:${outcome.reason}:${outcome.attempts}` : outcome.kind)
  }
  await run(new Error('schema mismatch in field total'))
  await run(new Error('i/o timeout'))
  await run(new Error('HTTP 409'), e => ((e as Error).message.includes('409') ? 'business' : undefined))
  await run(new Error('deserialization failed'), () => undefined)
  assert.deepEqual(kinds, ['dead-letter:permanent:1', 'dead-letter:transient:2', 'business', 'dead-letter:permanent:1'])
})

test('an abort during the backoff ends as aborted: no dead-letter, no commit', async () => {
  const controller = new AbortController()
  const executor = new HandlerExecutor({
    maxRetries: 10,
    retryBackoff: { baseMs: 60_000, maxMs: 60_000, jitter: 'none' },
    logger: captureLogger(),
    handler: () => {
      setTimeout(() => controller.abort(new Error('partition revoked')), 5)
      return Promise.reject(new TransientError('down'))
    }
  })
  const outcome = await executor.execute(consumed(), context(controller.signal))
  assert.equal(outcome.kind, 'aborted')
  assert.equal(outcome.attempts, 1)
  assert.match(String((outcome as { reason: unknown }).reason), /partition revoked/)
})

test('a handler that fails because its signal aborted is aborted, not dead-lettered', async () => {
  const controller = new AbortController()
  const executor = new HandlerExecutor({
    logger: captureLogger(),
    handler: (_m, c) =>
      new Promise((_resolve, reject) => {
        c.signal.addEventListener('abort', () => reject(new PermanentError('cancelled')))
        controller.abort()
      })
  })
  const outcome = await executor.execute(consumed(), context(controller.signal))
  assert.equal(outcome.kind, 'aborted')
  const already = await executor.execute(consumed(), context(AbortSignal.abort()))
  assert.deepEqual([already.kind, already.attempts], ['aborted', 0], 'an aborted signal runs nothing')
})

test('retryAfterMs of a TransientError raises the delay', async t => {
  const seen = events(t)
  let calls = 0
  const executor = new HandlerExecutor({
    retryBackoff: { baseMs: 1, maxMs: 1, jitter: 'none' },
    logger: captureLogger(),
    handler: () => (++calls === 1 ? Promise.reject(new TransientError('429', { retryAfterMs: 30 })) : Promise.resolve())
  })
  assert.equal((await executor.execute(consumed(), context())).kind, 'done')
  assert.deepEqual(
    seen.flatMap(e => (e.type === 'retry' ? [e.delayMs] : [])),
    [30]
  )
})

test('middleware given to the executor is composed around the handler', async () => {
  const order: string[] = []
  const executor = new HandlerExecutor({
    logger: captureLogger(),
    middleware: [
      next => async (m, c) => {
        order.push('outer')
        await next(m, c)
      },
      next => async (m, c) => {
        order.push('inner')
        await next(m, c)
      }
    ],
    handler: () => resolved(order.push('handler'))
  })
  await executor.execute(consumed(), context())
  assert.deepEqual(order, ['outer', 'inner', 'handler'])
})

test('a record that cannot be deserialized is dead-lettered without running the handler', t => {
  const seen = events(t)
  let calls = 0
  const executor = new HandlerExecutor({ logger: captureLogger(), handler: () => resolved(calls++) })
  const outcome = executor.rejectUndeserializable(
    consumed({ value: undefined, rawValue: Buffer.from([0xff, 0xfe]) }),
    new TypeError('The encoded data was not valid for encoding utf-8'),
    context()
  )
  assert.equal(calls, 0)
  assert.equal(outcome.kind, 'dead-letter')
  assert.equal(outcome.reason, 'permanent')
  assert.equal(outcome.attempts, 0)
  assert.ok(outcome.error instanceof DeserializationError)
  assert.ok((outcome.error as Error).cause instanceof TypeError)
  assert.ok(seen.some(e => e.type === 'outcome' && e.outcome === 'dead-letter' && e.reason === 'permanent'))
})

test('bad options fail at construction naming the key', () => {
  assert.throws(() => new HandlerExecutor({ handler: async () => {}, maxRetries: -1 }), /`maxRetries`: got -1/)
  assert.throws(() => new HandlerExecutor({}), /give `handler`/)
  assert.throws(
    () => new HandlerExecutor({ handler: async () => {}, batchFailure: 'retry' as 'split' }),
    /`batchFailure`: got "retry", expected one of "split", "dead-letter"/
  )
})

const batchOf = (n: number): ConsumedMessage[] =>
  Array.from({ length: n }, (_, i) => consumed({ offset: BigInt(i), value: { n: i } }))

test('a batch is retried in place as a whole and done when it passes', async () => {
  let calls = 0
  const executor = new HandlerExecutor({
    ...fast,
    logger: captureLogger(),
    batchHandler: async messages => {
      await Promise.resolve()
      assert.equal(messages.length, 5)
      if (++calls < 3) throw new TransientError('db busy')
    }
  })
  assert.deepEqual(await executor.executeBatch(batchOf(5), batchContext()), { kind: 'done', attempts: 3 })
})

test('a failing batch is split: only the poison message is dead-lettered, with the batch attempts counted', async t => {
  const seen = events(t)
  const handled: number[] = []
  const executor = new HandlerExecutor({
    ...fast,
    maxRetries: 1,
    logger: captureLogger(),
    batchHandler: async messages => {
      await Promise.resolve()
      if (messages.some(m => (m.value as { n: number }).n === 2)) throw new PermanentError('invalid message 2')
      handled.push(...messages.map(m => (m.value as { n: number }).n))
    }
  })
  const outcome = await executor.executeBatch(batchOf(4), batchContext())
  assert.equal(outcome.kind, 'split')
  if (outcome.kind !== 'split') return
  assert.deepEqual(
    outcome.outcomes.map(o => o.kind),
    ['done', 'done', 'dead-letter', 'done']
  )
  assert.deepEqual(handled, [0, 1, 3])
  const dead = outcome.outcomes[2]
  assert.equal(dead?.kind === 'dead-letter' && dead.attempts, 2, 'one batch attempt + one alone')
  assert.equal(dead?.kind === 'dead-letter' && dead.firstFailureAt.getTime(), outcome.failure.firstFailureAt.getTime())
  const outcomes = seen.flatMap(e => (e.type === 'outcome' ? [`${e.outcome}:${e.count}`] : []))
  assert.deepEqual(outcomes, ['done:1', 'done:1', 'dead-letter:1', 'done:1', 'split:4'], 'no double count')
})

test('a split acts on each message before the next one runs, and ends where that fails', async () => {
  const log: string[] = []
  const executor = new HandlerExecutor({
    ...fast,
    maxRetries: 0,
    logger: captureLogger(),
    batchHandler: async messages => {
      await Promise.resolve()
      const n = (messages[0]?.value as { n: number }).n
      if (messages.length > 1 || n === 1 || n === 3) throw new PermanentError(`bad ${n}`)
      log.push(`ran ${n}`)
    }
  })
  const outcome = await executor.executeBatch(batchOf(5), batchContext(), async (index, single) => {
    await Promise.resolve()
    log.push(`${single.kind} ${index}`)
    // The dead-letter record of message 3 is not acknowledged: nothing after it may run.
    return index !== 3
  })
  assert.deepEqual(log, ['ran 0', 'done 0', 'dead-letter 1', 'ran 2', 'done 2', 'dead-letter 3'])
  assert.equal(outcome.kind === 'split' && outcome.outcomes.length, 4)
})

test("batchFailure 'dead-letter' dead-letters the whole batch after its retries", async () => {
  let calls = 0
  const executor = new HandlerExecutor({
    ...fast,
    maxRetries: 2,
    batchFailure: 'dead-letter',
    logger: captureLogger(),
    batchHandler: () => {
      calls++
      return Promise.reject(new Error('connection refused'))
    }
  })
  const outcome = await executor.executeBatch(batchOf(3), batchContext())
  assert.equal(calls, 3)
  assert.equal(outcome.kind, 'dead-letter')
  assert.equal(outcome.kind === 'dead-letter' && outcome.reason, 'transient')
})

test('a batch business refusal commits the batch; an empty batch is done', async () => {
  const executor = new HandlerExecutor({
    logger: captureLogger(),
    batchHandler: () => Promise.reject(new BusinessError('duplicate order'))
  })
  assert.equal((await executor.executeBatch(batchOf(3), batchContext())).kind, 'business')
  assert.equal((await executor.executeBatch([], batchContext())).kind, 'done')
})

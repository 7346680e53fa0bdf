/**
 * Transactions with a stand-in for the client's transaction: begin after earlier messages are
 * written, one at a time; commit after flushing (a transaction that sent nothing ends without
 * EndTxn); abort on a failed message, a refused commit or the caller's abort.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { PendingRecord } from '../../../src/producer/record.ts'
import { Transactions, type ClientTx, type TxState } from '../../../src/producer/transactions.ts'
import { pendingRecord } from './records.ts'

interface Options {
  begin?: () => Promise<void>
  commit?: () => Promise<void>
  abort?: () => Promise<void>
}

function setup(options: Options = {}) {
  const log: string[] = []
  const clientTx = {
    commit: async () => {
      log.push('commit')
      await options.commit?.()
    },
    abort: async () => {
      log.push('abort')
      await options.abort?.()
    },
    cancel: () => {
      log.push('cancel')
      return Promise.resolve()
    }
  }
  /** The records the producer holds: those of the transaction and one before it. */
  const records: PendingRecord[] = [pendingRecord({ eventId: 'before' })]
  const transactions = new Transactions(
    {
      beginTransaction: async () => {
        log.push('begin')
        await options.begin?.()
        return clientTx as unknown as ClientTx
      }
    },
    {
      flushWhere: predicate => {
        log.push(
          `flush ${records
            .filter(predicate)
            .map(r => r.eventId)
            .join(',')}`
        )
        return Promise.resolve()
      },
      failWhere: (predicate, error) => {
        for (const record of records.filter(predicate)) {
          log.push(`fail ${record.eventId}: ${(error as { code?: string }).code}`)
          record.tx?.failures.push({ message: record.message, error })
        }
      },
      pump: () => log.push('pump')
    }
  )
  const driver = {
    send: () => Promise.reject(new Error('not used')),
    sendBatch: () => Promise.reject(new Error('not used'))
  }
  /** A record sent in the open transaction. */
  const join = (eventId: string, sent = true): PendingRecord => {
    const record = pendingRecord({ eventId })
    record.tx = transactions.current
    if (sent) (transactions.current as TxState).sent = true
    records.push(record)
    return record
  }
  return { transactions, log, driver, join, records }
}

const code = (error: unknown) => (error as { code?: string }).code

test('begin flushes what came before; commit flushes the transaction and commits', async () => {
  const { transactions, log, driver, join } = setup()
  const tx = await transactions.begin(driver)
  assert.deepEqual(log, ['flush before', 'begin', 'pump'])
  assert.equal(transactions.current?.handle, tx)
  join('a')
  await tx.commit()
  assert.deepEqual(log.slice(3), ['flush a', 'commit', 'pump'])
  assert.equal(tx.state, 'committed')
  assert.equal(transactions.current, undefined, 'the next one may begin')
})

test('a transaction that sent nothing ends without the broker (no EndTxn), on commit and on abort', async () => {
  const { transactions, log, driver } = setup()
  await (await transactions.begin(driver)).commit()
  await (await transactions.begin(driver)).abort()
  assert.deepEqual(
    log.filter(l => !l.startsWith('flush') && l !== 'pump' && l !== 'begin'),
    ['cancel', 'cancel']
  )
})

test('one transaction at a time', async () => {
  const { transactions, driver } = setup()
  await transactions.begin(driver)
  await assert.rejects(transactions.begin(driver), (e: unknown) => code(e) === 'KAFKIT_TRANSACTION_STATE')
})

test('a message that failed aborts the transaction at commit, which rejects listing the failures', async () => {
  const { transactions, log, driver, join } = setup()
  const tx = await transactions.begin(driver)
  const record = join('a')
  const error = new Error('NOT_ENOUGH_REPLICAS')
  record.tx?.failures.push({ message: record.message, error })
  await assert.rejects(tx.commit(), (e: unknown) => {
    assert.equal(code(e), 'KAFKIT_TRANSACTION_FAILED')
    assert.match((e as Error).message, /1 of its message\(s\) failed \(first: NOT_ENOUGH_REPLICAS\)/)
    assert.deepEqual((e as { failures: unknown[] }).failures, [{ message: record.message, error }])
    return true
  })
  assert.ok(log.includes('abort') && !log.includes('commit'))
  assert.equal(tx.state, 'aborted')
})

test('abort fails what is not sent, waits for what is in flight, then aborts; a failed abort frees the client', async () => {
  const { transactions, log, driver, join } = setup({
    abort: () => Promise.reject(new Error('COORDINATOR_NOT_AVAILABLE'))
  })
  const tx = await transactions.begin(driver)
  join('a')
  await assert.rejects(tx.abort(), /COORDINATOR_NOT_AVAILABLE/)
  assert.deepEqual(log.slice(3), ['fail a: KAFKIT_TRANSACTION_ABORTED', 'flush a', 'abort', 'cancel', 'pump'])
  assert.equal(tx.state, 'aborted')
  assert.equal(transactions.current, undefined)
})

test('a refused commit aborts and rejects, retryable when the cluster was the problem', async () => {
  const { transactions, log, driver, join } = setup({ commit: () => Promise.reject(new Error('INVALID_TXN_STATE')) })
  const tx = await transactions.begin(driver)
  join('a')
  await assert.rejects(tx.commit(), (e: unknown) => {
    assert.equal(code(e), 'KAFKIT_TRANSACTION_FAILED')
    assert.match((e as Error).message, /could not commit and was aborted: INVALID_TXN_STATE/)
    assert.equal((e as { retryable: boolean }).retryable, false)
    return true
  })
  assert.deepEqual(log.slice(-3), ['commit', 'abort', 'pump'])
})

test('a transaction that cannot begin fails the messages that joined it and frees the slot', async () => {
  let refuse = true
  let joinEarly = () => undefined as unknown
  const { transactions, log, driver, join } = setup({
    begin: () => {
      joinEarly()
      return refuse ? Promise.reject(new Error('TRANSACTIONAL_ID_AUTHORIZATION_FAILED')) : Promise.resolve()
    }
  })
  joinEarly = () => join('early', false)
  await assert.rejects(transactions.begin(driver), (e: unknown) => {
    assert.equal(code(e), 'KAFKIT_TRANSACTION_FAILED')
    assert.match((e as Error).message, /could not begin a transaction: TRANSACTIONAL_ID_AUTHORIZATION_FAILED/)
    return true
  })
  assert.deepEqual(log, ['flush before', 'begin', 'fail early: KAFKIT_TRANSACTION_FAILED'])
  assert.equal(transactions.current, undefined)
  refuse = false
  joinEarly = () => undefined
  await transactions.begin(driver)
  assert.ok(transactions.current !== undefined)
})

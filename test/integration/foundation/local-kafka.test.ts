/** The launcher's contract: idempotent start, status, and clear errors for a taken port. */
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { test } from 'node:test'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { kafkaStatus, startKafka } from '../../../src/testing/local-kafka.ts'
import { TEST_KAFKA_PORT } from '../../helpers/global-setup.ts'

test(
  'start on a running cluster returns it at once (idempotent)',
  { skip: process.env.KAFKIT_TEST_OWNS_KAFKA !== '1' && 'KAFKA_BROKERS points at an external cluster' },
  async () => {
    const before = await kafkaStatus({ port: TEST_KAFKA_PORT })
    assert.ok(before?.nodes.every(n => n.running))
    const started = Date.now()
    const cluster = await startKafka({ port: TEST_KAFKA_PORT })
    assert.ok(Date.now() - started < 10_000)
    assert.deepEqual(cluster.brokers, [`127.0.0.1:${TEST_KAFKA_PORT}`])
    assert.deepEqual(
      cluster.nodes.map(n => n.pid),
      before?.nodes.map(n => n.pid),
      'no new JVM was started'
    )
  }
)

test('a port held by another process fails with KAFKIT_LOCAL_KAFKA_PORT_TAKEN and the way out', async t => {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.after(() => server.close())
  const address = server.address()
  assert.ok(address && typeof address === 'object')
  await assert.rejects(startKafka({ port: address.port, fresh: true }), (error: unknown) => {
    assert.ok(isKafkitError(error))
    assert.equal(error.code, 'KAFKIT_LOCAL_KAFKA_PORT_TAKEN')
    assert.match(error.message, new RegExp(`port ${address.port}`))
    assert.match(error.message, /KAFKA_BROKERS/)
    return true
  })
})

/**
 * node:test global setup for the whole run: use the cluster in KAFKA_BROKERS when set, otherwise start
 * a fresh single-node local Kafka on a port of its own (29092, so a developer's broker on 9092 is left
 * alone) and stop it when the run ends. Test files inherit KAFKA_BROKERS from this process.
 */
import { startKafka, stopKafka } from '../../src/testing/local-kafka.ts'
import { TEST_PORTS } from './ports.ts'

export const TEST_KAFKA_PORT = TEST_PORTS.shared

export async function globalSetup(): Promise<void> {
  process.env.DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/test'
  if (process.env.KAFKA_BROKERS) return
  const started = Date.now()
  const cluster = await startKafka({
    port: TEST_KAFKA_PORT,
    fresh: true,
    log: line => process.stderr.write(`[test harness] ${line}\n`)
  })
  process.env.KAFKA_BROKERS = cluster.brokers.join(',')
  process.env.KAFKIT_TEST_OWNS_KAFKA = '1'
  process.stderr.write(`[test harness] Kafka ready on ${process.env.KAFKA_BROKERS} in ${Date.now() - started} ms\n`)
}

export async function globalTeardown(): Promise<void> {
  if (process.env.KAFKIT_TEST_OWNS_KAFKA === '1') await stopKafka({ port: TEST_KAFKA_PORT })
}

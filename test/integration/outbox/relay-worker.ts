/**
 * One outbox relay as a process of its own, for the kill tests: RELAY_TABLE names the outbox, the
 * database and Kafka come from DATABASE_URL and KAFKA_BROKERS. Prints `state <name>` on every change of
 * its health state, so the test knows which process leads. Runs until it is killed (or SIGTERM: stops
 * cleanly).
 */
import { OutboxRelay } from '../../../src/postgres/outbox-relay.ts'

const quiet = { debug() {}, info() {}, warn() {}, error() {} }
const relay = new OutboxRelay({
  table: process.env.RELAY_TABLE ?? 'kafkit_outbox',
  leaderCheckIntervalMs: 200,
  pollIntervalMs: 500,
  retryBackoffMs: 50,
  maxRetryBackoffMs: 1000,
  retentionMs: process.env.RELAY_RETENTION ?? 0,
  logger: quiet
})
relay.on('health', health => process.stdout.write(`state ${health.state}\n`))
relay.start()
process.once('SIGTERM', () => {
  void relay.stop().then(() => process.exit(0))
})

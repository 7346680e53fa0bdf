/** Per-test isolation: every test names its own topic and group, and removes the topic afterwards. */
import { randomBytes } from 'node:crypto'
import { Admin } from '../kafka/client.ts'
import { clientOptionsOf, type ConnectionOptions } from '../kafka/connection.ts'

/** `<prefix>-<time>-<random>`: unique across runs and parallel tests, valid as a topic or group name. */
export function uniqueName(prefix = 'kafkit-test'): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
}

/** The connection options of every Kafkit entry point (`brokers`, or KAFKA_BROKERS), and the topic's shape. */
export interface TestTopicOptions extends ConnectionOptions {
  partitions?: number
  replicas?: number
  configs?: Record<string, string>
  prefix?: string
}

/**
 * Creates a fresh topic and returns its name with a `delete()` for `t.after`. Waits until the topic's
 * metadata shows every partition with a leader, so a test can produce to it at once.
 */
export async function createTestTopic(
  options: TestTopicOptions
): Promise<{ topic: string; delete: () => Promise<void> }> {
  const topic = uniqueName(options.prefix)
  const admin = new Admin(clientOptionsOf(options, 'kafkit-testing'))
  try {
    await admin.createTopics({
      topics: [topic],
      partitions: options.partitions ?? 1,
      replicas: options.replicas ?? 1,
      configs: Object.entries(options.configs ?? {}).map(([name, value]) => ({ name, value }))
    })
    for (let i = 0; i < 100; i++) {
      const metadata = await admin.metadata({ topics: [topic], forceUpdate: true })
      const info = metadata.topics.get(topic)
      if (info && info.partitionsCount === (options.partitions ?? 1)) break
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  } finally {
    await admin.close()
  }
  return {
    topic,
    delete: async () => {
      const cleanup = new Admin(clientOptionsOf(options, 'kafkit-testing'))
      try {
        await cleanup.deleteTopics({ topics: [topic] })
      } finally {
        await cleanup.close()
      }
    }
  }
}

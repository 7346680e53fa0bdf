/**
 * Reads a topic back from the beginning with a throwaway group until `expected` records have arrived,
 * then `quietMs` longer to catch extras (duplicates); stops at the deadline when fewer arrive, and the
 * caller's assertion then says so.
 */
import { Consumer, MessagesStreamModes, type Message } from '@platformatic/kafka'
import { withCorrectReadCommitted } from '../../src/kafka/read-committed.ts'
import { uniqueName } from '../../src/testing/topics.ts'
import { eventually } from './wait.ts'

export type RawMessage = Message<Buffer, Buffer, Buffer, Buffer>

export async function readTopic(
  bootstrapBrokers: string[],
  topic: string,
  expected: number,
  options: { timeoutMs?: number; readCommitted?: boolean; quietMs?: number } = {}
): Promise<RawMessage[]> {
  const consumer = withCorrectReadCommitted(
    new Consumer({
      clientId: 'kafkit-test-reader',
      groupId: uniqueName('reader'),
      bootstrapBrokers,
      maxWaitTime: 200,
      isolationLevel: options.readCommitted ? 1 : 0
    })
  )
  const messages: RawMessage[] = []
  const deadline = Date.now() + (options.timeoutMs ?? 60_000)
  const quietMs = options.quietMs ?? 0
  try {
    const stream = await consumer.consume({ topics: [topic], mode: MessagesStreamModes.EARLIEST, autocommit: false })
    let reachedAt = 0
    stream.on('data', (message: RawMessage) => {
      messages.push(message)
      if (messages.length >= expected && reachedAt === 0) reachedAt = Date.now()
    })
    if (expected === 0) reachedAt = Date.now()
    // Not a waitFor: running out of time is no error here (the caller's assertion says what is missing).
    await eventually(() => reachedAt !== 0 && Date.now() - reachedAt >= quietMs, deadline - Date.now(), 50)
    await stream.close()
  } finally {
    await consumer.close(true)
  }
  return messages
}

/** A header of a record read back, as text ('' when absent). */
export function headerOf(record: { headers: Map<Buffer, Buffer> }, name: string): string {
  for (const [key, value] of record.headers) if (key.toString() === name) return value.toString()
  return ''
}

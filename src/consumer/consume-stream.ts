/**
 * Two quirks of the client's group consumer, worked around where Kafkit opens and closes one.
 *
 * `consumeStream`: `client.consume()` with the stream's 'error' listener attached the moment the stream
 * exists. A MessagesStream lists offsets in its deferred set-up (`_construct`, on the next tick). When the
 * client is closed in between (a stop() while the group join was under way), that set-up fails with an
 * 'error' event which fires before an `await consume()` continuation could add a listener, and an
 * unheard 'error' event crashes the process. The callback form hands the stream over synchronously.
 *
 * `onEnd` hears the end of the stream once: its error, or a ConsumerStreamClosedError when it closed
 * without one. A stream the caller did not close has stopped fetching for good, and nothing else says
 * so: with no socket or timer left the process may simply exit, so callers treat it like an error
 * (and ignore it after closing the stream themselves).
 */
import type { ClientConsumer, ConsumeOptions, MessagesStream } from '../kafka/client.ts'
import { ConsumerStreamClosedError } from './errors.ts'

export function consumeStream<K, V, HK, HV>(
  client: ClientConsumer<K, V, HK, HV>,
  options: ConsumeOptions<K, V, HK, HV>,
  onEnd: (error: Error) => void
): Promise<MessagesStream<K, V, HK, HV>> {
  return new Promise((resolve, reject) => {
    client.consume(options, (error, stream) => {
      if (error || !stream) {
        reject(error ?? new ConsumerStreamClosedError('consume() gave neither a stream nor an error'))
        return
      }
      let ended = false
      stream.on('error', (streamError: Error) => {
        if (ended) return
        ended = true
        onEnd(streamError)
      })
      stream.once('close', () => {
        if (ended) return
        ended = true
        onEnd(new ConsumerStreamClosedError('the client closed its record stream: no more records would be fetched'))
      })
      resolve(stream)
    })
  })
}

/**
 * Closes a group consumer client so that nothing of it outlives the close. The client's close() leaves
 * the group but leaves its membership marked active; a join still under way at that moment (a stop()
 * during start) then goes on heartbeating for ever on the closed client, a 3 s timer that keeps the
 * process alive (seen with the parked-keys reader). leaveGroup() first ends the membership, and every
 * heartbeat after it stops by itself.
 */
export async function closeGroupClient<K, V, HK, HV>(client: ClientConsumer<K, V, HK, HV>): Promise<void> {
  // The callback form: errors (a closed client, a failed LeaveGroup) change nothing here, close() follows.
  await new Promise<void>(resolve => {
    client.leaveGroup(true, () => resolve())
  })
  await client.close(true).catch(() => undefined)
}

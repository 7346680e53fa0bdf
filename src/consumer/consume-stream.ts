/**
 * `client.consume()` with the stream's 'error' listener attached the moment the stream exists.
 *
 * A MessagesStream lists offsets in its deferred set-up (`_construct`, on the next tick). When the
 * client is closed in between (a stop() while the group join was under way), that set-up fails with an
 * 'error' event which fires before an `await consume()` continuation could add a listener, and an
 * unheard 'error' event crashes the process. The callback form hands the stream over synchronously.
 */
import type { ConsumeOptions, Consumer as ClientConsumer, MessagesStream } from '@platformatic/kafka'

export function consumeStream<K, V, HK, HV>(
  client: ClientConsumer<K, V, HK, HV>,
  options: ConsumeOptions<K, V, HK, HV>,
  onError: (error: Error) => void
): Promise<MessagesStream<K, V, HK, HV>> {
  return new Promise((resolve, reject) => {
    client.consume(options, (error, stream) => {
      if (error || !stream) {
        reject(error ?? new Error('consume() gave neither a stream nor an error'))
        return
      }
      stream.on('error', onError)
      resolve(stream)
    })
  })
}

/**
 * Stream supervision: the client's record stream, paused while too many records are buffered (or the
 * breaker is open) and resumed below half of `maxBufferedRecords`, and replaced when it ends. A broker
 * lost mid-run (the leaders of some partitions, or the group's coordinator, moving to the survivors)
 * ends it once the client's few fetch retries are spent, although the cluster is still usable: while
 * the error is one Kafka calls retriable, fetch again on a new stream (from the committed offsets;
 * records already taken in are recognised and dropped), with a growing pause up to 5 s, for as long as
 * the outage lasts. A stream that closes by itself is replaced up to STREAM_RESTARTS times in a row.
 * Anything else fails the consumer.
 */
import type { ClientConsumer, MessagesStream } from '../kafka/client.ts'
import { describeKafkaError, isMembershipLost, isRetriable } from '../kafka/errors.ts'
import type { HandlingLogger } from '../handling/logger.ts'
import { streamOptions } from './client-options.ts'
import { consumeStream } from './consume-stream.ts'
import type { RawRecord } from './decode.ts'
import { ConsumerStreamClosedError } from './errors.ts'
import type { ConsumerConfig } from './options.ts'

/** A stream that keeps closing by itself is replaced this many times in a row (1, 2, 3, 4, then 5 s apart) before the consumer fails. */
export const STREAM_RESTARTS = 10

type Client = ClientConsumer<Buffer, Buffer, Buffer, Buffer>
type Stream = MessagesStream<Buffer, Buffer, Buffer, Buffer>

export interface StreamHost {
  /** Takes a fetched record in; a stream's 'data' listener as it is (so an arrow function). */
  readonly accept: (record: RawRecord) => void
  fail(error: Error): void
  /** The consumer failed or is stopping: stream ends are ignored and no stream is opened. */
  ending(): boolean
  /** 'running' or 'paused' (only then is a stream replaced). */
  active(): boolean
  /** 'running' (only then does fetching resume). */
  running(): boolean
}

export interface StreamSupervisorInit {
  config: Parameters<typeof streamOptions>[0] & Pick<ConsumerConfig, 'groupId' | 'maxBufferedRecords'>
  logger: HandlingLogger
  host: StreamHost
  /** Opens a stream on the client (tests pass their own). */
  consume?: typeof consumeStream
}

export class StreamSupervisor {
  /** Queued + in flight records (what bounds memory). */
  buffered = 0
  readonly #config: StreamSupervisorInit['config']
  readonly #logger: HandlingLogger
  readonly #host: StreamHost
  readonly #consume: typeof consumeStream
  #client: Client | undefined
  #stream: Stream | undefined
  #paused = false
  /** Stream restarts in a row without a record in between. */
  #restarts = 0
  #restartTimer: NodeJS.Timeout | undefined

  constructor(init: StreamSupervisorInit) {
    this.#config = init.config
    this.#logger = init.logger
    this.#host = init.host
    this.#consume = init.consume ?? consumeStream
  }

  /** Opens the first stream (not read until `listen()`); rejects when the client cannot consume. */
  async open(client: Client): Promise<void> {
    this.#client = client
    // Ignored after stop() (the client closed under a pending join).
    this.#stream = await this.#consume(client, streamOptions(this.#config), error => this.onEnd(error))
  }

  /** Starts reading the first stream. */
  listen(): void {
    this.#stream?.on('data', this.#host.accept)
  }

  /** The stream ended: with an error, or closed by itself (consumeStream). */
  onEnd(error: Error): void {
    if (this.#host.ending()) return
    // A stream that closed by itself (consumeStream) is treated as retriable too: a new one either
    // fetches again or fails loudly (a closed client), where the closed one would have gone quiet.
    // So is a lost membership: a new coordinator may not know the member (KIP-848 heartbeats answered
    // FENCED_MEMBER_EPOCH or UNKNOWN_MEMBER_ID after a coordinator kill), and the client joins again.
    const retriable = isRetriable(error) || error instanceof ConsumerStreamClosedError || isMembershipLost(error)
    const closedTooOften = error instanceof ConsumerStreamClosedError && this.#restarts >= STREAM_RESTARTS
    if (!this.#host.active() || !retriable || closedTooOften) {
      this.#host.fail(error)
      return
    }
    this.#restarts++
    const delayMs = Math.min(1000 * this.#restarts, 5000)
    this.#logger.warn(
      { groupId: this.#config.groupId, attempt: this.#restarts, delayMs, err: describeKafkaError(error) },
      'consumer: fetching failed; fetching again on a new stream'
    )
    this.#restartTimer = setTimeout(() => void this.#restart(), delayMs)
  }

  /** Stops fetching (too much buffered, breaker open) until `maybeResume()`. */
  pause(): void {
    if (this.#paused) return
    this.#paused = true
    this.#stream?.pause()
  }

  /** Fetches again when paused, running and the buffer is down to half. */
  maybeResume(): void {
    if (!this.#paused || !this.#host.running()) return
    if (this.buffered > this.#config.maxBufferedRecords / 2) return
    this.#paused = false
    this.#stream?.resume()
  }

  /** Stop: no restart, no more records. */
  stop(): void {
    clearTimeout(this.#restartTimer)
    this.#stream?.pause()
  }

  async close(): Promise<void> {
    await this.#stream?.close().catch(() => undefined)
  }

  async #restart(): Promise<void> {
    const client = this.#client
    if (this.#host.ending() || !client) return
    this.#stream?.removeAllListeners('data')
    let stream: Stream
    try {
      stream = await this.#consume(client, streamOptions(this.#config), error => this.onEnd(error))
    } catch (error) {
      this.onEnd(error instanceof Error ? error : new Error(String(error)))
      return
    }
    if (this.#host.ending()) {
      await stream.close().catch(() => undefined)
      return
    }
    this.#stream = stream
    stream.once('data', () => (this.#restarts = 0))
    stream.on('data', this.#host.accept)
    if (this.#paused) stream.pause()
  }
}

/**
 * `COPY ... FROM STDIN` on a `pg` client without an extra dependency: a pg "submittable" (the hook
 * pg-cursor and pg-copy-streams use) that sends the statement, answers the server's CopyInResponse
 * with the data chunks (waiting for the socket to drain, so a large batch is not buffered twice) and
 * resolves with the row count of `COPY n` (or of the script's last data statement). A server error
 * rejects; an abort sends CopyFail, which makes the server roll the COPY (and its script) back.
 */
import { once } from 'node:events'
import type { ClientBase, Connection } from 'pg'

/** The parts of pg's Connection the COPY protocol uses (not in @types/pg). */
interface CopyConnection extends Connection {
  sendCopyFromChunk(chunk: Buffer): void
  endCopyFrom(): void
  sendCopyFail(message: string): void
}

class CopyFromQuery {
  readonly #statement: string
  readonly #chunks: Iterable<string>
  readonly #signal: AbortSignal | undefined
  #rowCount = 0
  #error: Error | undefined
  #settled = false
  readonly promise: Promise<number>
  #resolve!: (rows: number) => void
  #reject!: (error: Error) => void

  constructor(statement: string, chunks: Iterable<string>, signal: AbortSignal | undefined) {
    this.#statement = statement
    this.#chunks = chunks
    this.#signal = signal
    this.promise = new Promise<number>((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
  }

  submit(connection: Connection): void {
    connection.query(this.#statement)
  }

  handleCopyInResponse(connection: Connection): void {
    void this.#send(connection as CopyConnection)
  }

  async #send(connection: CopyConnection): Promise<void> {
    try {
      let pending = ''
      for (const chunk of this.#chunks) {
        this.#signal?.throwIfAborted()
        pending += chunk
        // Fewer, larger CopyData messages: each message costs a header and a write call.
        if (pending.length >= 64 * 1024) {
          connection.sendCopyFromChunk(Buffer.from(pending, 'utf8'))
          pending = ''
          if (connection.stream.writableNeedDrain) await once(connection.stream, 'drain')
        }
      }
      if (pending.length > 0) connection.sendCopyFromChunk(Buffer.from(pending, 'utf8'))
      connection.endCopyFrom()
    } catch (error) {
      // CopyFail makes the server end the COPY with an error; that error then rejects the promise.
      this.#error = error as Error
      connection.sendCopyFail(error instanceof Error ? error.message : String(error))
    }
  }

  handleCommandComplete(message: { text?: string }): void {
    // A script may run several statements: the count is the last data statement's (COPY n, INSERT 0 n, ...).
    const match = /^(?:COPY|INSERT \d+|UPDATE|DELETE|MERGE) (\d+)$/.exec(message.text ?? '')
    if (match) this.#rowCount = Number(match[1])
  }

  handleError(error: Error): void {
    this.#settle(this.#error ?? error)
  }

  handleReadyForQuery(): void {
    this.#settle(this.#error)
  }

  // The simple-query protocol never sends these for COPY FROM; pg calls them only on a protocol error.
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}

  #settle(error: Error | undefined): void {
    if (this.#settled) return
    this.#settled = true
    if (error) this.#reject(error)
    else this.#resolve(this.#rowCount)
  }
}

/**
 * Runs `statement` (a `COPY ... FROM STDIN` in text format) on `client`, streaming `chunks`; resolves
 * with the row count of the last data statement. `statement` may be a script of several statements
 * (one simple Query message, so one implicit transaction and one round trip) with exactly one
 * `COPY ... FROM STDIN` among them, e.g. `DO ...; COPY t FROM STDIN` or `COPY stage FROM STDIN; INSERT
 * INTO t SELECT ... FROM stage`; an error anywhere rolls the whole script back.
 */
export async function copyFromStdin(
  client: ClientBase,
  statement: string,
  chunks: Iterable<string>,
  signal?: AbortSignal
): Promise<number> {
  signal?.throwIfAborted()
  const query = new CopyFromQuery(statement, chunks, signal)
  void client.query(query)
  return query.promise
}

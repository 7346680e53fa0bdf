/**
 * The todo service's HTTP API on node:http. Every accepted request changes one todo row and adds the
 * event that says so to the outbox, in one PostgreSQL transaction: both are committed or neither is.
 * A request that is refused (bad JSON, a missing or too long title, an unknown todo, a deleted todo)
 * gets a 4xx with a JSON `{ error }` naming what is wrong, and writes nothing.
 *
 *   POST   /todos                {"userId": "user-1", "title": "Buy milk"}  → 201 {"id": "<uuid>"}
 *   POST   /todos/:id/complete                                              → 200 {"id", "status"}
 *   DELETE /todos/:id                                                       → 200 {"id", "deleted": true}
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Pool, PoolClient } from 'pg'
import type { Outbox } from 'kafkit/postgres'

/** The events of one todo, all on one topic keyed by the todo's id (the value of each event type). */
export interface TodoEvents {
  'todos.task.created': { todoId: string; userId: string; title: string; createdAt: string }
  'todos.task.completed': { todoId: string; userId: string; title: string; completedAt: string }
  'todos.task.deleted': { todoId: string; userId: string; title: string; deletedAt: string }
}
export type TodoEventType = keyof TodoEvents
export type TodoEvent = TodoEvents[TodoEventType]
export const eventTypes: readonly TodoEventType[] = ['todos.task.created', 'todos.task.completed', 'todos.task.deleted']

export const MAX_TITLE_LENGTH = 200
const MAX_BODY_BYTES = 16 * 1024
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** A refusal: the status and the reason the client gets; thrown inside a transaction, it rolls it back. */
class HttpError extends Error {
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.status = status
  }
}

export interface TodoApiInit {
  pool: Pool
  outbox: Outbox
  /** The todos table, quoted for SQL (`"schema"."todos"`). */
  todosTable: string
}

/** What the server answered, by status class: the API's own count, beside the load driver's. */
export interface TodoApiStats {
  accepted: number
  rejected: number
  failed: number
}

export interface TodoApi {
  url: string
  stats: TodoApiStats
  close(): Promise<void>
}

/** Creates the todos table (the row a request changes; the outbox row says what changed). */
export async function createTodosTable(pool: Pool, todosTable: string): Promise<void> {
  await pool.query(`CREATE TABLE IF NOT EXISTS ${todosTable} (
    id uuid PRIMARY KEY,
    user_id text NOT NULL,
    title text NOT NULL,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'completed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    deleted boolean NOT NULL DEFAULT false
  )`)
}

/** Starts the API on 127.0.0.1 and an ephemeral port. */
export async function startTodoApi(init: TodoApiInit): Promise<TodoApi> {
  const stats: TodoApiStats = { accepted: 0, rejected: 0, failed: 0 }
  const routes = todoRoutes(init)
  const server = createServer((request, response) => {
    serve(request, routes).then(
      ({ status, body }) => reply(response, status, body, stats),
      (error: unknown) => {
        if (error instanceof HttpError) reply(response, error.status, { error: error.message }, stats)
        else {
          console.error('todo api: request failed:', error)
          reply(response, 500, { error: 'internal error; nothing was changed' }, stats)
        }
      }
    )
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    close: () =>
      new Promise<void>(resolve => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
}

interface Reply {
  status: number
  body: unknown
}

function reply(response: ServerResponse, status: number, body: unknown, stats: TodoApiStats): void {
  if (status < 400) stats.accepted++
  else if (status < 500) stats.rejected++
  else stats.failed++
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

type Routes = ReturnType<typeof todoRoutes>

async function serve(request: IncomingMessage, routes: Routes): Promise<Reply> {
  const { pathname } = new URL(request.url ?? '/', 'http://todos')
  const [first, id, action, ...rest] = pathname.split('/').filter(Boolean)
  const method = request.method ?? 'GET'
  if (first === 'todos' && rest.length === 0) {
    if (id === undefined) {
      if (method === 'POST') return routes.create(await readJson(request))
      throw new HttpError(405, `${method} /todos is not allowed: create a todo with POST /todos`)
    }
    if (action === undefined && method === 'DELETE') return routes.remove(todoId(id))
    if (action === 'complete' && method === 'POST') return routes.complete(todoId(id))
  }
  throw new HttpError(
    404,
    `no route ${method} ${pathname}: the API has POST /todos, POST /todos/:id/complete and DELETE /todos/:id`
  )
}

function todoId(id: string): string {
  if (!UUID.test(id)) throw new HttpError(404, `no todo with id ${JSON.stringify(id)}`)
  return id.toLowerCase()
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `the request body is over ${MAX_BODY_BYTES} bytes`)
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    throw new HttpError(400, `the request body is not valid JSON: ${(error as Error).message}`)
  }
}

/** `{ userId, title }`, or a 400 naming the field that is wrong. */
function newTodo(body: unknown): { userId: string; title: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'the request body must be a JSON object: {"userId": "...", "title": "..."}')
  }
  const { userId, title } = body as { userId?: unknown; title?: unknown }
  if (userId === undefined) throw new HttpError(400, '"userId" is missing')
  if (typeof userId !== 'string' || userId.trim() === '' || userId.length > 100) {
    throw new HttpError(400, '"userId" must be a non-empty string of at most 100 characters')
  }
  if (title === undefined) throw new HttpError(400, '"title" is missing')
  if (typeof title !== 'string') throw new HttpError(400, `"title" must be a string, got ${typeof title}`)
  const trimmed = title.trim()
  if (trimmed === '') throw new HttpError(400, '"title" is empty')
  if (trimmed.length > MAX_TITLE_LENGTH) {
    throw new HttpError(400, `"title" is ${trimmed.length} characters long; at most ${MAX_TITLE_LENGTH} are allowed`)
  }
  return { userId, title: trimmed }
}

interface TodoRow {
  user_id: string
  title: string
  status: 'open' | 'completed'
  deleted: boolean
}

function todoRoutes({ outbox, todosTable }: TodoApiInit) {
  /** The todo, locked until the transaction ends (a concurrent change of it waits), or a 404. */
  async function lockTodo(tx: PoolClient, id: string): Promise<TodoRow> {
    const { rows } = await tx.query<TodoRow>(
      `SELECT user_id, title, status, deleted FROM ${todosTable} WHERE id = $1 FOR UPDATE`,
      [id]
    )
    const todo = rows[0]
    if (todo === undefined) throw new HttpError(404, `no todo with id ${id}`)
    return todo
  }

  return {
    async create(body: unknown): Promise<Reply> {
      const { userId, title } = newTodo(body)
      const id = randomUUID()
      await outbox.transaction(async tx => {
        const { rows } = await tx.query<{ created_at: Date }>(
          `INSERT INTO ${todosTable} (id, user_id, title) VALUES ($1, $2, $3) RETURNING created_at`,
          [id, userId, title]
        )
        const createdAt = (rows[0] as { created_at: Date }).created_at
        const data: TodoEvents['todos.task.created'] = { todoId: id, userId, title, createdAt: createdAt.toISOString() }
        await outbox.add(tx, { key: id, type: 'todos.task.created', data, aggregateType: 'todo', time: createdAt })
      })
      return { status: 201, body: { id } }
    },

    async complete(id: string): Promise<Reply> {
      await outbox.transaction(async tx => {
        const todo = await lockTodo(tx, id)
        if (todo.deleted) throw new HttpError(409, `todo ${id} is deleted; a deleted todo cannot be completed`)
        if (todo.status === 'completed') throw new HttpError(409, `todo ${id} is already completed`)
        const { rows } = await tx.query<{ completed_at: Date }>(
          `UPDATE ${todosTable} SET status = 'completed', completed_at = now() WHERE id = $1 RETURNING completed_at`,
          [id]
        )
        const completedAt = (rows[0] as { completed_at: Date }).completed_at
        const data: TodoEvents['todos.task.completed'] = {
          todoId: id,
          userId: todo.user_id,
          title: todo.title,
          completedAt: completedAt.toISOString()
        }
        await outbox.add(tx, { key: id, type: 'todos.task.completed', data, aggregateType: 'todo', time: completedAt })
      })
      return { status: 200, body: { id, status: 'completed' } }
    },

    async remove(id: string): Promise<Reply> {
      await outbox.transaction(async tx => {
        const todo = await lockTodo(tx, id)
        if (todo.deleted) throw new HttpError(409, `todo ${id} is already deleted`)
        await tx.query(`UPDATE ${todosTable} SET deleted = true WHERE id = $1`, [id])
        const deletedAt = new Date()
        const data: TodoEvents['todos.task.deleted'] = {
          todoId: id,
          userId: todo.user_id,
          title: todo.title,
          deletedAt: deletedAt.toISOString()
        }
        await outbox.add(tx, { key: id, type: 'todos.task.deleted', data, aggregateType: 'todo', time: deletedAt })
      })
      return { status: 200, body: { id, deleted: true } }
    }
  }
}

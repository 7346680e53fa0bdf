/**
 * The load driver: HTTP requests to the todo API over a few concurrent connections, as its clients
 * would send them: creates, completes, deletes, and every `invalidEvery`-th request an invalid one.
 * Every `undeliverableEvery`-th new todo carries the UNDELIVERABLE marker in its title. It keeps what
 * it expects: which changes were accepted (per user and event type), which requests were refused, and
 * how many events belong to marked todos. A todo with a request in flight is not picked again until it
 * is answered, so each request's expected answer is known when it is sent.
 */
import { MAX_TITLE_LENGTH } from './api.ts'

export const UNDELIVERABLE = '[undeliverable]'

export interface LoadOptions {
  url: string
  requests: number
  connections: number
  invalidEvery: number
  undeliverableEvery: number
  users: number
}

export interface Counts {
  created: number
  completed: number
  deleted: number
}

export interface LoadResult {
  sent: number
  /** Changes the API accepted (2xx as expected), by event type. */
  accepted: Counts
  perUser: Map<string, Counts>
  /** Invalid requests sent, and those the API refused with the expected 4xx. */
  invalid: number
  rejected: number
  /** Events of todos whose title has the marker: what the notifier should dead-letter. */
  markedEvents: number
  /** Answers that were not the expected ones (the first few described). */
  unexpected: string[]
  unexpectedCount: number
  seconds: number
}

type State = 'open' | 'completed' | 'deleted'
interface Todo {
  id: string
  userId: string
  marked: boolean
}

interface Request {
  method: 'POST' | 'DELETE'
  path: string
  body?: string
  /** The status the API should answer. */
  expect: number
  describe: string
  /** On the expected answer: what changed. */
  onAccepted?: (body: unknown) => void
}

/** A small deterministic generator (mulberry32), so the mix of requests is the same from run to run. */
function random(start: number): () => number {
  let state = start >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const invalidKinds = [
  'bad JSON',
  'missing title',
  'empty title',
  'title too long',
  'missing userId',
  'complete an unknown todo',
  'complete a deleted todo',
  'delete an unknown todo'
] as const

export async function runLoad(options: LoadOptions, onAnswer: (result: LoadResult) => void): Promise<LoadResult> {
  const started = performance.now()
  const next = random(20240601)
  const result: LoadResult = {
    sent: 0,
    accepted: { created: 0, completed: 0, deleted: 0 },
    perUser: new Map(),
    invalid: 0,
    rejected: 0,
    markedEvents: 0,
    unexpected: [],
    unexpectedCount: 0,
    seconds: 0
  }
  // Todos by state, without the ones that have a request in flight (taken out while it runs).
  const idle: Record<State, Todo[]> = { open: [], completed: [], deleted: [] }
  let creates = 0
  let invalids = 0

  const take = (state: State): Todo | undefined => {
    const list = idle[state]
    if (list.length === 0) return undefined
    const index = Math.floor(next() * list.length)
    const todo = list[index] as Todo
    list[index] = list.at(-1) as Todo
    list.pop()
    return todo
  }
  const accept = (todo: Todo, kind: keyof Counts) => {
    result.accepted[kind]++
    const user = result.perUser.get(todo.userId) ?? { created: 0, completed: 0, deleted: 0 }
    user[kind]++
    result.perUser.set(todo.userId, user)
    if (todo.marked) result.markedEvents++
  }

  function create(): Request {
    creates++
    const userId = `user-${1 + Math.floor(next() * options.users)}`
    const marked = options.undeliverableEvery > 0 && creates % options.undeliverableEvery === 0
    const title = `todo ${creates} of ${userId}${marked ? ` ${UNDELIVERABLE}` : ''}`
    return {
      method: 'POST',
      path: '/todos',
      body: JSON.stringify({ userId, title }),
      expect: 201,
      describe: `create "${title}"`,
      onAccepted: body => {
        const todo = { id: (body as { id: string }).id, userId, marked }
        accept(todo, 'created')
        idle.open.push(todo)
      }
    }
  }

  function change(todo: Todo, kind: 'completed' | 'deleted'): Request {
    const complete = kind === 'completed'
    return {
      method: complete ? 'POST' : 'DELETE',
      path: complete ? `/todos/${todo.id}/complete` : `/todos/${todo.id}`,
      expect: 200,
      describe: `${complete ? 'complete' : 'delete'} todo ${todo.id}`,
      onAccepted: () => {
        accept(todo, kind)
        idle[kind].push(todo)
      }
    }
  }

  function invalid(): Request {
    const kind = invalidKinds[invalids++ % invalidKinds.length] as (typeof invalidKinds)[number]
    const body = (value: unknown) => ({ method: 'POST' as const, path: '/todos', body: JSON.stringify(value) })
    const unknownId = crypto.randomUUID()
    const deleted = idle.deleted[Math.floor(next() * idle.deleted.length)]
    switch (kind) {
      case 'bad JSON':
        return { method: 'POST', path: '/todos', body: '{"userId": "user-1", "title": ', expect: 400, describe: kind }
      case 'missing title':
        return { ...body({ userId: 'user-1' }), expect: 400, describe: kind }
      case 'empty title':
        return { ...body({ userId: 'user-1', title: '   ' }), expect: 400, describe: kind }
      case 'title too long':
        return { ...body({ userId: 'user-1', title: 'x'.repeat(MAX_TITLE_LENGTH + 1) }), expect: 400, describe: kind }
      case 'missing userId':
        return { ...body({ title: 'whose is this?' }), expect: 400, describe: kind }
      case 'complete an unknown todo':
        return { method: 'POST', path: `/todos/${unknownId}/complete`, expect: 404, describe: kind }
      case 'complete a deleted todo':
        // Before any todo is deleted, a todo that never existed stands in for it.
        return deleted
          ? { method: 'POST', path: `/todos/${deleted.id}/complete`, expect: 409, describe: kind }
          : { method: 'POST', path: `/todos/${unknownId}/complete`, expect: 404, describe: kind }
      case 'delete an unknown todo':
        return { method: 'DELETE', path: `/todos/${unknownId}`, expect: 404, describe: kind }
    }
  }

  /** The request number `n` (from 1): an invalid one every `invalidEvery`, else a change by chance. */
  function plan(n: number): Request {
    if (options.invalidEvery > 0 && n % options.invalidEvery === 0) {
      result.invalid++
      return invalid()
    }
    const roll = next()
    const open = roll < 0.3 ? take('open') : undefined
    if (open) return change(open, 'completed')
    const gone = roll < 0.5 ? (take('completed') ?? take('open')) : undefined
    if (gone) return change(gone, 'deleted')
    return create()
  }

  async function send(request: Request): Promise<void> {
    let status = 0
    let body: unknown
    try {
      const response = await fetch(`${options.url}${request.path}`, {
        method: request.method,
        headers: { 'content-type': 'application/json' },
        ...(request.body === undefined ? {} : { body: request.body })
      })
      status = response.status
      body = await response.json()
    } catch (error) {
      body = { error: (error as Error).message }
    }
    const error = (body as { error?: unknown } | undefined)?.error
    if (status === request.expect && (status < 400 || typeof error === 'string')) {
      if (status < 400) request.onAccepted?.(body)
      else result.rejected++
      return
    }
    result.unexpectedCount++
    if (result.unexpected.length < 5) {
      result.unexpected.push(`${request.describe}: expected ${request.expect}, got ${status} ${JSON.stringify(body)}`)
    }
  }

  let issued = 0
  const worker = async () => {
    while (issued < options.requests) {
      const request = plan(++issued)
      result.sent++
      await send(request)
      onAnswer(result)
    }
  }
  await Promise.all(Array.from({ length: options.connections }, worker))
  result.seconds = (performance.now() - started) / 1000
  return result
}

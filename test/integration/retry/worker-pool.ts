/**
 * Retry worker processes (retry-worker.ts) for the kill and churn tests: a fresh ledger file, and
 * `start()` to spawn one more worker with the given env; whatever is still running when the test ends
 * is SIGKILLed.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { uniqueName } from '../../../src/testing/topics.ts'

const workerFile = fileURLToPath(new URL('./retry-worker.ts', import.meta.url))

export interface RetryWorker {
  child: ChildProcess
  /** Settles when the process exits: its exit code, or the signal that ended it. */
  exited: Promise<[code: number | null, signal: NodeJS.Signals | null]>
}

export function retryWorkerPool(
  t: TestContext,
  env: Record<string, string>
): { ledger: string; start: () => RetryWorker } {
  const ledger = join(tmpdir(), `${uniqueName('retry-ledger')}.txt`)
  writeFileSync(ledger, '')
  const alive = new Set<ChildProcess>()
  t.after(() => {
    for (const child of alive) child.kill('SIGKILL')
  })
  const start = (): RetryWorker => {
    const child = spawn(process.execPath, ['--conditions=development', workerFile], {
      env: { ...process.env, ...env, LEDGER: ledger },
      stdio: ['ignore', 'ignore', 'inherit']
    })
    alive.add(child)
    const exited = once(child, 'exit').then(result => {
      alive.delete(child)
      return result as [number | null, NodeJS.Signals | null]
    })
    return { child, exited }
  }
  return { ledger, start }
}

/**
 * Waiting in tests: for a condition, never for a fixed time. `waitFor` throws, naming what it waited
 * for, when the condition does not hold in time; `eventually` answers whether it held, for a test
 * that asserts with its own message.
 */

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Polls `check` every `everyMs` until it holds; throws after `timeoutMs`, naming `what`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
  what = 'the condition',
  everyMs = 50
): Promise<void> {
  if (!(await eventually(check, timeoutMs, everyMs))) {
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
  }
}

/** Polls `check` every `everyMs` until it holds or `timeoutMs` passed; whether it held. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 200
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return true
    await sleep(everyMs)
  }
  return check()
}

/**
 * An error as the text that failure records carry (dead-letter and retry headers): its class, its code,
 * its message followed by those of its causes, cut to a size. One copy for both kinds of record.
 */

const TRUNCATED = '… [truncated]'

/** Cuts `text` to at most `max` characters, marking the cut and never splitting a surrogate pair. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text
  let end = Math.max(0, max - TRUNCATED.length)
  const last = text.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end--
  return text.slice(0, end) + TRUNCATED
}

export function errorClassOf(error: unknown): string {
  if (error instanceof Error) {
    if (error.name && error.name !== 'Error') return error.name
    return error.constructor.name || 'Error'
  }
  return error === null ? 'null' : typeof error
}

export function errorCodeOf(error: unknown): string | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  return typeof code === 'string' || typeof code === 'number' ? String(code) : undefined
}

/** A thrown non-Error (an object, a number) as text; never throws. */
function printable(value: unknown): string {
  try {
    return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? typeof value
  } catch {
    return `[unprintable ${typeof value}]`
  }
}

/** The message of the error followed by those of its causes. */
export function errorMessageOf(error: unknown): string {
  const parts: string[] = []
  let current: unknown = error
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    const text = current instanceof Error ? current.message : typeof current === 'string' ? current : printable(current)
    parts.push(depth === 0 ? text : `caused by ${errorClassOf(current)}: ${text}`)
    current = current instanceof Error ? current.cause : undefined
  }
  return parts.join('; ')
}

/**
 * Kafkit's one duration grammar, for every option that is a time, in code and in the environment: a
 * number is milliseconds; text is one or more amounts with units, `250`, `250ms`, `1.5s`, `30s`, `5m`,
 * `1h30m`, `1s500ms`, `1d`. `formatDuration` prints the same grammar back (retry topic names use it).
 */
import { z } from 'zod'
import { ConfigError } from '../errors/kafkit-error.ts'

const UNITS: [string, number][] = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
  ['ms', 1]
]
const UNIT_MS = new Map(UNITS)
const GRAMMAR = 'a duration such as 250, 250ms, 30s, 5m, 1h30m or 1d'

/** A duration option: milliseconds, or text in the grammar above. */
export type Duration = number | string

/** Text in the duration grammar → milliseconds (rounded); throws saying what is expected. */
export function parseDuration(text: string): number {
  const compact = text.trim().toLowerCase()
  if (/^\d+(?:\.\d+)?$/.test(compact)) return Math.round(Number(compact))
  if (!/^(?:\d+(?:\.\d+)?(?:d|h|ms|m|s))+$/.test(compact)) throw new ConfigError(`expected ${GRAMMAR}`)
  let total = 0
  for (const [, amount, unit] of compact.matchAll(/(\d+(?:\.\d+)?)(d|h|ms|m|s)/g)) {
    total += Number(amount) * (UNIT_MS.get(unit ?? 'ms') ?? 1)
  }
  return Math.round(total)
}

/** `300000` → `5m`, `5400000` → `1h30m`, `250` → `250ms`, `86400000` → `1d`: stable, lower-case, no dots. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0ms'
  let rest = ms
  let text = ''
  for (const [unit, size] of UNITS) {
    const count = Math.floor(rest / size)
    if (count > 0) text += `${count}${unit}`
    rest -= count * size
  }
  return text
}

/** The schema of a duration option: a whole number of milliseconds in [min, max], or text that parses to one. */
export function duration(min = 0, max?: number) {
  const ms = max === undefined ? z.number().int().min(min) : z.number().int().min(min).max(max)
  const text = z.string().transform((value, context) => {
    try {
      return parseDuration(value)
    } catch {
      // The options' error reads "expected <message>".
      context.addIssue({ code: 'custom', message: GRAMMAR })
      return z.NEVER
    }
  })
  return z.union([ms, text.pipe(ms)])
}

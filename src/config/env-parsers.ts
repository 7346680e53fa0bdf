/**
 * Parsers for environment values in the forms the `KAFKA_*` variables use: `10ms`, `1s`, `10MB`,
 * `-1`, `true`, `broker1:9092,broker2:9092`. Each throws a ConfigError that says what form was expected.
 */
import type { EnvBinding } from './define-options.ts'
import { parseDuration } from './duration.ts'
import { ConfigError } from '../errors/kafkit-error.ts'

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1024,
  kib: 1024,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  gb: 1024 ** 3,
  gib: 1024 ** 3
}

/** A duration in Kafkit's one grammar (src/config/duration.ts): `250`, `250ms`, `1.5s`, `5m`, `1h30m`. */
export const parseDurationMs = parseDuration

/** `1048576`, `512KB`, `10MB`, `1GiB` → bytes (binary multiples). A bare number is bytes. */
export function parseBytes(raw: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(raw)
  if (!match?.[1]) throw new ConfigError('expected a size such as 1048576, 512KB or 10MB')
  return Math.round(Number(match[1]) * (SIZE_UNITS[(match[2] ?? 'b').toLowerCase()] ?? 1))
}

export function parseInteger(raw: string): number {
  if (!/^\s*-?\d+\s*$/.test(raw)) throw new ConfigError('expected a whole number')
  return Number(raw)
}

export function parseBoolean(raw: string): boolean {
  const value = raw.trim().toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(value)) return true
  if (['false', '0', 'no', 'off'].includes(value)) return false
  throw new ConfigError('expected true or false')
}

export function parseList(raw: string): string[] {
  return raw
    .split(',')
    .map(s => s.trim())
    .filter(Boolean)
}

export const envString = (name: string): EnvBinding => ({ name, parse: raw => raw })
export const envInteger = (name: string): EnvBinding => ({ name, parse: parseInteger })
export const envBoolean = (name: string): EnvBinding => ({ name, parse: parseBoolean })
export const envDuration = (name: string): EnvBinding => ({ name, parse: parseDurationMs })
export const envBytes = (name: string): EnvBinding => ({ name, parse: parseBytes })
export const envList = (name: string): EnvBinding => ({ name, parse: parseList })

/** A start offset (`KAFKA_CONSUMER_START_OFFSET`, `KAFKA_SINK_START_OFFSET`): -1 (newest) and -2 (oldest); names work too. */
export const envStartOffset = (name: string): EnvBinding => ({
  name,
  parse: raw => {
    const value = raw.trim().toLowerCase()
    if (value === '-1' || value === 'latest' || value === 'newest') return 'latest'
    if (value === '-2' || value === 'earliest' || value === 'oldest') return 'earliest'
    throw new ConfigError('expected -1 (latest/newest) or -2 (earliest/oldest)')
  }
})

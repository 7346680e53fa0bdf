/**
 * SQL text helpers of the Postgres sink: identifier quoting and one conversion of JavaScript values to
 * PostgreSQL's text input, shared by the INSERT path (as query parameters) and the COPY path (as COPY
 * text lines), so both paths store exactly the same values. Dates become ISO 8601 in UTC (unambiguous
 * for `timestamptz`), objects become JSON, arrays array literals, Buffers `bytea` hex.
 */

/** Quotes one identifier (`"my ""odd"" name"`). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/** Quotes a possibly schema-qualified name: `audit.logs` → `"audit"."logs"`. */
export function quoteQualified(name: string): string {
  return name
    .split('.')
    .map(part => quoteIdent(part))
    .join('.')
}

/** Quotes a string literal (`'it''s'`); used only for DDL where parameters are not allowed. */
export function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`
}

function arrayElement(value: unknown): string {
  if (value === null || value === undefined) return 'NULL'
  if (Array.isArray(value)) return arrayLiteral(value)
  const text = toSqlText(value) ?? ''
  const plain = typeof text === 'string' ? text : `\\x${text.toString('hex')}`
  return `"${plain.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`
}

function arrayLiteral(values: readonly unknown[]): string {
  return `{${values.map(arrayElement).join(',')}}`
}

/**
 * The PostgreSQL text input of a value: null for SQL NULL, a Buffer for `bytea` (passed as a binary
 * parameter by pg), otherwise a string.
 */
export function toSqlText(value: unknown): string | Buffer | null {
  if (value === null || value === undefined) return null
  switch (typeof value) {
    case 'string':
      return value
    case 'number':
      return Number.isFinite(value) ? String(value) : Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity'
    case 'bigint':
      return value.toString()
    case 'boolean':
      return value ? 'true' : 'false'
    default:
      break
  }
  if (value instanceof Date) return isoTimestamp(value)
  if (Buffer.isBuffer(value)) return value
  if (value instanceof Uint8Array) return Buffer.from(value)
  if (Array.isArray(value)) return arrayLiteral(value)
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n))
let cachedSecond = Number.NaN
let cachedPrefix = ''

/**
 * `date.toISOString()`, faster: V8's costs close to a microsecond, a large part of a COPY line. The
 * part up to the second is kept from the previous call (a partition's log timestamps are close), so
 * most calls only add the milliseconds. Years outside 1000-9999 and invalid dates go to toISOString.
 */
export function isoTimestamp(date: Date): string {
  const ms = date.getTime()
  const second = Math.floor(ms / 1000)
  if (second !== cachedSecond) {
    const year = date.getUTCFullYear()
    if (!(year >= 1000 && year <= 9999)) return date.toISOString()
    cachedPrefix = `${year}-${pad2(date.getUTCMonth() + 1)}-${pad2(date.getUTCDate())}T${pad2(date.getUTCHours())}:${pad2(date.getUTCMinutes())}:${pad2(date.getUTCSeconds())}.`
    cachedSecond = second
  }
  const milli = ms - second * 1000
  return `${cachedPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`
}

const needsEscape = /[\\\n\r\t]/

function escapeCopy(plain: string): string {
  // Most fields need no escaping: one scan instead of four replacements (COPY's hot path).
  if (!needsEscape.test(plain)) return plain
  // Backslash first, so the escapes added after it are not doubled.
  return plain.replaceAll('\\', '\\\\').replaceAll('\n', '\\n').replaceAll('\r', '\\r').replaceAll('\t', '\\t')
}

/** One field of a COPY text-format line (tab-separated, `\N` for NULL, backslash escapes). */
export function copyField(value: unknown): string {
  // The common types first, without going through toSqlText.
  if (typeof value === 'string') return escapeCopy(value)
  if (value instanceof Date) return isoTimestamp(value)
  const text = toSqlText(value)
  if (text === null) return '\\N'
  return escapeCopy(typeof text === 'string' ? text : `\\x${text.toString('hex')}`)
}

/** The COPY text line of one row (with the trailing newline). */
export function copyLine(row: Record<string, unknown>, columns: readonly string[]): string {
  let line = copyField(row[columns[0] as string])
  for (let i = 1; i < columns.length; i++) line += `\t${copyField(row[columns[i] as string])}`
  return `${line}\n`
}

/** COPY text for many rows, in chunks of about `chunkSize` characters (fewer, larger CopyData messages). */
export function* copyChunks(
  rows: Iterable<Record<string, unknown>>,
  columns: readonly string[],
  chunkSize = 64 * 1024
): Generator<string> {
  let chunk = ''
  for (const row of rows) {
    chunk += copyLine(row, columns)
    if (chunk.length >= chunkSize) {
      yield chunk
      chunk = ''
    }
  }
  if (chunk.length > 0) yield chunk
}

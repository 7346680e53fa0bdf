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
  if (value instanceof Date) return value.toISOString()
  if (Buffer.isBuffer(value)) return value
  if (value instanceof Uint8Array) return Buffer.from(value)
  if (Array.isArray(value)) return arrayLiteral(value)
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
}

const needsEscape = /[\\\n\r\t]/

/** One field of a COPY text-format line (tab-separated, `\N` for NULL, backslash escapes). */
export function copyField(value: unknown): string {
  const text = toSqlText(value)
  if (text === null) return '\\N'
  const plain = typeof text === 'string' ? text : `\\x${text.toString('hex')}`
  // Most fields need no escaping: one scan instead of four replacements (COPY's hot path).
  if (!needsEscape.test(plain)) return plain
  // Backslash first, so the escapes added after it are not doubled.
  return plain.replaceAll('\\', '\\\\').replaceAll('\n', '\\n').replaceAll('\r', '\\r').replaceAll('\t', '\\t')
}

/** The COPY text line of one row (with the trailing newline). */
export function copyLine(row: Record<string, unknown>, columns: readonly string[]): string {
  let line = ''
  for (let i = 0; i < columns.length; i++) {
    if (i > 0) line += '\t'
    line += copyField(row[columns[i] as string])
  }
  return `${line}\n`
}

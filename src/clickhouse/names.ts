/**
 * Quoting of ClickHouse identifiers: backticks (every version since 1.1 accepts them), with
 * backslash escapes; a `database.table` name is quoted part by part.
 */
export function quoteClickHouseIdent(name: string): string {
  return `\`${name.replaceAll('\\', '\\\\').replaceAll('`', '\\`')}\``
}

export function quoteClickHouseName(name: string): string {
  return name
    .split('.')
    .map(part => quoteClickHouseIdent(part))
    .join('.')
}

/** Splits `database.table` (the database is undefined for a bare table name). */
export function splitClickHouseName(name: string): { database: string | undefined; table: string } {
  const dot = name.indexOf('.')
  return dot < 0 ? { database: undefined, table: name } : { database: name.slice(0, dot), table: name.slice(dot + 1) }
}

/**
 * Numeric settings of a bench program: `--name value` on the command line, else the environment
 * variable NAME (dashes become underscores), else the default. Anything else than a number >= 0 fails.
 */
import { parseArgs } from 'node:util'

export function numericSettings(names: readonly string[]): (name: string, fallback: number) => number {
  const { values } = parseArgs({
    options: Object.fromEntries(names.map(name => [name, { type: 'string' as const }]))
  })
  return (name, fallback) => {
    const env = name.toUpperCase().replaceAll('-', '_')
    const text = values[name] ?? process.env[env]
    const value = Number(text ?? fallback)
    if (!Number.isFinite(value) || value < 0) {
      throw new Error(`--${name} (${env}): got ${String(text)}, expected a number`)
    }
    return value
  }
}

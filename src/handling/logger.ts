/**
 * The logger handling writes to: pino's shape, so a pino logger (or a child of the user's) fits as is.
 * The default is one pino instance named `kafkit`, created on first use. Handling never logs message
 * values, keys or raw headers unless a middleware is told to.
 */
import { pino } from 'pino'

export interface HandlingLogger {
  debug(fields: object, message: string): void
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
  error(fields: object, message: string): void
}

let shared: HandlingLogger | undefined

export function defaultLogger(): HandlingLogger {
  shared ??= pino({ name: 'kafkit' })
  return shared
}

/**
 * Connection options shared by every client (producer, consumer, admin): brokers, client id, SASL and
 * TLS, with `KAFKA_BROKERS` and Kafkit's `KAFKA_CLIENT_ID` / `KAFKA_SASL_*` / `KAFKA_TLS*` environment
 * names. Components spread `connectionShape` into their own schema and
 * `connectionEnv` into their env bindings, then map with `toClientOptions`. Entry points that take
 * nothing but a connection (topology, dead-letter operations, `kafkit/testing`) take
 * `ConnectionOptions` and map it with `clientOptionsOf`.
 */
import { readFileSync } from 'node:fs'
import type { BaseOptions } from '@platformatic/kafka'
import { z } from 'zod'
import { duration } from '../config/duration.ts'
import { defineOptions, type EnvBinding } from '../config/define-options.ts'
import { envBoolean, envDuration, envList, envString } from '../config/env-parsers.ts'

const brokerAddress = z
  .string()
  .regex(/^[^\s:,]+:\d{1,5}$/, 'host:port')
  .describe('host:port')

export const connectionShape = {
  brokers: z
    .array(brokerAddress)
    .min(1)
    .describe('Bootstrap brokers as host:port. Required (in code or KAFKA_BROKERS).'),
  clientId: z.string().min(1).default('kafkit').describe('Client id sent to the brokers (quotas, logs).'),
  connectTimeoutMs: duration(1).default(10_000).describe('TCP connect timeout.'),
  requestTimeoutMs: duration(1).default(30_000).describe('Timeout of one request to a broker.'),
  sasl: z
    .strictObject({
      mechanism: z.enum(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512', 'OAUTHBEARER']).describe('SASL mechanism.'),
      username: z.string().optional().describe('SASL user name.'),
      password: z.string().optional().describe('SASL password (never logged).'),
      token: z.string().optional().describe('OAUTHBEARER token (never logged).')
    })
    .optional()
    .describe('SASL authentication; absent means none.'),
  tls: z
    .strictObject({
      enabled: z.boolean().default(true).describe('Use TLS.'),
      caFile: z.string().optional().describe('PEM file with the CA certificates to trust.'),
      certFile: z.string().optional().describe('PEM client certificate (mutual TLS).'),
      keyFile: z.string().optional().describe('PEM client key (mutual TLS).'),
      rejectUnauthorized: z.boolean().default(true).describe('Verify the broker certificate.')
    })
    .optional()
    .describe('TLS; absent means plaintext.')
}

export const connectionEnv: Record<string, EnvBinding> = {
  brokers: envList('KAFKA_BROKERS'),
  clientId: envString('KAFKA_CLIENT_ID'),
  connectTimeoutMs: envDuration('KAFKA_CONNECT_TIMEOUT'),
  requestTimeoutMs: envDuration('KAFKA_REQUEST_TIMEOUT'),
  'sasl.mechanism': envString('KAFKA_SASL_MECHANISM'),
  'sasl.username': envString('KAFKA_SASL_USERNAME'),
  'sasl.password': envString('KAFKA_SASL_PASSWORD'),
  'sasl.token': envString('KAFKA_SASL_TOKEN'),
  'tls.enabled': envBoolean('KAFKA_TLS'),
  'tls.caFile': envString('KAFKA_TLS_CA_FILE'),
  'tls.certFile': envString('KAFKA_TLS_CERT_FILE'),
  'tls.keyFile': envString('KAFKA_TLS_KEY_FILE')
}

export const connectionSecrets = ['sasl.password', 'sasl.token']

export interface ConnectionConfig {
  brokers: string[]
  clientId: string
  connectTimeoutMs: number
  requestTimeoutMs: number
  sasl?:
    | { mechanism: string; username?: string | undefined; password?: string | undefined; token?: string | undefined }
    | undefined
  tls?:
    | {
        enabled: boolean
        caFile?: string | undefined
        certFile?: string | undefined
        keyFile?: string | undefined
        rejectUnauthorized: boolean
      }
    | undefined
}

/** Maps resolved connection options onto @platformatic/kafka's client options. */
export function toClientOptions(config: ConnectionConfig): BaseOptions {
  const options: BaseOptions = {
    clientId: config.clientId,
    bootstrapBrokers: [...config.brokers],
    connectTimeout: config.connectTimeoutMs,
    requestTimeout: config.requestTimeoutMs
  }
  if (config.sasl) {
    options.sasl = {
      mechanism: config.sasl.mechanism as 'PLAIN',
      ...(config.sasl.username === undefined ? {} : { username: config.sasl.username }),
      ...(config.sasl.password === undefined ? {} : { password: config.sasl.password }),
      ...(config.sasl.token === undefined ? {} : { token: config.sasl.token })
    }
  }
  if (config.tls?.enabled) {
    const read = (file: string | undefined) => (file === undefined ? undefined : readFileSync(file))
    options.tls = {
      rejectUnauthorized: config.tls.rejectUnauthorized,
      ...(config.tls.caFile === undefined ? {} : { ca: read(config.tls.caFile) }),
      ...(config.tls.certFile === undefined ? {} : { cert: read(config.tls.certFile) }),
      ...(config.tls.keyFile === undefined ? {} : { key: read(config.tls.keyFile) })
    }
  }
  return options
}

/** The connection options alone: what topology, dead-letter operations and `kafkit/testing` take. */
export const connectionOptions = defineOptions({
  component: 'connection',
  schema: z.strictObject(connectionShape),
  env: connectionEnv,
  secrets: connectionSecrets
})

/** Brokers, client id, timeouts, SASL and TLS; each falls back to its environment variable. */
export type ConnectionOptions = Partial<z.input<typeof connectionOptions.schema>>

const connectionKeys = Object.keys(connectionShape) as (keyof ConnectionOptions)[]

/** Just the connection keys of a larger options object (an operation's options, say). */
export function pickConnection(options: ConnectionOptions): ConnectionOptions {
  const picked: Record<string, unknown> = {}
  for (const key of connectionKeys) if (options[key] !== undefined) picked[key] = options[key]
  return picked
}

/**
 * Resolves the connection keys of `options` (environment underneath, validated, `ConfigError` when
 * wrong) into client options; `clientId` names the tool when the user gave none.
 */
export function clientOptionsOf(
  options: ConnectionOptions,
  clientId: string,
  env: NodeJS.ProcessEnv = process.env
): BaseOptions {
  const fallback = env.KAFKA_CLIENT_ID ? {} : { clientId }
  return toClientOptions(connectionOptions.resolve({ ...fallback, ...pickConnection(options) }, { env }))
}

/**
 * One options module per component: a zod object schema is the single source of the TypeScript type,
 * the defaults, the validation and the documented options table. `resolve()` merges
 * defaults < profile < environment < code, validates once, reports the exact key path with the value and
 * what is allowed, and returns a frozen object. Values of keys marked secret never appear in messages.
 */
import { z } from 'zod'
import { ConfigError } from '../errors/kafkit-error.ts'

/** How one environment variable maps onto an option key (a dot path for nested options). */
export interface EnvBinding {
  name: string
  parse: (raw: string) => unknown
}

export interface OptionsDefinition<S extends z.ZodObject> {
  readonly component: string
  readonly schema: S
  readonly env: Readonly<Record<string, EnvBinding>>
  readonly profiles: Readonly<Record<string, Partial<z.input<S>>>>
  readonly secrets: ReadonlySet<string>
  /** Validates and freezes; throws ConfigError naming key, value and what is allowed. */
  resolve(
    input?: Partial<z.input<S>>,
    context?: { env?: NodeJS.ProcessEnv; profile?: string | undefined }
  ): Readonly<z.output<S>>
  /** The options as a Markdown table for docs/ (generated; a test keeps docs in step). */
  table(): string
  /** A copy safe to log: secret keys replaced by "[redacted]". */
  redact(value: Readonly<z.output<S>>): Record<string, unknown>
}

export interface DefineOptions<S extends z.ZodObject> {
  component: string
  schema: S
  env?: Record<string, EnvBinding>
  profiles?: Record<string, Partial<z.input<S>>>
  /** Dot paths of keys whose values must never be printed (passwords, tokens). */
  secrets?: string[]
  /** Environment prefix: a variable starting with it that no key binds is an error (catches typos). */
  envPrefix?: string
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.')
  let node = target
  for (const part of parts.slice(0, -1)) {
    const next = node[part]
    if (typeof next !== 'object' || next === null) node[part] = {}
    node = node[part] as Record<string, unknown>
  }
  node[parts.at(-1) ?? path] = value
}

function getPath(source: unknown, path: (string | number | symbol)[]): unknown {
  let node = source
  for (const part of path) {
    if (typeof node !== 'object' || node === null) return undefined
    node = (node as Record<string | number | symbol, unknown>)[part]
  }
  return node
}

function deepMerge(...layers: Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue
      const current = out[key]
      const plain = (v: unknown) =>
        typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v) && !(v instanceof RegExp)
      out[key] =
        plain(value) && plain(current)
          ? deepMerge(current as Record<string, unknown>, value as Record<string, unknown>)
          : value
    }
  }
  return out
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value) && !Buffer.isBuffer(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}

function describeAllowed(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_value':
      return `one of ${issue.values.map(v => JSON.stringify(v)).join(', ')}`
    case 'invalid_type':
      return `a ${issue.expected}`
    case 'too_small':
      return `${issue.inclusive === false ? 'more than' : 'at least'} ${String(issue.minimum)}`
    case 'too_big':
      return `${issue.inclusive === false ? 'less than' : 'at most'} ${String(issue.maximum)}`
    case 'unrecognized_keys':
      return 'only the documented keys'
    case 'invalid_union': {
      // A duration (a number or a text): the branch that took the value says what was wrong with it.
      const taken = issue.errors.flat().find(inner => inner.code !== 'invalid_type')
      return taken ? describeAllowed(taken) : 'a number of milliseconds or a duration such as 30s or 5m'
    }
    default:
      return issue.message
  }
}

/** The options the environment sets, and which variable set each key; throws on a value the binding rejects. */
function readEnv(
  component: string,
  env: Readonly<Record<string, EnvBinding>>,
  secrets: ReadonlySet<string>,
  sourceEnv: NodeJS.ProcessEnv
): { fromEnv: Record<string, unknown>; origin: Map<string, string> } {
  const fromEnv: Record<string, unknown> = {}
  const origin = new Map<string, string>()
  for (const [key, binding] of Object.entries(env)) {
    const raw = sourceEnv[binding.name]
    if (raw === undefined || raw === '') continue
    let parsed: unknown
    try {
      parsed = binding.parse(raw)
    } catch (error) {
      const shown = secrets.has(key) ? '[redacted]' : JSON.stringify(raw)
      throw new ConfigError(
        `${component} option \`${key}\` from ${binding.name}=${shown}: ${(error as Error).message}`,
        {
          cause: error,
          details: { component, key, env: binding.name }
        }
      )
    }
    setPath(fromEnv, key, parsed)
    origin.set(key, binding.name)
  }
  return { fromEnv, origin }
}

/** Throws for a variable that starts with `envPrefix` but no key binds (a typo). */
function checkEnvPrefix(
  component: string,
  envPrefix: string,
  envKeyOf: ReadonlyMap<string, string>,
  sourceEnv: NodeJS.ProcessEnv
): void {
  for (const name of Object.keys(sourceEnv)) {
    if (name.startsWith(envPrefix) && !envKeyOf.has(name)) {
      const known = [...envKeyOf.keys()].filter(n => n.startsWith(envPrefix)).join(', ')
      throw new ConfigError(
        `${component}: unknown environment variable ${name}; the ${envPrefix}* variables are ${known}`,
        { details: { component, env: name } }
      )
    }
  }
}

/** The options of the named profile (none when no profile is named); throws for an unknown name. */
function profileLayer(
  component: string,
  profiles: Readonly<Record<string, Record<string, unknown>>>,
  profileName: string | undefined
): Record<string, unknown> {
  if (profileName === undefined) return {}
  const profile = profiles[profileName]
  if (!profile) {
    throw new ConfigError(
      `${component} profile ${JSON.stringify(profileName)} is unknown; use one of ${Object.keys(profiles).join(', ')}`,
      { details: { component, profile: profileName } }
    )
  }
  return profile
}

/** The ConfigError for failed validation: the first issue's key path, its value (unless secret) and what is allowed. */
function invalidOptionsError(
  component: string,
  issues: readonly z.core.$ZodIssue[],
  merged: Record<string, unknown>,
  origin: ReadonlyMap<string, string>,
  secrets: ReadonlySet<string>
): ConfigError {
  const issue = issues[0]
  if (!issue) return new ConfigError(`${component}: invalid options`)
  const keys = issue.code === 'unrecognized_keys' ? issue.keys.map(k => [...issue.path, k].join('.')) : []
  const path = keys[0] ?? issue.path.map(String).join('.')
  const from = origin.get(path)
  const value = getPath(merged, issue.path.concat(issue.code === 'unrecognized_keys' ? [issue.keys[0] ?? ''] : []))
  const shown = secrets.has(path)
    ? '[redacted]'
    : JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))
  const head =
    issue.code === 'unrecognized_keys'
      ? `${component}: unknown option \`${path}\``
      : `${component} option \`${path}\`${from ? ` (from ${from})` : ''}: got ${shown ?? 'nothing'}, expected ${describeAllowed(issue)}`
  const extra = issues.length > 1 ? ` (and ${issues.length - 1} more problem(s))` : ''
  return new ConfigError(`${head}${extra}; see the ${component} options table in the docs`, {
    details: { component, key: path, ...(from ? { env: from } : {}) }
  })
}

type JsonSchemaProperties = Record<string, Record<string, unknown>>

/** The Type column of one property of the JSON schema. */
function typeOf(prop: Record<string, unknown>): string {
  if (Array.isArray(prop.enum)) return prop.enum.map(v => `\`${JSON.stringify(v)}\``).join(' \\| ')
  if (Array.isArray(prop.anyOf)) return (prop.anyOf as Record<string, unknown>[]).map(typeOf).join(' \\| ')
  if ('const' in prop) return `\`${JSON.stringify(prop.const)}\``
  const type = typeof prop.type === 'string' ? prop.type : 'any'
  const range: string[] = []
  if (typeof prop.minimum === 'number') range.push(`>= ${prop.minimum}`)
  if (typeof prop.exclusiveMinimum === 'number') range.push(`> ${prop.exclusiveMinimum}`)
  if (typeof prop.maximum === 'number') range.push(`<= ${prop.maximum}`)
  return range.length > 0 ? `${type} (${range.join(', ')})` : type
}

/** Appends a row per property to `rows`, nested objects' keys after their object as dot paths. */
function tableRows(
  rows: string[],
  properties: JsonSchemaProperties,
  prefix: string,
  env: Readonly<Record<string, EnvBinding>>,
  secrets: ReadonlySet<string>
): void {
  for (const [key, prop] of Object.entries(properties)) {
    const path = prefix + key
    const nested = prop.properties as JsonSchemaProperties | undefined
    const binding = env[path]
    const def = 'default' in prop ? `\`${JSON.stringify(prop.default)}\`` : ''
    const description = typeof prop.description === 'string' ? prop.description.replaceAll('|', '\\|') : ''
    rows.push(
      `| \`${path}\` | ${nested ? 'object' : typeOf(prop)} | ${secrets.has(path) ? '' : def} | ${binding ? `\`${binding.name}\`` : ''} | ${description} |`
    )
    if (nested) tableRows(rows, nested, `${path}.`, env, secrets)
  }
}

/** The options of `schema` as a Markdown table. */
function renderTable(
  schema: z.ZodObject,
  env: Readonly<Record<string, EnvBinding>>,
  secrets: ReadonlySet<string>
): string {
  const json = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
    // The input view leaves out the default of a value that is transformed (a duration's text): put it back.
    override: context => {
      const def = (context.zodSchema as unknown as { _zod: { def: { type: string; defaultValue?: unknown } } })._zod.def
      if (def.type === 'default' && context.jsonSchema.default === undefined)
        context.jsonSchema.default = def.defaultValue
    }
  }) as {
    properties?: JsonSchemaProperties
  }
  const rows: string[] = ['| Option | Type | Default | Environment | Description |', '| --- | --- | --- | --- | --- |']
  tableRows(rows, json.properties ?? {}, '', env, secrets)
  return rows.join('\n')
}

export function defineOptions<S extends z.ZodObject>(definition: DefineOptions<S>): OptionsDefinition<S> {
  const { component, schema, envPrefix } = definition
  const env = definition.env ?? {}
  const secrets = new Set(definition.secrets ?? [])
  const profiles = definition.profiles ?? {}
  const envKeyOf = new Map(Object.entries(env).map(([key, binding]) => [binding.name, key]))

  const resolve: OptionsDefinition<S>['resolve'] = (input = {}, context = {}) => {
    const sourceEnv = context.env ?? process.env
    const { fromEnv, origin } = readEnv(component, env, secrets, sourceEnv)
    if (envPrefix) checkEnvPrefix(component, envPrefix, envKeyOf, sourceEnv)
    const fromProfile = profileLayer(component, profiles, context.profile)
    const merged = deepMerge(fromProfile, fromEnv, input)
    const result = schema.safeParse(merged)
    if (!result.success) throw invalidOptionsError(component, result.error.issues, merged, origin, secrets)
    return deepFreeze(result.data)
  }

  const table = (): string => renderTable(schema, env, secrets)

  const redact: OptionsDefinition<S>['redact'] = value => {
    const copy = structuredClone(value) as Record<string, unknown>
    for (const path of secrets) {
      if (getPath(copy, path.split('.')) !== undefined) setPath(copy, path, '[redacted]')
    }
    return copy
  }

  return { component, schema, env, profiles, secrets, resolve, table, redact }
}

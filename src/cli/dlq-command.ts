/**
 * `kafkit dlq list|show`: look into a dead-letter topic from a terminal (readable) or a script
 * (`--json`). Brokers come from `--brokers` or KAFKA_BROKERS. Reads a snapshot: records that arrive
 * while the command runs are left for the next look.
 */
import { Command, InvalidArgumentError, Option } from 'commander'
import { ConfigError } from '../errors/kafkit-error.ts'
import { listDeadLetters, showDeadLetter, type DeadLetterEntry } from '../operations/dead-letter-inspector.ts'

function brokersFrom(option: string | undefined): string[] {
  const value = option ?? process.env.KAFKA_BROKERS
  if (!value) {
    throw new ConfigError('no brokers: pass --brokers host:port[,host:port] or set KAFKA_BROKERS')
  }
  return value.split(',').map(s => s.trim())
}

function parseDate(value: string): Date {
  const date = new Date(value)
  if (Number.isNaN(date.getTime()))
    throw new InvalidArgumentError('expected an ISO 8601 time, e.g. 2026-11-22T10:00:00Z.')
  return date
}

function parsePosition(value: string): { partition: number; offset: bigint } {
  const match = /^(\d+):(\d+)$/.exec(value)
  if (!match?.[1] || !match[2]) throw new InvalidArgumentError('expected <partition>:<offset>, e.g. 0:42.')
  return { partition: Number(match[1]), offset: BigInt(match[2]) }
}

/** Printable text of a payload: UTF-8 when it is valid text, else base64 marked as such. */
function readable(bytes: Buffer | null): string {
  if (bytes === null) return '(null)'
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return `(not UTF-8, ${bytes.length} bytes, base64) ${bytes.toString('base64')}`
  }
}

function toJson(entry: DeadLetterEntry): Record<string, unknown> {
  return {
    partition: entry.partition,
    offset: entry.offset.toString(),
    key: entry.key === null ? null : readable(entry.key),
    value: readable(entry.value),
    info: entry.info === null ? null : { ...entry.info, originOffset: entry.info.originOffset.toString() },
    ...(entry.foreignReason === undefined ? {} : { foreignReason: entry.foreignReason })
  }
}

function display(value: unknown): string {
  if (value instanceof Date) return value.toISOString()
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return value.toString()
  return JSON.stringify(value)
}

function oneLine(entry: DeadLetterEntry): string {
  const where = `${entry.partition}:${entry.offset}`
  if (!entry.info) return `${where}  foreign record (${entry.foreignReason ?? 'no Kafkit headers'})`
  const i = entry.info
  const message = i.errorMessage.length > 80 ? `${i.errorMessage.slice(0, 77)}...` : i.errorMessage
  return `${where}  ${i.deadLetteredAt.toISOString()}  ${i.originTopic}[${i.originPartition}]@${i.originOffset}  ${i.errorKind} ${i.errorClass} x${i.attempts}: ${message}`
}

export function dlqCommand(): Command {
  const dlq = new Command('dlq').description('inspect dead-letter topics')
  const brokersOption = () => new Option('--brokers <list>', 'bootstrap brokers (default: KAFKA_BROKERS)')

  dlq
    .command('list')
    .description('list dead-letter records with filters and counts per error')
    .argument('<topic>', 'the dead-letter topic')
    .addOption(brokersOption())
    .addOption(new Option('--kind <kind>', 'error kind').choices(['transient', 'permanent']))
    .option('--class <name>', 'error class, e.g. SyntaxError')
    .option('--origin <topic>', 'origin topic')
    .option('--key <key>', 'record key')
    .addOption(new Option('--since <time>', 'dead-lettered at or after (ISO 8601)').argParser(parseDate))
    .addOption(new Option('--until <time>', 'dead-lettered before (ISO 8601)').argParser(parseDate))
    .option('--json', 'print JSON', false)
    .action(
      async (
        topic: string,
        opts: {
          brokers?: string
          kind?: 'transient' | 'permanent'
          class?: string
          origin?: string
          key?: string
          since?: Date
          until?: Date
          json: boolean
        }
      ) => {
        const listing = await listDeadLetters({
          client: { bootstrapBrokers: brokersFrom(opts.brokers) },
          topic,
          filter: {
            ...(opts.kind === undefined ? {} : { errorKind: opts.kind }),
            ...(opts.class === undefined ? {} : { errorClass: opts.class }),
            ...(opts.origin === undefined ? {} : { originTopic: opts.origin }),
            ...(opts.key === undefined ? {} : { key: opts.key }),
            ...(opts.since === undefined ? {} : { since: opts.since }),
            ...(opts.until === undefined ? {} : { until: opts.until })
          },
          onProgress: scanned => {
            if (process.stderr.isTTY) process.stderr.write(`\rscanned ${scanned} records`)
          }
        })
        if (process.stderr.isTTY) process.stderr.write('\r\x1b[K')
        if (opts.json) {
          process.stdout.write(
            `${JSON.stringify({ scanned: listing.scanned, countsByError: listing.countsByError, records: listing.entries.map(toJson) }, null, 2)}\n`
          )
          return
        }
        for (const entry of listing.entries) process.stdout.write(`${oneLine(entry)}\n`)
        process.stdout.write(`\n${listing.entries.length} of ${listing.scanned} records match\n`)
        for (const c of listing.countsByError)
          process.stdout.write(`  ${String(c.count).padStart(7)}  ${c.kind} ${c.errorClass}\n`)
      }
    )

  dlq
    .command('show')
    .description('show one dead-letter record with its full metadata and a readable value')
    .argument('<topic>', 'the dead-letter topic')
    .argument('<position>', '<partition>:<offset>', parsePosition)
    .addOption(brokersOption())
    .option('--json', 'print JSON', false)
    .action(
      async (
        topic: string,
        position: { partition: number; offset: bigint },
        opts: { brokers?: string; json: boolean }
      ) => {
        const entry = await showDeadLetter({
          client: { bootstrapBrokers: brokersFrom(opts.brokers) },
          topic,
          ...position
        })
        if (!entry) {
          process.stderr.write(`kafkit: ${topic} has no record at ${position.partition}:${position.offset}\n`)
          process.exitCode = 1
          return
        }
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(toJson(entry), null, 2)}\n`)
          return
        }
        const json = toJson(entry)
        process.stdout.write(`record   ${topic} ${entry.partition}:${entry.offset}\nkey      ${String(json.key)}\n`)
        if (entry.info) {
          for (const [name, value] of Object.entries(entry.info)) {
            if (value !== undefined) process.stdout.write(`${name.padEnd(16)} ${display(value)}\n`)
          }
        } else {
          process.stdout.write(`foreign  ${entry.foreignReason ?? ''}\n`)
        }
        process.stdout.write(`value\n${String(json.value)}\n`)
      }
    )
  return dlq
}

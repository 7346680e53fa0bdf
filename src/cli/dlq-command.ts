/**
 * `kafkit dlq list|show|replay|purge`: look into a dead-letter topic, send its records back, delete
 * them, from a terminal (readable, progress on stderr) or a script (`--json`). Brokers come from
 * `--brokers` or KAFKA_BROKERS, else the local Kafka that `kafkit kafka start` runs. Reads a snapshot: records that arrive while a command runs are left for
 * the next one. `replay` and `purge` show what they would do with `--dry-run`, and otherwise ask for
 * confirmation on a terminal; without one they refuse unless `--yes` is given.
 */
import { createInterface } from 'node:readline/promises'
import { Command, InvalidArgumentError, Option } from 'commander'
import { SingleBar, Presets } from 'cli-progress'
import { ConfigError, KafkitError } from '../errors/kafkit-error.ts'
import {
  listDeadLetters,
  showDeadLetter,
  type DeadLetterEntry,
  type DeadLetterFilter
} from '../operations/dead-letter-inspector.ts'
import { purgeDeadLetters, type PurgePlan, type PurgeResult } from '../operations/dead-letter-purge.ts'
import {
  replayDeadLetters,
  replayOfValue,
  type ReplayItem,
  type ReplayPlanSummary,
  type ReplayResult
} from '../operations/dead-letter-replay.ts'

/** What `kafkit kafka start` runs when given no port: the brokers used when neither --brokers nor KAFKA_BROKERS says. */
export const LOCAL_KAFKA = '127.0.0.1:9092'

function brokersFrom(option: string | undefined): string[] {
  const value = option ?? (process.env.KAFKA_BROKERS || LOCAL_KAFKA)
  const brokers = value
    .split(',')
    .map(s => s.trim())
    .filter(Boolean)
  if (brokers.length === 0)
    throw new ConfigError('no brokers: pass --brokers host:port[,host:port] or set KAFKA_BROKERS')
  return brokers
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

function parseOffset(value: string): bigint {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected an offset (a whole number >= 0).')
  return BigInt(value)
}

function collectPartition(value: string, previous: number[] = []): number[] {
  const partitions = value.split(',').map(s => s.trim())
  for (const p of partitions) {
    if (!/^\d+$/.test(p)) throw new InvalidArgumentError('expected a partition number (or a comma-separated list).')
  }
  return [...previous, ...partitions.map(Number)]
}

/** `--before 42` (every partition) or `--before 0:42` (repeatable). */
function collectBefore(value: string, previous: (bigint | [number, bigint])[] = []): (bigint | [number, bigint])[] {
  const match = /^(?:(\d+):)?(\d+)$/.exec(value)
  if (!match?.[2]) throw new InvalidArgumentError('expected <offset> or <partition>:<offset>, e.g. 42 or 0:42.')
  const offset = BigInt(match[2])
  return [...previous, match[1] === undefined ? offset : [Number(match[1]), offset]]
}

/** What a command needing confirmation says when there is no terminal to ask on. */
export class ConfirmationRequiredError extends KafkitError {
  constructor(message: string) {
    super('KAFKIT_CONFIRMATION_REQUIRED', message)
  }
}

/** Refuses before any work when the command would have to ask and cannot. */
function requireConfirmable(command: string, opts: { yes: boolean; dryRun: boolean }): void {
  if (opts.yes || opts.dryRun || process.stdin.isTTY) return
  throw new ConfirmationRequiredError(
    `kafkit dlq ${command} changes the cluster and needs confirmation, but stdin is not a terminal: pass --yes to go ahead (or --dry-run to see what it would do)`
  )
}

/** Asks on the terminal; only "yes" goes ahead. */
async function askYes(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr })
  try {
    const answer = await rl.question(`${question} Type "yes" to continue: `)
    return answer.trim().toLowerCase() === 'yes'
  } finally {
    rl.close()
  }
}

interface FilterOpts {
  kind?: 'transient' | 'permanent'
  class?: string
  origin?: string
  key?: string
  since?: Date
  until?: Date
  group?: string
  partition?: number[]
  fromOffset?: bigint
  toOffset?: bigint
}

function addFilterOptions(command: Command, groupHelp: string): Command {
  return command
    .addOption(new Option('--kind <kind>', 'error kind').choices(['transient', 'permanent']))
    .option('--class <name>', 'error class, e.g. SyntaxError')
    .option('--origin <topic>', 'origin topic')
    .option('--key <key>', 'record key')
    .addOption(new Option('--since <time>', 'dead-lettered at or after (ISO 8601)').argParser(parseDate))
    .addOption(new Option('--until <time>', 'dead-lettered before (ISO 8601)').argParser(parseDate))
    .option('--group <group>', groupHelp)
    .addOption(
      new Option('--partition <n>', 'DLQ partition (repeatable, or a comma-separated list)').argParser(collectPartition)
    )
    .addOption(new Option('--from-offset <offset>', 'DLQ offsets from (inclusive)').argParser(parseOffset))
    .addOption(new Option('--to-offset <offset>', 'DLQ offsets up to (inclusive)').argParser(parseOffset))
}

function filterFrom(opts: FilterOpts, withGroup = true): DeadLetterFilter {
  return {
    ...(opts.kind === undefined ? {} : { errorKind: opts.kind }),
    ...(opts.class === undefined ? {} : { errorClass: opts.class }),
    ...(opts.origin === undefined ? {} : { originTopic: opts.origin }),
    ...(opts.key === undefined ? {} : { key: opts.key }),
    ...(opts.since === undefined ? {} : { since: opts.since }),
    ...(opts.until === undefined ? {} : { until: opts.until }),
    ...(opts.group === undefined || !withGroup ? {} : { groupId: opts.group }),
    ...(opts.partition === undefined ? {} : { partitions: opts.partition }),
    ...(opts.fromOffset === undefined ? {} : { fromOffset: opts.fromOffset }),
    ...(opts.toOffset === undefined ? {} : { toOffset: opts.toOffset })
  }
}

/** A progress bar on stderr when it is a terminal; a no-op otherwise (CI logs, pipes). */
function progressBar(): { update(done: number, total: number, label: string): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} }
  let bar: SingleBar | undefined
  return {
    update(done, total, label) {
      if (!bar) {
        bar = new SingleBar(
          { format: ' {label} [{bar}] {value}/{total}', hideCursor: true, stream: process.stderr },
          Presets.shades_classic
        )
        bar.start(total, done, { label })
      }
      bar.setTotal(total)
      bar.update(done, { label })
    },
    stop() {
      bar?.stop()
    }
  }
}

const MAX_LINES = 50

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

const brokersOption = () =>
  new Option(
    '--brokers <list>',
    `bootstrap brokers (default: KAFKA_BROKERS, else ${LOCAL_KAFKA}, the local Kafka of \`kafkit kafka start\`)`
  )

export function dlqCommand(): Command {
  return new Command('dlq')
    .description('inspect dead-letter topics')
    .addCommand(listCommand())
    .addCommand(showCommand())
    .addCommand(replayCommand())
    .addCommand(purgeCommand())
}

/** `kafkit dlq list`: records with filters, and counts per error. */
function listCommand(): Command {
  return addFilterOptions(
    new Command('list')
      .description('list dead-letter records with filters and counts per error')
      .argument('<topic>', 'the dead-letter topic')
      .addOption(brokersOption()),
    'dead-lettered by this consumer group'
  )
    .option('--json', 'print JSON', false)
    .action(async (topic: string, opts: FilterOpts & { brokers?: string; json: boolean }) => {
      const listing = await listDeadLetters({
        brokers: brokersFrom(opts.brokers),
        topic,
        filter: filterFrom(opts),
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
    })
}

/** `kafkit dlq show`: one record with its metadata and a readable value. */
function showCommand(): Command {
  return new Command('show')
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
          brokers: brokersFrom(opts.brokers),
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
}

/** `kafkit dlq replay`: publish dead letters again, once (the ledger). */
function replayCommand(): Command {
  return addFilterOptions(
    new Command('replay')
      .description(
        'publish dead-letter records again to their origin topic (or --to), once: a ledger skips records replayed before'
      )
      .argument('<topic>', 'the dead-letter topic')
      .addOption(brokersOption()),
    'only records dead-lettered by this consumer group; replayed records carry kafkit-replay-group so other groups skip them'
  )
    .option('--to <topic>', "publish to this topic instead of each record's origin topic")
    .option('--force', 'replay records the ledger says were replayed already', false)
    .option('--dry-run', 'show what would be replayed; publish nothing', false)
    .option('-y, --yes', 'do not ask for confirmation', false)
    .addOption(
      new Option('--batch-size <n>', 'records per transaction').default(200).argParser(value => {
        const n = Number(value)
        if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number >= 1.')
        return n
      })
    )
    .option('--json', 'print JSON', false)
    .action(
      async (
        topic: string,
        opts: FilterOpts & {
          brokers?: string
          to?: string
          force: boolean
          dryRun: boolean
          yes: boolean
          batchSize: number
          json: boolean
        }
      ) => {
        requireConfirmable('replay', opts)
        const bar = progressBar()
        let result: ReplayResult
        try {
          result = await replayDeadLetters({
            brokers: brokersFrom(opts.brokers),
            topic,
            filter: filterFrom(opts, false),
            ...(opts.group === undefined ? {} : { groupId: opts.group }),
            ...(opts.to === undefined ? {} : { to: opts.to }),
            force: opts.force,
            dryRun: opts.dryRun,
            batchSize: opts.batchSize,
            onProgress: progress => {
              if (progress.phase === 'replaying') bar.update(progress.done, progress.total ?? 0, 'replayed')
              else if (process.stderr.isTTY) process.stderr.write(`\rread ${progress.done} records`)
            },
            ...(opts.yes
              ? {}
              : {
                  confirm: async (plan: ReplayPlanSummary) => {
                    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K')
                    process.stderr.write(replayPlanText(plan))
                    return askYes(`Replay ${plan.toReplay} record(s)?`)
                  }
                })
          })
        } finally {
          bar.stop()
          if (process.stderr.isTTY) process.stderr.write('\r\x1b[K')
        }
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(replayJson(result), null, 2)}\n`)
        } else {
          process.stdout.write(replayResultText(result))
        }
        if (!result.confirmed) process.exitCode = 1
        else if (result.unreplayable > 0) process.exitCode = 2
      }
    )
}

/** `kafkit dlq purge`: delete records before an offset. */
function purgeCommand(): Command {
  return new Command('purge')
    .description("delete dead-letter records before an offset (the partition's earliest offset moves up)")
    .argument('<topic>', 'the dead-letter topic')
    .addOption(brokersOption())
    .addOption(
      new Option(
        '--before <[partition:]offset>',
        'delete records before this offset (exclusive): 42 in every partition (capped at its end), or 0:42 for one partition (repeatable)'
      ).argParser(collectBefore)
    )
    .option('--all', 'delete every record present now', false)
    .option('--no-ledger-check', 'do not count records that were never replayed (skips reading them)')
    .option('--dry-run', 'show what would be deleted; delete nothing', false)
    .option('-y, --yes', 'do not ask for confirmation', false)
    .option('--json', 'print JSON', false)
    .action(
      async (
        topic: string,
        opts: {
          brokers?: string
          before?: (bigint | [number, bigint])[]
          all: boolean
          ledgerCheck: boolean
          dryRun: boolean
          yes: boolean
          json: boolean
        }
      ) => {
        const before = purgeTarget(opts)
        requireConfirmable('purge', opts)
        const result = await purgeDeadLetters({
          brokers: brokersFrom(opts.brokers),
          topic,
          before,
          dryRun: opts.dryRun,
          checkLedger: opts.ledgerCheck,
          ...(opts.yes
            ? {}
            : {
                confirm: async (plan: PurgePlan) => {
                  process.stderr.write(purgePlanText(plan))
                  return askYes(`Delete ${plan.offsets} offset(s) of ${plan.topic}? This cannot be undone.`)
                }
              })
        })
        if (opts.json) process.stdout.write(`${JSON.stringify(purgeJson(result), null, 2)}\n`)
        else process.stdout.write(purgeResultText(result))
        if (!result.confirmed) process.exitCode = 1
      }
    )
}

function purgeTarget(opts: {
  before?: (bigint | [number, bigint])[]
  all: boolean
}): bigint | Map<number, bigint> | 'end' {
  const given = opts.before ?? []
  if (opts.all && given.length > 0) throw new ConfigError('pass either --all or --before, not both')
  if (opts.all) return 'end'
  if (given.length === 0) {
    throw new ConfigError('say what to delete: --before <offset>, --before <partition>:<offset> (repeatable) or --all')
  }
  const global = given.filter((b): b is bigint => typeof b === 'bigint')
  if (global.length > 0) {
    if (given.length > 1) {
      throw new ConfigError(
        '--before <offset> applies to every partition: do not combine it with other --before values'
      )
    }
    return global[0] as bigint
  }
  return new Map(given as [number, bigint][])
}

function itemLine(dlqTopic: string, item: ReplayItem): string {
  const where = `${item.entry.partition}:${item.entry.offset}`
  const key = item.entry.key === null ? '(null)' : readable(item.entry.key)
  const shortKey = key.length > 40 ? `${key.slice(0, 37)}...` : key
  const error = item.entry.info ? `${item.entry.info.errorKind} ${item.entry.info.errorClass}` : 'foreign'
  switch (item.status) {
    case 'replay':
      return `  ${where}  -> ${item.target}[${item.targetPartition}]  key ${shortKey}  ${error}${item.previous ? `  (replayed ${item.previous.count}x before, last ${item.previous.replayedAt})` : ''}`
    case 'already-replayed':
      return `  ${where}  replayed to ${item.previous?.target}[${item.previous?.targetPartition}] at ${item.previous?.replayedAt}${item.previous?.group ? ` for group ${item.previous.group}` : ''}`
    default:
      return `  ${where}  ${item.reason ?? ''}  (${replayOfValue(dlqTopic, item.entry.partition, item.entry.offset)})`
  }
}

function section(dlqTopic: string, title: string, items: ReplayItem[]): string {
  if (items.length === 0) return ''
  const lines = items.slice(0, MAX_LINES).map(i => itemLine(dlqTopic, i))
  if (items.length > MAX_LINES) lines.push(`  ... and ${items.length - MAX_LINES} more (--json lists all)`)
  return `${title} (${items.length}):\n${lines.join('\n')}\n`
}

function replayPlanText(plan: ReplayPlanSummary): string {
  const targets = plan.targets.map(t => `${t.topic} (${t.count})`).join(', ')
  return [
    `${plan.dlqTopic}: ${plan.selected} of ${plan.scanned} record(s) selected${plan.group ? ` (dead-lettered by group ${plan.group})` : ''}`,
    `  to replay: ${plan.toReplay}${targets ? ` -> ${targets}` : ''}${plan.force ? ' (--force: including records replayed before)' : ''}`,
    `  already replayed, skipped: ${plan.alreadyReplayed}`,
    `  cannot be replayed: ${plan.unreplayable}`,
    ''
  ].join('\n')
}

function replayResultText(result: ReplayResult): string {
  const byStatus = (status: ReplayItem['status']) => result.items.filter(i => i.status === status)
  let out = ''
  if (result.dryRun) out += 'dry run: nothing was published\n'
  out += replayPlanText(result)
  const title = result.dryRun ? 'would replay' : result.confirmed ? 'replayed' : 'not replayed'
  out += section(result.dlqTopic, title, byStatus('replay'))
  out += section(
    result.dlqTopic,
    'already replayed (skipped; --force replays them again)',
    byStatus('already-replayed')
  )
  out += section(result.dlqTopic, 'cannot be replayed', byStatus('unreplayable'))
  if (!result.dryRun) {
    out += result.confirmed
      ? `replayed ${result.replayed} record(s); ledger ${result.ledgerTopic}\n`
      : 'cancelled: nothing was published\n'
  }
  return out
}

function replayJson(result: ReplayResult): Record<string, unknown> {
  const { items, ...summary } = result
  return {
    ...summary,
    records: items.map(item => ({
      partition: item.entry.partition,
      offset: item.entry.offset.toString(),
      status: item.status,
      key: item.entry.key === null ? null : readable(item.entry.key),
      originTopic: item.entry.info?.originTopic ?? null,
      consumerGroup: item.entry.info?.consumerGroup ?? null,
      ...(item.target === undefined ? {} : { target: item.target, targetPartition: item.targetPartition }),
      ...(item.reason === undefined ? {} : { reason: item.reason }),
      ...(item.previous === undefined ? {} : { previous: item.previous })
    }))
  }
}

function purgePlanText(plan: PurgePlan): string {
  const lines = [`${plan.topic}: ${plan.offsets} offset(s) to delete in ${plan.partitions.length} partition(s)`]
  for (const p of plan.partitions) {
    lines.push(
      `  partition ${p.partition}: offsets ${p.earliest}..${p.before - 1n} of ${p.earliest}..${p.end - 1n} (${p.offsets})`
    )
  }
  if (plan.neverReplayed !== undefined) {
    lines.push(
      plan.neverReplayed > 0
        ? `  ${plan.neverReplayed} of the records to delete were never replayed (kafkit dlq replay --dry-run shows them)`
        : '  every record to delete was replayed before'
    )
  }
  return `${lines.join('\n')}\n`
}

function purgeResultText(result: PurgeResult): string {
  let out = result.dryRun ? 'dry run: nothing was deleted\n' : ''
  if (result.partitions.length === 0) return `${out}${result.topic}: nothing to delete\n`
  out += purgePlanText(result)
  if (result.purged) {
    out += `deleted; earliest offsets now ${result.partitions.map(p => `${p.partition}:${p.earliestAfter ?? '?'}`).join(', ')}\n`
  } else if (!result.dryRun && !result.confirmed) {
    out += 'cancelled: nothing was deleted\n'
  }
  return out
}

function purgeJson(result: PurgeResult): Record<string, unknown> {
  return {
    ...result,
    offsets: result.offsets.toString(),
    partitions: result.partitions.map(p => ({
      partition: p.partition,
      earliest: p.earliest.toString(),
      end: p.end.toString(),
      before: p.before.toString(),
      offsets: p.offsets.toString(),
      ...(p.earliestAfter === undefined ? {} : { earliestAfter: p.earliestAfter.toString() })
    }))
  }
}

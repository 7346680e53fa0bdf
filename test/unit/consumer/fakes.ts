/** Shared fakes of the consumer parts' unit tests: records, partitions, a logger, turns of the event loop. */
import { mock } from 'node:test'
import type { HandlingLogger } from '../../../src/handling/logger.ts'
import type { RawRecord } from '../../../src/consumer/decode.ts'
import type { OrderingMode } from '../../../src/consumer/partition-queue.ts'
import { PartitionState } from '../../../src/consumer/partition-state.ts'

export function record(
  partition: number,
  offset: number,
  options: { topic?: string; key?: string | undefined; value?: Buffer | null; headers?: [string, string][] } = {}
): RawRecord {
  const headerEntries = (options.headers ?? []).map(([name, value]) => [Buffer.from(name), Buffer.from(value)])
  return {
    topic: options.topic ?? 't',
    partition,
    offset: BigInt(offset),
    leaderEpoch: 0,
    timestamp: 1_764_000_000_000n,
    key: options.key === undefined ? undefined : Buffer.from(options.key),
    value: options.value === undefined ? Buffer.from(JSON.stringify({ offset })) : options.value,
    headers: new Map(headerEntries as [Buffer, Buffer][]),
    headerEntries,
    metadata: {}
  } as unknown as RawRecord
}

/** A partition state with `count` records from offset 0, tracked and queued as the consumer takes them in. */
export function partition(
  number: number,
  count: number,
  options: { mode?: OrderingMode; topic?: string; keys?: (i: number) => string } = {}
): PartitionState {
  const state = new PartitionState(options.topic ?? 't', number, options.mode ?? 'partition', 'g')
  for (let i = 0; i < count; i++) take(state, record(number, i, { topic: state.topic, key: options.keys?.(i) }))
  return state
}

/** Takes a record in like the consumer's #accept: tracked, queued. */
export function take(state: PartitionState, raw: RawRecord): void {
  state.highest = raw.offset
  state.tracker.track(raw.offset, raw.leaderEpoch)
  state.queue.push(raw)
}

export function partitions(...states: PartitionState[]): Map<string, PartitionState> {
  return new Map(states.map(state => [state.id, state]))
}

export interface LogLine {
  level: string
  fields: object
  message: string
}

/** A logger that keeps what it was told. */
export function recordingLogger(): { logger: HandlingLogger; lines: LogLine[] } {
  const lines: LogLine[] = []
  const at = (level: string) => (fields: object, message: string) => lines.push({ level, fields, message })
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines }
}

/** Lets pending promise callbacks and I/O callbacks run (setImmediate is never faked here). */
export async function turns(count = 5): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise(resolve => setImmediate(resolve))
}

/** Fakes setTimeout, setInterval and Date (from 0) for the test; restored after it. */
export function fakeClock(t: { after: (fn: () => void) => void }): typeof mock.timers {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 0 })
  t.after(() => mock.timers.reset())
  return mock.timers
}

/** Records and batches for the tests of the producer's parts. */
import type { OutgoingMessage } from '../../../src/message/builder.ts'
import { PendingRecord, SETTLED, type Batch } from '../../../src/producer/record.ts'
import type { SendResult } from '../../../src/producer/types.ts'

export interface RecordSpec {
  topic?: string
  /** An explicit partition (the message's); also set as the record's. */
  partition?: number
  size?: number
  /** When it was sent (the clock the part under test reads). */
  at?: number
  key?: Buffer
  value?: Buffer | null
  headers?: Map<Buffer, Buffer>
  eventId?: string
}

export function pendingRecord(spec: RecordSpec = {}): PendingRecord {
  const topic = spec.topic ?? 't'
  const message: OutgoingMessage<unknown> = { topic, value: 'v', partition: spec.partition }
  const record = new PendingRecord(
    message,
    topic,
    spec.key,
    spec.value === undefined ? Buffer.from('v') : spec.value,
    spec.headers,
    undefined,
    spec.size ?? 100,
    spec.eventId,
    spec.at ?? 0
  )
  if (spec.partition !== undefined) record.partition = spec.partition
  return record
}

/** A record whose outcome lands in `outcome` (its promise is awaited by nobody else). */
export function watchedRecord(spec: RecordSpec = {}): {
  record: PendingRecord
  outcome: { result?: SendResult; error?: Error }
} {
  const record = pendingRecord(spec)
  const outcome: { result?: SendResult; error?: Error } = {}
  record.promise().then(
    result => (outcome.result = result),
    (error: Error) => (outcome.error = error)
  )
  return { record, outcome }
}

export function batchOf(records: PendingRecord[], extra: Partial<Batch> = {}): Batch {
  const first = records[0]
  const single = records.every(r => r.topic === first?.topic && r.partition === first.partition)
  return {
    id: 1,
    records,
    bytes: records.reduce((sum, r) => sum + r.size, 0),
    tx: undefined,
    due: false,
    single,
    exclusive: false,
    ...extra
  }
}

/** A stand-in for the delivery tracker's fail(): settles the record and keeps the error. */
export class FailLog {
  readonly failures: { record: PendingRecord; error: Error }[] = []
  settledWakeups = 0

  fail(record: PendingRecord, error: Error): void {
    if (record.state === SETTLED) return
    record.state = SETTLED
    record.error = error
    this.failures.push({ record, error })
  }

  notifySettled(): void {
    this.settledWakeups++
  }

  codes(): string[] {
    return this.failures.map(f => (f.error as { code?: string }).code ?? f.error.message)
  }
}

/** Lets promise callbacks queued so far run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve()
}

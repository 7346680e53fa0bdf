/**
 * Dead-letter records that say why (watermill's poison queue): the original key, value and headers,
 * byte for byte, plus `kafkit-dlq-*` headers naming where the message came from (topic, partition,
 * offset, timestamp, consumer group) and how it failed (error kind, class, code, message, a bounded
 * stack, attempts, first and last failure). `parseDeadLetterHeaders` reads those headers back into a
 * typed `DeadLetterInfo` (the DLQ tooling uses it), and `originalHeaders` strips them again for replay.
 * All header values are UTF-8 text; times are ISO 8601 in UTC; the offset is a decimal string.
 */
import { errorClassOf, errorCodeOf, errorMessageOf, truncate } from './error-text.ts'
import { KafkitError, type KafkitErrorOptions } from '../errors/kafkit-error.ts'
import type { FailureRecord } from './handler-executor.ts'
import type { ConsumedMessage } from './types.ts'
import { DEAD_LETTER_FORMAT_VERSION, DEAD_LETTER_HEADER_PREFIX, DeadLetterHeader } from '../message/wire-format.ts'

export { DEAD_LETTER_FORMAT_VERSION, DEAD_LETTER_HEADER_PREFIX, DeadLetterHeader }

/** A dead-letter record as read back from its headers. */
export interface DeadLetterInfo {
  version: number
  originTopic: string
  originPartition: number
  originOffset: bigint
  originTimestamp: Date | undefined
  consumerGroup: string
  errorKind: 'transient' | 'permanent'
  errorClass: string
  errorCode: string | undefined
  errorMessage: string
  errorStack: string | undefined
  attempts: number
  firstFailureAt: Date
  lastFailureAt: Date
  deadLetteredAt: Date
}

/** The record to produce to the DLQ topic. Header names are strings, values UTF-8 or original bytes. */
export interface DeadLetterRecord {
  topic: string
  key: Buffer | null
  value: Buffer | null
  /** The headers by name (for a repeated original header, the last one). */
  headers: Map<string, Buffer>
  /** The headers as produced: the original ones in order, repeats included, then Kafkit's. */
  headerEntries: [string, Buffer][]
}

export interface DeadLetterBuildOptions {
  topic: string
  groupId: string
  /** Default 1024 characters. */
  maxErrorMessageLength?: number
  /** Default 4096 characters; 0 leaves the stack out. */
  maxStackLength?: number
  /** When the record is built (default now). */
  now?: number
}

/** A record does not carry valid Kafkit dead-letter headers. */
export class DeadLetterRecordError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_DLQ_RECORD_INVALID', message, options)
  }
}

const text = (value: string) => Buffer.from(value, 'utf8')

/** Builds the DLQ record for a failed message; the original bytes are kept as they came. */
export function buildDeadLetterRecord(
  message: ConsumedMessage<unknown, unknown>,
  failure: FailureRecord,
  options: DeadLetterBuildOptions
): DeadLetterRecord {
  const headers = new Map<string, Buffer>()
  const headerEntries: [string, Buffer][] = []
  for (const [name, value] of message.headerEntries ?? message.headers) {
    // A replayed record that failed again: its old Kafkit headers are replaced by the new ones.
    if (name.startsWith(DEAD_LETTER_HEADER_PREFIX)) continue
    headers.set(name, value)
    headerEntries.push([name, value])
  }
  const set = (name: string, value: string | undefined) => {
    if (value === undefined) return
    headers.set(name, text(value))
    headerEntries.push([name, text(value)])
  }
  const { error } = failure
  set(DeadLetterHeader.version, String(DEAD_LETTER_FORMAT_VERSION))
  set(DeadLetterHeader.originTopic, message.topic)
  set(DeadLetterHeader.originPartition, String(message.partition))
  set(DeadLetterHeader.originOffset, message.offset.toString())
  set(
    DeadLetterHeader.originTimestamp,
    Number.isNaN(message.timestamp.getTime()) ? undefined : message.timestamp.toISOString()
  )
  set(DeadLetterHeader.consumerGroup, options.groupId)
  set(DeadLetterHeader.errorKind, failure.reason)
  set(DeadLetterHeader.errorClass, errorClassOf(error))
  set(DeadLetterHeader.errorCode, errorCodeOf(error))
  set(DeadLetterHeader.errorMessage, truncate(errorMessageOf(error), options.maxErrorMessageLength ?? 1024))
  const maxStack = options.maxStackLength ?? 4096
  if (maxStack > 0 && error instanceof Error && error.stack) {
    set(DeadLetterHeader.errorStack, truncate(error.stack, maxStack))
  }
  set(DeadLetterHeader.attempts, String(failure.attempts))
  set(DeadLetterHeader.firstFailureAt, failure.firstFailureAt.toISOString())
  set(DeadLetterHeader.lastFailureAt, failure.lastFailureAt.toISOString())
  set(DeadLetterHeader.deadLetteredAt, new Date(options.now ?? Date.now()).toISOString())
  return { topic: options.topic, key: message.raw.key, value: message.raw.value, headers, headerEntries }
}

type HeaderSource =
  | ReadonlyMap<string | Buffer, string | Buffer>
  | Map<Buffer, Buffer>
  | Map<string, Buffer>
  | Readonly<Record<string, string | Buffer>>
  | Iterable<readonly [string | Buffer, string | Buffer]>

/** Headers as name → UTF-8 text, whatever form the client gave them in (Buffer or string names). */
function headerTexts(headers: HeaderSource): Map<string, string> {
  const out = new Map<string, string>()
  const entries: Iterable<readonly [string | Buffer, string | Buffer]> =
    Symbol.iterator in headers
      ? (headers as Iterable<readonly [string | Buffer, string | Buffer]>)
      : Object.entries(headers as Record<string, string | Buffer>)
  for (const [name, value] of entries) out.set(name.toString(), value.toString())
  return out
}

/** True when the headers carry Kafkit's dead-letter headers. */
export function isDeadLetterRecord(headers: HeaderSource): boolean {
  return headerTexts(headers).has(DeadLetterHeader.originTopic)
}

/** Reads the `kafkit-dlq-*` headers; throws DeadLetterRecordError naming the first missing or bad one. */
export function parseDeadLetterHeaders(headers: HeaderSource): DeadLetterInfo {
  const texts = headerTexts(headers)
  const required = (name: string): string => {
    const value = texts.get(name)
    if (value === undefined) {
      throw new DeadLetterRecordError(`not a Kafkit dead-letter record: header ${name} is missing`, {
        details: { header: name }
      })
    }
    return value
  }
  const bad = (name: string, value: string, expected: string) =>
    new DeadLetterRecordError(`dead-letter header ${name} is ${JSON.stringify(value)}, expected ${expected}`, {
      details: { header: name, value }
    })
  const integer = (name: string): number => {
    const value = required(name)
    if (!/^\d+$/.test(value)) throw bad(name, value, 'a whole number')
    return Number(value)
  }
  const date = (name: string, value = required(name)): Date => {
    const parsed = new Date(value)
    if (Number.isNaN(parsed.getTime())) throw bad(name, value, 'an ISO 8601 time')
    return parsed
  }
  const offsetText = required(DeadLetterHeader.originOffset)
  if (!/^\d+$/.test(offsetText)) throw bad(DeadLetterHeader.originOffset, offsetText, 'a whole number')
  const kind = required(DeadLetterHeader.errorKind)
  if (kind !== 'transient' && kind !== 'permanent')
    throw bad(DeadLetterHeader.errorKind, kind, 'transient or permanent')
  const originTimestamp = texts.get(DeadLetterHeader.originTimestamp)
  return {
    version: texts.has(DeadLetterHeader.version) ? integer(DeadLetterHeader.version) : DEAD_LETTER_FORMAT_VERSION,
    originTopic: required(DeadLetterHeader.originTopic),
    originPartition: integer(DeadLetterHeader.originPartition),
    originOffset: BigInt(offsetText),
    originTimestamp:
      originTimestamp === undefined ? undefined : date(DeadLetterHeader.originTimestamp, originTimestamp),
    consumerGroup: required(DeadLetterHeader.consumerGroup),
    errorKind: kind,
    errorClass: required(DeadLetterHeader.errorClass),
    errorCode: texts.get(DeadLetterHeader.errorCode),
    errorMessage: required(DeadLetterHeader.errorMessage),
    errorStack: texts.get(DeadLetterHeader.errorStack),
    attempts: integer(DeadLetterHeader.attempts),
    firstFailureAt: date(DeadLetterHeader.firstFailureAt),
    lastFailureAt: date(DeadLetterHeader.lastFailureAt),
    deadLetteredAt: date(DeadLetterHeader.deadLetteredAt)
  }
}

/**
 * The record's headers without Kafkit's dead-letter ones, in order with repeated names kept (pass the
 * client's `headerEntries` to keep repeats): what a replay sends back to the origin topic.
 */
export function originalHeaderEntries(headers: HeaderSource): [string, Buffer][] {
  const out: [string, Buffer][] = []
  const entries: Iterable<readonly [string | Buffer, string | Buffer]> =
    Symbol.iterator in headers
      ? (headers as Iterable<readonly [string | Buffer, string | Buffer]>)
      : Object.entries(headers as Record<string, string | Buffer>)
  for (const [name, value] of entries) {
    const key = name.toString()
    if (!key.startsWith(DEAD_LETTER_HEADER_PREFIX)) out.push([key, Buffer.isBuffer(value) ? value : text(value)])
  }
  return out
}

/** `originalHeaderEntries` by name (the last of a repeated name). */
export function originalHeaders(headers: HeaderSource): Map<string, Buffer> {
  return new Map(originalHeaderEntries(headers))
}

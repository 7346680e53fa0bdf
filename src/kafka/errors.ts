/**
 * The one place that reads @platformatic/kafka's errors. The client nests them (a retried request's
 * attempts in MultipleErrors, a broker's per-partition answers as ProtocolErrors inside a
 * ResponseError) and marks them with flags (`canRetry`, `hasStaleMetadata`, `needsRejoin`, `apiId`);
 * Kafkit asks these questions of them and of nothing else:
 * - retriable: the cluster was unreachable or unhealthy, not the request wrong (`isRetriable`);
 * - the partition's leader moved, or a broker could not be reached (`leaderMovedOrUnreachable`);
 * - the group lost this member (`isMembershipLost`, `needsRejoin`);
 * - a topic or partition that does not exist (`isUnknownTopic`), a record too large (`isTooLarge`);
 * - what to log (`describeKafkaError`), and whether a broker error name appears anywhere (`mentions`).
 */
import { findErrorBy } from '@platformatic/kafka'

function has(error: unknown, property: string, value: unknown): boolean {
  return findErrorBy(error as Error, property, value) !== null
}

/** True for a broker-size rejection: the batch (or one record in it) is over the broker's limit. */
export function isTooLarge(error: unknown): boolean {
  return (
    findErrorBy(error as Error, 'apiId', 'MESSAGE_TOO_LARGE') !== null ||
    findErrorBy(error as Error, 'apiId', 'RECORD_LIST_TOO_LARGE') !== null
  )
}

/**
 * True when the failure says the cluster was unreachable or unhealthy (lost connection, timeout,
 * leader moving, not enough replicas) rather than that this message is wrong: such failures count
 * for the circuit breaker, and a message that met one after its retries may go to the DLQ.
 */
export function isRetriable(error: unknown): boolean {
  // A closed client or connection pool never reopens (the client marks these `closed`, canRetry false).
  if (has(error, 'closed', true)) return false
  if (has(error, 'code', 'PLT_KFK_NETWORK')) return true
  if (typeof error !== 'object' || error === null) return false
  // Every error in the chain retriable: what Kafka marks retriable (and @platformatic/kafka retried).
  return !has(error, 'canRetry', false) && has(error, 'canRetry', true)
}

/** The partition's leader moved (stale metadata) or a broker could not be reached: read the metadata afresh. */
export function leaderMovedOrUnreachable(error: unknown): boolean {
  return has(error, 'hasStaleMetadata', true) || has(error, 'code', 'PLT_KFK_NETWORK')
}

/** A topic or partition the cluster does not have. */
export function isUnknownTopic(error: unknown): boolean {
  return has(error, 'apiId', 'UNKNOWN_TOPIC_OR_PARTITION')
}

/** The group refused the request for its generation or membership: the client rejoins. */
export function needsRejoin(error: unknown): boolean {
  return has(error, 'needsRejoin', true)
}

const MEMBERSHIP_LOST = ['FENCED_MEMBER_EPOCH', 'STALE_MEMBER_EPOCH', 'UNKNOWN_MEMBER_ID']

/** The group no longer knows this member (or its epoch): the client's next heartbeat or join fixes it. */
export function isMembershipLost(error: unknown): boolean {
  return needsRejoin(error) || MEMBERSHIP_LOST.some(id => has(error, 'apiId', id))
}

/** The client's error with the broker's error names inside it (ResponseError holds ProtocolErrors). */
export function describeKafkaError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  const inner = (error as { errors?: unknown[] } | undefined)?.errors
  if (!Array.isArray(inner) || inner.length === 0) return message
  const names = new Set(inner.map(e => (e as { apiId?: string; message?: string }).apiId ?? String(e)))
  return `${message}: ${[...names].join(', ')}`
}

/** Whether an error (or one inside it: the client nests the broker's errors) names `what`. */
export function mentions(error: unknown, what: string, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 4) return false
  const { message, apiId, code, errors, cause } = error as Record<string, unknown>
  if ([message, apiId, code].some(value => typeof value === 'string' && value.includes(what))) return true
  const inner: unknown[] = Array.isArray(errors) ? (errors as unknown[]) : []
  return [...inner, cause].some(child => mentions(child, what, depth + 1))
}

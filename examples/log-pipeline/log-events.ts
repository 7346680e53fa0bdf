/**
 * Seed 000's log events, generated deterministically from an index: services, environments, levels,
 * trace and user ids, a stack trace on errors. Every `badEvery`-th event is malformed in one of four
 * ways a real producer gets wrong (not JSON, no log_id, an unknown level, bytes that are not UTF-8), so
 * the pipeline's dead-letter path has work to do.
 */
export interface LogEvent {
  log_id: string
  timestamp: string
  service: string
  environment: string
  level: string
  message: string
  trace_id?: string
  user_id?: string
  request_id?: string
  stack_trace?: string
}

const services = ['api-gateway', 'auth', 'billing', 'search', 'checkout', 'notifications']
const levels = ['debug', 'info', 'info', 'info', 'info', 'warn', 'error']

export function generateLogEvent(
  runId: string,
  i: number,
  badEvery: number
): { key: string; value: Buffer; malformed: boolean } {
  const service = services[i % services.length] ?? 'api-gateway'
  const level = levels[(i * 7) % levels.length] ?? 'info'
  const event: LogEvent = {
    log_id: `${runId}-${i}`,
    timestamp: new Date(Date.now() - (i % 60_000)).toISOString(),
    service,
    environment: i % 20 === 0 ? 'staging' : 'production',
    level,
    message: `${service} handled request ${i} in ${(i * 37) % 900} ms`,
    trace_id: `trace-${((i * 2654435761) >>> 0).toString(16)}`,
    user_id: `user-${i % 5000}`,
    request_id: `req-${runId}-${i}`,
    ...(level === 'error' ? { stack_trace: `Error: upstream timeout\n    at call (${service}/client.ts:42:11)` } : {})
  }
  if (badEvery > 0 && i % badEvery === badEvery - 1) {
    const kind = Math.floor(i / badEvery) % 4
    const value =
      kind === 0
        ? Buffer.from(`{"log_id": "${event.log_id}", truncated`)
        : kind === 1
          ? Buffer.from(JSON.stringify({ ...event, log_id: undefined }))
          : kind === 2
            ? Buffer.from(JSON.stringify({ ...event, level: 'LOUD' }))
            : Buffer.concat([Buffer.from('{"log_id":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')])
    return { key: service, value, malformed: true }
  }
  return { key: service, value: Buffer.from(JSON.stringify(event)), malformed: false }
}

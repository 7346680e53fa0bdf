/**
 * Topic names: what Kafka accepts (hard errors) and the naming convention
 * `<domain>.<entity>.<event-type>` (advice). Derived topics keep their base's name and add a suffix
 * (`.retry.<delay>`, `.dlq`), so `todos.task.events.retry.5m` follows the convention when its base does.
 */

/** Kafka's own limit and alphabet (kafka.common.internals.Topic). */
const KAFKA_LEGAL = /^[a-zA-Z0-9._-]{1,249}$/
const SEGMENT = /^[a-z0-9]+(?:[-_][a-z0-9]+)*$/
const DERIVED_SUFFIX = /\.(?:retry\.[0-9a-z]+|dlq)$/

export interface TopicNameCheck {
  /** Kafka would accept the name. */
  legal: boolean
  /** The name follows `<domain>.<entity>.<event-type>` (lower-case segments, `-`/`_` inside a segment). */
  conventional: boolean
  /** Why the name is illegal or unconventional, in words a user can act on. */
  problems: string[]
}

export function checkTopicName(name: string): TopicNameCheck {
  const problems: string[] = []
  const legal = KAFKA_LEGAL.test(name) && name !== '.' && name !== '..'
  if (!legal) {
    problems.push(
      `"${name}" is not a legal Kafka topic name: use 1-249 characters from a-z, A-Z, 0-9, ".", "_" and "-"`
    )
  }
  const base = name.replace(DERIVED_SUFFIX, '')
  const segments = base.split('.')
  let conventional = legal
  if (segments.length !== 3) {
    conventional = false
    problems.push(
      `"${base}" has ${segments.length} dot-separated segment(s); the convention is <domain>.<entity>.<event-type>, e.g. todos.task.created`
    )
  } else if (!segments.every(s => SEGMENT.test(s))) {
    conventional = false
    problems.push(`"${base}": each segment should be lower-case letters and digits, with "-" or "_" inside a word`)
  }
  if (legal && name.includes('.') && name.includes('_')) {
    problems.push(`"${name}" mixes "." and "_": Kafka's metrics names collide for such topics`)
  }
  return { legal, conventional, problems }
}

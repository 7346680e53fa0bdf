/**
 * Every error Kafkit raises carries one of these stable codes. The map's values are the one-line
 * meanings published in docs/errors.md; a unit test keeps that page and this list in step, so a code
 * added here without documentation (or documented but gone) fails the build.
 */
export const errorCodes = {
  KAFKIT_CONFIG_INVALID: 'A configuration value is missing, of the wrong type, out of range or not a known key.',
  KAFKIT_LOCAL_KAFKA_JAVA_MISSING: 'The local Kafka launcher needs `java` (JDK 17+) on the PATH and found none.',
  KAFKIT_LOCAL_KAFKA_MAVEN_MISSING:
    'The local Kafka launcher needs `mvn` on the PATH to assemble Kafka and found none.',
  KAFKIT_LOCAL_KAFKA_DOWNLOAD_FAILED: 'Assembling Apache Kafka from Maven Central failed (network, proxy or disk).',
  KAFKIT_LOCAL_KAFKA_PORT_TAKEN: 'A port the local Kafka needs is already used by another process.',
  KAFKIT_LOCAL_KAFKA_START_FAILED: 'A local Kafka node exited or did not become ready in time; its log file says why.',
  KAFKIT_TOPIC_CONFLICT:
    'A topic exists in a form its spec cannot be applied to (fewer partitions, other replication factor, illegal name).',
  KAFKIT_LOCAL_KAFKA_NOT_RUNNING: 'An operation needs a running local Kafka node and there is none.'
} as const

export type ErrorCode = keyof typeof errorCodes

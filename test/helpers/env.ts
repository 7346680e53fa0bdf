/** What integration tests connect to: the run's Kafka (see global-setup.ts) and PostgreSQL. */
export function bootstrapServers(): string[] {
  const value = process.env.KAFKA_BROKERS
  if (!value) {
    throw new Error(
      'KAFKA_BROKERS is not set: run integration tests through `npm test` (its global setup starts Kafka)'
    )
  }
  return value.split(',').map(s => s.trim())
}

export function databaseUrl(): string {
  return process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
}

/**
 * `kafkit/testing`: a real local Kafka for users' own tests (no Docker, no mock broker) and small
 * helpers that give each test its own topic and consumer group.
 */
export {
  startKafka,
  stopKafka,
  kafkaStatus,
  stopNode,
  pauseNode,
  restartNodes,
  useKafka,
  type KafkaLease,
  type LocalKafkaOptions,
  type LocalKafkaCluster,
  type LocalKafkaNode,
  type LocalKafkaStatus
} from './local-kafka.ts'
export { ensureKafkaDistribution, KAFKA_VERSION, type KafkaDistribution } from './kafka-distribution.ts'
export { uniqueName, createTestTopic, type TestTopicOptions } from './topics.ts'
export { LocalKafkaError } from '../errors/kafkit-error.ts'

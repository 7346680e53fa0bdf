/**
 * The Kafka client Kafkit is built on (@platformatic/kafka): the classes, enums and types Kafkit uses,
 * under the names Kafkit gives them. Everything outside src/kafka/ reaches the client through here, so
 * upgrading or replacing it touches one folder.
 */
export {
  Admin,
  ConfigResourceTypes,
  Consumer as ClientConsumer,
  FetchIsolationLevels,
  IncrementalAlterConfigOperationTypes,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  Producer as ClientProducer
} from '@platformatic/kafka'
export type {
  BaseOptions,
  ConsumeOptions,
  ConsumerOptions as ClientConsumerOptions,
  Message,
  MessageToProduce,
  MessagesStream,
  ProduceResult
} from '@platformatic/kafka'

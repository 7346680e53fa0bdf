/** Restarts a local cluster's stopped nodes, trying again while a killed node's port is still taken. */
import { isKafkitError } from '../../src/errors/kafkit-error.ts'
import { restartNodes, type LocalKafkaCluster } from '../../src/testing/local-kafka.ts'

export async function restartWhenPortFree(cluster: LocalKafkaCluster): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await restartNodes(cluster)
      return
    } catch (error) {
      if (!isKafkitError(error) || error.code !== 'KAFKIT_LOCAL_KAFKA_PORT_TAKEN' || attempt >= 60) throw error
      await new Promise(resolve => setTimeout(resolve, 500))
    }
  }
}

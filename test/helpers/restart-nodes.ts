/** Restarts a local cluster's stopped nodes, trying again while a killed node's port is still taken. */
import { isKafkitError } from '../../src/errors/kafkit-error.ts'
import { restartNodes, type LocalKafkaCluster } from '../../src/testing/local-kafka.ts'
import { eventually } from './wait.ts'

export async function restartWhenPortFree(cluster: LocalKafkaCluster): Promise<void> {
  // Polled every 500 ms for 30 s; when the port is still taken then, that error is the answer.
  let portTaken: unknown
  const restarted = await eventually(
    async () => {
      try {
        await restartNodes(cluster)
        return true
      } catch (error) {
        if (!isKafkitError(error) || error.code !== 'KAFKIT_LOCAL_KAFKA_PORT_TAKEN') throw error
        portTaken = error
        return false
      }
    },
    30_000,
    500
  )
  if (!restarted) throw portTaken
}

/**
 * Client ports of the clusters tests start for themselves (node n listens on `port + 10 * (n - 1)`, its
 * controller one above). All sit below 32768, the start of Linux's ephemeral range
 * (`/proc/sys/net/ipv4/ip_local_port_range`): a port inside it can be held at any moment by the local
 * end of some outgoing connection, and a CI run once failed with KAFKIT_LOCAL_KAFKA_PORT_TAKEN that way.
 * Each cluster gets a block of 100 so no two overlap, and none meets the run's shared broker (29092).
 */
export const TEST_PORTS = {
  /** The shared broker of a whole run when KAFKA_BROKERS is not set (test/helpers/global-setup.ts). */
  shared: 29092,
  leaderFailover: 23092,
  producerLeaderKill: 23192,
  producerBrokerRestart: 23292,
  consumerCoordinatorKill: 23392,
  consumerBrokerRestart: 23492,
  launcherNotReady: 23592,
  outboxKafkaOutage: 23792,
  /** Never bound: the launcher fails before it starts Java. */
  launcherMissingTools: 23692
} as const

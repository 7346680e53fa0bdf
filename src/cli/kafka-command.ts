/** `kafkit kafka start|stop|status`: the local Apache Kafka used by the demo and the tests. */
import { Command, InvalidArgumentError, Option } from 'commander'
import { kafkaStatus, startKafka, stopKafka } from '../testing/local-kafka.ts'

function parsePort(value: string): number {
  const port = Number(value)
  if (!Number.isInteger(port) || port < 1024 || port > 65000) {
    throw new InvalidArgumentError('expected a whole number from 1024 to 65000.')
  }
  return port
}

const portOption = () => new Option('--port <port>', 'client port of node 1').default(9092).argParser(parsePort)

export function kafkaCommand(): Command {
  const kafka = new Command('kafka').description('run a real Apache Kafka (KRaft) on 127.0.0.1, no Docker')

  kafka
    .command('start')
    .description('start the local Kafka (downloads it once with mvn); prints its brokers (host:port)')
    .addOption(new Option('--nodes <count>', 'number of nodes').choices(['1', '3']).default('1'))
    .addOption(portOption())
    .option('--fresh', 'delete the data of an earlier run first', false)
    .action(async (opts: { nodes: '1' | '3'; port: number; fresh: boolean }) => {
      const cluster = await startKafka({
        nodes: opts.nodes === '3' ? 3 : 1,
        port: opts.port,
        fresh: opts.fresh,
        log: line => process.stderr.write(`${line}\n`)
      })
      process.stdout.write(`${cluster.brokers.join(',')}\n`)
    })

  kafka
    .command('stop')
    .description('stop the local Kafka by its recorded PIDs (data is kept; --fresh on start removes it)')
    .addOption(portOption())
    .action(async (opts: { port: number }) => {
      await stopKafka({ port: opts.port })
      process.stderr.write(`stopped the local Kafka on port ${opts.port}\n`)
    })

  kafka
    .command('status')
    .description('show the nodes of the local Kafka and whether they run')
    .addOption(portOption())
    .option('--json', 'print JSON', false)
    .action(async (opts: { port: number; json: boolean }) => {
      const status = await kafkaStatus({ port: opts.port })
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(status, null, 2)}\n`)
      } else if (!status) {
        process.stdout.write(`no local Kafka was started on port ${opts.port}\n`)
      } else {
        for (const node of status.nodes) {
          const state = node.running ? `running (pid ${String(node.pid)})` : 'stopped'
          process.stdout.write(`node ${node.nodeId}  127.0.0.1:${node.port}  ${state}  log ${node.logFile}\n`)
        }
      }
      if (!status?.nodes.every(n => n.running)) process.exitCode = 3
    })
  return kafka
}

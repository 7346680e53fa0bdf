/**
 * The `kafkit` command line. Each command group lives in its own module; this file wires them into
 * commander and turns Kafkit errors into one readable line and exit code 1.
 */
import { Command } from 'commander'
import { isKafkitError } from '../errors/kafkit-error.ts'
import { dlqCommand } from './dlq-command.ts'
import { kafkaCommand } from './kafka-command.ts'

const program = new Command('kafkit')
  .description('Reliable Kafka pipelines and event-driven services for Node.js')
  .showHelpAfterError()
program.addCommand(kafkaCommand())
program.addCommand(dlqCommand())

try {
  await program.parseAsync(process.argv)
} catch (error) {
  if (isKafkitError(error)) {
    process.stderr.write(`kafkit: ${error.message} [${error.code}]\n`)
  } else {
    process.stderr.write(`kafkit: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  }
  process.exitCode = 1
}

/**
 * Kafka's own Java command-line clients as independent witnesses in the producer tests: the console
 * producer (its default partitioner is the reference for key hashing) and the console consumer
 * (its read_committed filtering is the reference for transaction visibility). They run from the jars
 * the local Kafka launcher already downloaded (ensureKafkaDistribution).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureKafkaDistribution } from '../../../src/testing/kafka-distribution.ts'

// The tools print records on stdout, so their logs (warnings only) go to stderr.
const LOG4J2 = `status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = err
`

async function runJava(mainClass: string, args: string[], stdin: string | undefined): Promise<string> {
  const dist = await ensureKafkaDistribution()
  const log4jConfig = join(tmpdir(), 'kafkit-java-tools-log4j2.properties')
  await writeFile(log4jConfig, LOG4J2)
  const child = spawn(
    'java',
    [
      '-Xmx256m',
      '-XX:TieredStopAtLevel=1',
      '-XX:+UseSerialGC',
      `-Dlog4j2.configurationFile=${log4jConfig}`,
      '-Dfile.encoding=UTF-8',
      '-Dstdout.encoding=UTF-8',
      '-cp',
      dist.classPath,
      mainClass,
      ...args
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] }
  )
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  child.stdin.end(stdin ?? '', 'utf8')
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  assert.equal(code, 0, `${mainClass} exited ${String(code)}: ${stderr.slice(-2000)}`)
  return stdout
}

/** Produces `key<TAB>value` lines with org.apache.kafka.tools.ConsoleProducer (default partitioner, acks=all). */
export async function javaConsoleProducer(brokers: string[], topic: string, lines: string[]): Promise<void> {
  await runJava(
    'org.apache.kafka.tools.ConsoleProducer',
    [
      '--bootstrap-server',
      brokers.join(','),
      '--topic',
      topic,
      '--property',
      'parse.key=true',
      '--property',
      'key.separator=\t',
      '--producer-property',
      'acks=all'
    ],
    `${lines.join('\n')}\n`
  )
}

/**
 * Reads a topic from the beginning with org.apache.kafka.tools.consumer.ConsoleConsumer in
 * read_committed mode and returns the values; stops after `idleMs` without a new record.
 */
export async function javaReadCommitted(brokers: string[], topic: string, idleMs = 4000): Promise<string[]> {
  const out = await runJava(
    'org.apache.kafka.tools.consumer.ConsoleConsumer',
    [
      '--bootstrap-server',
      brokers.join(','),
      '--topic',
      topic,
      '--from-beginning',
      '--isolation-level',
      'read_committed',
      '--timeout-ms',
      String(idleMs)
    ],
    undefined
  )
  return out.split('\n').filter(line => line.length > 0)
}

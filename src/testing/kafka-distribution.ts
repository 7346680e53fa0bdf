/**
 * Assembles an Apache Kafka distribution from Maven Central into a cache directory outside the
 * repository: a generated POM names the broker (`kafka_2.13`), the tools and a log4j2 binding, and
 * `mvn dependency:copy-dependencies` copies the runtime jars. It runs once per version; later calls
 * find the `.complete` marker and return at once. Nothing of Kafka is committed to the project.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { LocalKafkaError } from '../errors/kafkit-error.ts'

const run = promisify(execFile)

/** Kafka 4.1.1: the newest 4.x inside the Kafka client's tested range (3.5 to 4.2), and past KAFKA-19444. */
export const KAFKA_VERSION = '4.1.1'
const LOG4J_VERSION = '2.24.3'
const DEPENDENCY_PLUGIN_VERSION = '3.8.1'

export const WAY_OUT = 'or set KAFKA_BROKERS to use an existing cluster'

export function defaultCacheDir(): string {
  return process.env.KAFKIT_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kafkit')
}

export interface KafkaDistribution {
  version: string
  libDir: string
  /** The JVM class path: every jar of the distribution. */
  classPath: string
  log4jConfig: string
}

function pom(version: string): string {
  const dep = (g: string, a: string, v: string) =>
    `<dependency><groupId>${g}</groupId><artifactId>${a}</artifactId><version>${v}</version></dependency>`
  return `<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kafkit.local</groupId>
  <artifactId>kafka-distribution</artifactId>
  <version>${version}</version>
  <packaging>pom</packaging>
  <dependencies>
    ${dep('org.apache.kafka', 'kafka_2.13', version)}
    ${dep('org.apache.kafka', 'kafka-tools', version)}
    ${dep('org.apache.logging.log4j', 'log4j-slf4j-impl', LOG4J_VERSION)}
    ${dep('org.apache.logging.log4j', 'log4j-core', LOG4J_VERSION)}
    ${dep('org.apache.logging.log4j', 'log4j-api', LOG4J_VERSION)}
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId>
    <artifactId>maven-dependency-plugin</artifactId>
    <version>${DEPENDENCY_PLUGIN_VERSION}</version>
  </plugin></plugins></build>
</project>
`
}

// Broker logs: INFO for the lifecycle lines people grep for, WARN for the chatty request plumbing.
const LOG4J2 = `status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.reqs.name = kafka.request.logger
logger.reqs.level = warn
logger.clients.name = org.apache.kafka.clients
logger.clients.level = warn
logger.coord.name = org.apache.kafka.coordinator
logger.coord.level = warn
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = warn
`

async function commandExists(command: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${command}`])
    return true
  } catch {
    return false
  }
}

export async function checkJava(): Promise<void> {
  if (!(await commandExists('java'))) {
    throw new LocalKafkaError(
      'KAFKIT_LOCAL_KAFKA_JAVA_MISSING',
      `java was not found on the PATH: install a JDK 17 or newer (e.g. apt-get install -y openjdk-17-jre-headless), ${WAY_OUT}`
    )
  }
}

/** Returns the cached distribution, assembling it with Maven on first use. */
export async function ensureKafkaDistribution(
  options: { cacheDir?: string; version?: string; log?: (line: string) => void } = {}
): Promise<KafkaDistribution> {
  const version = options.version ?? KAFKA_VERSION
  const home = join(options.cacheDir ?? defaultCacheDir(), `kafka-${version}`)
  const libDir = join(home, 'libs')
  const log4jConfig = join(home, 'log4j2.properties')
  const result = { version, libDir, classPath: `${libDir}/*`, log4jConfig }
  if (existsSync(join(libDir, '.complete'))) return result

  await checkJava()
  if (!(await commandExists('mvn'))) {
    throw new LocalKafkaError(
      'KAFKIT_LOCAL_KAFKA_MAVEN_MISSING',
      `mvn was not found on the PATH: install Apache Maven (e.g. apt-get install -y maven) to assemble Kafka ${version}, ${WAY_OUT}`
    )
  }
  options.log?.(`Assembling Apache Kafka ${version} from Maven Central into ${home} (once)...`)
  await mkdir(home, { recursive: true })
  await writeFile(join(home, 'pom.xml'), pom(version))
  await writeFile(log4jConfig, LOG4J2)
  const staging = join(home, `libs.tmp-${process.pid}`)
  await rm(staging, { recursive: true, force: true })
  try {
    await run(
      'mvn',
      [
        '-B',
        '-q',
        '-f',
        join(home, 'pom.xml'),
        'dependency:copy-dependencies',
        '-DincludeScope=runtime',
        `-DoutputDirectory=${staging}`
      ],
      { maxBuffer: 64 * 1024 * 1024 }
    )
  } catch (error) {
    await rm(staging, { recursive: true, force: true })
    const output = error instanceof Error && 'stdout' in error ? String(error.stdout).slice(-2000) : ''
    throw new LocalKafkaError(
      'KAFKIT_LOCAL_KAFKA_DOWNLOAD_FAILED',
      `could not download Apache Kafka ${version} from Maven Central with mvn (check network access and disk space; output below), ${WAY_OUT}\n${output}`,
      { cause: error, retryable: true }
    )
  }
  await writeFile(join(staging, '.complete'), `${new Date().toISOString()}\n`)
  await rm(libDir, { recursive: true, force: true })
  await rename(staging, libDir)
  return result
}

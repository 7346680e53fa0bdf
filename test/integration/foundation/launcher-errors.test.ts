/**
 * The launcher's failure modes each give one clear line with the way out (KAFKA_BROKERS): java or mvn
 * missing, a download that fails, a broker that does not become ready (pointing at its log file).
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { ensureKafkaDistribution } from '../../../src/testing/kafka-distribution.ts'
import { startKafka, stopKafka } from '../../../src/testing/local-kafka.ts'
import { TEST_PORTS } from '../../helpers/ports.ts'

const run = promisify(execFile)
const cli = new URL('../../../bin/kafkit.js', import.meta.url).pathname

async function which(command: string): Promise<string> {
  const { stdout } = await run('sh', ['-c', `command -v ${command}`])
  return stdout.trim()
}

/** Runs `kafkit kafka start` with a PATH holding only the given commands and a fresh cache. */
async function startWithOnly(commands: string[]): Promise<{ code: number; stderr: string }> {
  const bin = await mkdtemp(join(tmpdir(), 'kafkit-path-'))
  const cache = await mkdtemp(join(tmpdir(), 'kafkit-cache-'))
  try {
    for (const command of ['sh', ...commands]) await symlink(await which(command), join(bin, command))
    await run(process.execPath, [cli, 'kafka', 'start', '--port', String(TEST_PORTS.launcherMissingTools)], {
      env: { PATH: bin, KAFKIT_CACHE_DIR: cache, HOME: cache }
    })
    return { code: 0, stderr: '' }
  } catch (error) {
    const failure = error as { code: number; stderr: string }
    return { code: failure.code, stderr: failure.stderr }
  } finally {
    await rm(bin, { recursive: true, force: true })
    await rm(cache, { recursive: true, force: true })
  }
}

test('java missing: exit 1, one line naming java and the way out', async () => {
  const { code, stderr } = await startWithOnly([])
  assert.equal(code, 1)
  assert.match(
    stderr,
    /^kafkit: java was not found on the PATH: install a JDK 17.*KAFKA_BROKERS.*\[KAFKIT_LOCAL_KAFKA_JAVA_MISSING\]\n$/
  )
})

test('mvn missing on first use: exit 1, one line naming Maven and the way out', async () => {
  const javaHome = dirname(await which('java'))
  assert.ok(javaHome)
  const { code, stderr } = await startWithOnly(['java'])
  assert.equal(code, 1)
  assert.match(stderr, /^kafkit: mvn was not found on the PATH.*KAFKA_BROKERS.*\[KAFKIT_LOCAL_KAFKA_MAVEN_MISSING\]\n$/)
})

test('a failed download is reported as retryable KAFKIT_LOCAL_KAFKA_DOWNLOAD_FAILED', async t => {
  const cache = await mkdtemp(join(tmpdir(), 'kafkit-cache-'))
  t.after(() => rm(cache, { recursive: true, force: true }))
  await assert.rejects(ensureKafkaDistribution({ cacheDir: cache, version: '0.0.0-no-such-release' }), error => {
    assert.ok(isKafkitError(error))
    assert.equal(error.code, 'KAFKIT_LOCAL_KAFKA_DOWNLOAD_FAILED')
    assert.equal(error.retryable, true)
    assert.match(error.message, /could not download Apache Kafka 0\.0\.0-no-such-release.*KAFKA_BROKERS/)
    return true
  })
})

test('a broker that is not ready in time points at its log file', async t => {
  const port = TEST_PORTS.launcherNotReady
  t.after(() => stopKafka({ port }))
  await assert.rejects(startKafka({ port, fresh: true, readyTimeoutMs: 1 }), error => {
    assert.ok(isKafkitError(error))
    assert.equal(error.code, 'KAFKIT_LOCAL_KAFKA_START_FAILED')
    assert.match(error.message, /did not become ready within 1 ms.*see \S+broker\.log.*KAFKA_BROKERS/)
    return true
  })
})

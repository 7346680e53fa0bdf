/** The README's hello world is examples/hello-world/main.ts, word for word (the examples test runs that file). */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'

test("the README's hello world is the example that the examples test runs", () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('## Hello world'))
  const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1]
  const example = readFileSync(new URL('../../examples/hello-world/main.ts', import.meta.url), 'utf8')
  assert.equal(block, example, 'copy examples/hello-world/main.ts into the README (or the other way round)')
  assert.ok(example.trim().split('\n').length <= 30, 'at most 30 lines')
})

/** Pages in docs/ that derive from code match what `npm run docs` would write (no drift). */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { test } from 'node:test'
import { errorCodes } from '../../src/errors/codes.ts'
import { generated, replaceSection } from '../../scripts/generate-docs.ts'
import { headerSpecs, wireHeaderNames } from '../../src/message/wire-format.ts'

for (const [name, { file, render }] of Object.entries(generated)) {
  test(`${file} section "${name}" is up to date (run npm run docs)`, async () => {
    const text = await readFile(new URL(`../../${file}`, import.meta.url), 'utf8')
    assert.equal(text, replaceSection(text, name, render()))
  })
}

test('every error code is listed in docs/errors.md', async () => {
  const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8')
  const documented = [...doc.matchAll(/^\| `(KAFKIT_[A-Z0-9_]+)` \|/gm)].map(m => m[1])
  assert.deepEqual(documented.sort(), Object.keys(errorCodes).sort())
})

test('every header of the wire format has its entry in docs/headers.md, once', async () => {
  const names = wireHeaderNames()
  assert.deepEqual(
    headerSpecs.map(h => h.name).sort(),
    [...new Set(names)].sort(),
    'src/message/wire-format.ts: headerSpecs and the header constants'
  )
  const doc = await readFile(new URL('../../docs/headers.md', import.meta.url), 'utf8')
  for (const name of names) assert.match(doc, new RegExp(`\\| \`${name}\` +\\|`), name)
})

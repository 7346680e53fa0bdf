#!/usr/bin/env node
// The `kafkit` command. In a checkout it runs the TypeScript sources directly (Node >= 22.18 strips
// types); installed from npm (inside node_modules, where Node will not strip types) it runs dist/.
import { existsSync } from 'node:fs'

const source = new URL('../src/cli/main.ts', import.meta.url)
const useSource = existsSync(source) && !source.pathname.includes('/node_modules/')
await import(useSource ? source.href : new URL('../dist/cli/main.js', import.meta.url).href)

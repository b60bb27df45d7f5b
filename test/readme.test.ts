// The code blocks of README.md cannot drift from the package: every
// TypeScript block is compiled (strict, against the built declarations), and
// every JavaScript block, and every TypeScript block marked `run`, is run with
// node against the built package. test/helpers/snippets.ts describes the
// HTML comments that give a block its context.
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import ts from 'typescript'
import { snippets, type Snippet } from './helpers/snippets.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
// A program run from the README may listen on any port: it gets a free one on 127.0.0.1.
const sandbox = join(root, 'test', 'helpers', 'snippet-sandbox.cjs')
const blocks = snippets(readFileSync(join(root, 'README.md'), 'utf8'))

t.setTimeout(120_000)

interface Run { code: number | null, output: string }

async function run (args: string[], cwd: string, timeout: number): Promise<Run> {
  const env = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }
  delete env.NODE_OPTIONS
  delete env.NODE_V8_COVERAGE
  delete env.NODE_TEST_CONTEXT // a README test run by node:test reports as if run by hand
  return await new Promise((resolve) => {
    execFile(process.execPath, args, { cwd, env, timeout, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
      resolve({ code, output: `${stdout}${stderr}${err?.killed === true ? `\n(killed after ${timeout} ms)` : ''}` })
    })
  })
}

/** A directory inside the repository (so `fastify-wss` resolves to this package), removed after the test. */
async function workdir (test: typeof t): Promise<string> {
  const dir = await mkdtemp(join(root, '.snippets-'))
  test.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const lines = (text: string): number => text === '' ? 0 : text.split('\n').length

/** The source of a block as compiled or run: its hidden context around it. */
function source (block: Snippet): string {
  return [block.before, block.code, block.after].filter((part) => part !== '').join('\n') + '\n'
}

/** Where line `line` of the source of `block` is in the README. */
function readmeLine (block: Snippet, line: number): string {
  const before = lines(block.before)
  if (line <= before) return `README.md:${block.line} (line ${line} of its "before" comment)`
  if (line > before + lines(block.code)) return `README.md:${block.line} (line ${line - before - lines(block.code)} of its "after" comment)`
  return `README.md:${block.line + line - before}`
}

const checked = blocks.filter((block) => !block.skip && block.language !== 'other')
const typescript = checked.filter((block) => block.language === 'ts')
const runnable = checked.filter((block) => block.language === 'js' || block.run)

t.test('every code block of the README names its language', async (t) => {
  t.same(blocks.filter((block) => block.info === '').map((block) => `README.md:${block.line}`), [])
  t.ok(typescript.length > 0, 'there are TypeScript blocks to compile')
  t.ok(runnable.length > 0, 'there are blocks to run')
})

t.test('every TypeScript block of the README compiles under strict mode', async (t) => {
  if (!existsSync(join(root, 'dist', 'esm', 'index.d.ts'))) {
    t.fail('dist/ is missing: run npm run build first')
    return
  }
  const dir = await workdir(t)
  for (const block of typescript) {
    // `export {}`: each block is a module of its own, as in a file of its own
    await writeFile(join(dir, `readme-${block.line}.ts`), `${source(block)}export {}\n`)
  }
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
    extends: '../tsconfig.json',
    compilerOptions: { noEmit: true, noUnusedLocals: false, noUnusedParameters: false, types: ['node'] },
    include: ['*.ts']
  }))
  const result = await run([tsc, '-p', dir, '--pretty', 'false'], dir, 90_000)
  const errors = new Map<number, string[]>()
  const other: string[] = []
  let last: string[] = other
  for (const text of result.output.split('\n').filter((text) => text.trim() !== '')) {
    if (/^\s/.test(text) && last.length !== 0) { // the next line of a message
      last[last.length - 1] += `\n${text}`
      continue
    }
    const match = /^readme-(\d+)\.ts\((\d+),(\d+)\): (.*)$/.exec(text)
    const block = match === null ? undefined : typescript.find((block) => block.line === Number(match[1]))
    if (match === null || block === undefined) {
      other.push(text)
      last = other
      continue
    }
    last = errors.get(block.line) ?? []
    last.push(`${readmeLine(block, Number(match[2]))}:${match[3]}: ${match[4]}`)
    errors.set(block.line, last)
  }
  for (const block of typescript) {
    t.same(errors.get(block.line) ?? [], [], `the block at README.md:${block.line} compiles`)
  }
  t.same(other, [], 'tsc reports nothing else')
  t.equal(result.code, 0, 'tsc exits with 0')
})

t.test('every JavaScript block of the README, and every TypeScript block marked run, runs to completion', async (t) => {
  if (!existsSync(join(root, 'dist', 'esm', 'index.js'))) {
    t.fail('dist/ is missing: run npm run build first')
    return
  }
  const dir = await workdir(t)
  await Promise.all(runnable.map(async (block) => {
    let code = source(block)
    if (block.language === 'ts') {
      code = ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
    }
    // a block that uses require() is CommonJS, any other an ES module
    const file = join(dir, `readme-${block.line}.${block.language === 'js' && /\brequire\(/.test(code) ? 'cjs' : 'mjs'}`)
    await writeFile(file, code)
    const result = await run(block.parse ? ['--check', file] : ['--require', sandbox, file], dir, 30_000)
    t.same({ code: result.code }, { code: 0 }, `the block at README.md:${block.line} ${block.parse ? 'parses' : 'runs and exits with 0'}`, { output: result.output })
  }))
})

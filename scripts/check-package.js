// Checks the package as it would be published: packs it with npm, then runs
// @arethetypeswrong/cli (types resolve under node16 from CJS and ESM, and
// bundler) and publint (package.json fields, exports, files) on the tarball.
// Run after `npm run build`; exits non-zero on any problem.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)

for (const entry of ['dist/esm/index.js', 'dist/esm/index.d.ts', 'dist/cjs/index.js', 'dist/cjs/index.d.ts', 'dist/cjs/package.json']) {
  if (!existsSync(join(root, entry))) {
    console.error(`check-package: ${entry} is missing: run npm run build first`)
    process.exit(1)
  }
}

/** The path of the `name` executable of an installed package. */
function bin (pkg, name) {
  let dir
  try {
    dir = dirname(require.resolve(`${pkg}/package.json`))
  } catch {
    dir = dirname(require.resolve(pkg)) // its package.json is not exported: walk up from its entry point
  }
  while (!existsSync(join(dir, 'package.json')) || JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name !== pkg) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error(`check-package: cannot find the package directory of ${pkg}`)
    dir = parent
  }
  const { bin } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  return join(dir, typeof bin === 'string' ? bin : bin[name])
}

/** Runs the `name` executable of `pkg` with node, after printing the command. Returns false when it fails. */
function run (pkg, name, args) {
  console.log(`\n$ ${name} ${args.join(' ')}`)
  try {
    execFileSync(process.execPath, [bin(pkg, name), ...args], { cwd: root, stdio: 'inherit' })
    return true
  } catch (err) {
    console.error(`check-package: ${name} failed${err.status == null ? `: ${err.message}` : ` (exit code ${err.status})`}`)
    return false
  }
}

// npm itself when run through `npm run`, else the npm on the PATH.
const npm = process.env.npm_execpath?.endsWith('.js')
  ? [process.execPath, [process.env.npm_execpath]]
  : ['npm', [], { shell: process.platform === 'win32' }]

const dir = mkdtempSync(join(tmpdir(), 'fastify-wss-pack-'))
let ok = false
try {
  const packArgs = ['pack', '--json', '--pack-destination', dir]
  console.log(`$ npm ${packArgs.join(' ')}`)
  const output = execFileSync(npm[0], [...npm[1], ...packArgs], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...npm[2] })
  const [packed] = JSON.parse(output)
  const tarball = join(dir, packed.filename)
  const files = packed.files.map((file) => file.path)
  console.log(`${packed.filename}: ${files.length} files, ${packed.size} bytes`)
  const stray = files.filter((file) => /(^|\/)test(-d)?\/|\.test\.|\.tst\./.test(file))
  if (stray.length !== 0) console.error(`check-package: test files in the package: ${stray.join(', ')}`)

  // node16 profile: node16 from CJS, node16 from ESM and bundler must all
  // resolve to types matching the JavaScript; node10 (no "exports") is not supported.
  const attw = run('@arethetypeswrong/cli', 'attw', ['--profile', 'node16', tarball])
  // --strict: warnings fail too.
  const publint = run('publint', 'publint', ['run', '--strict', tarball])
  ok = attw && publint && stray.length === 0
} finally {
  rmSync(dir, { recursive: true, force: true })
}

console.log(ok ? '\ncheck-package: the package is fine' : '\ncheck-package: problems found')
process.exitCode = ok ? 0 : 1

// Packs the package with npm, installs the tarball in a throwaway project and
// type-checks what a user writes (test/fixtures/consumer/) with TypeScript,
// skipLibCheck off, under each moduleResolution the package promises
// (node16, nodenext, bundler): the declarations that ship must hold.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readdir, realpath, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import ts from 'typescript'

const root = fileURLToPath(new URL('..', import.meta.url))
const fixtures = join(root, 'test', 'fixtures', 'consumer')

// npm itself when run through `npm test`, else the npm on the PATH.
const npm: [string, string[]] = process.env.npm_execpath?.endsWith('.js') === true
  ? [process.execPath, [process.env.npm_execpath]]
  : ['npm', []]

interface Run { code: number, output: string }

async function run (file: string, args: string[], cwd: string, timeout: number): Promise<Run> {
  return await new Promise((resolve) => {
    execFile(file, args, { cwd, timeout, encoding: 'utf8', shell: process.platform === 'win32' && file === 'npm' }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, output: `${stdout}${stderr}${err?.killed === true ? '\n(timed out)' : ''}` })
    })
  })
}

// What each check compiles: module and moduleResolution, and the consumer
// file. One program per check: a program holding both the ESM and the
// CommonJS declarations would see two augmentations of FastifyInstance.wss.
// Each costs seconds of CPU, so the CommonJS file is checked under one of the
// two node resolutions and the ES module under the other.
const checks = [
  { name: 'node16, from an ES module', module: 'Node16', moduleResolution: 'Node16', file: 'esm.ts' },
  { name: 'nodenext, from CommonJS', module: 'NodeNext', moduleResolution: 'NodeNext', file: 'cjs.cts' },
  { name: 'bundler', module: 'ESNext', moduleResolution: 'Bundler', file: 'esm.ts' }
]

t.setTimeout(120_000)

t.test('the packed package type-checks in a consumer project with skipLibCheck off', async (t) => {
  if (!existsSync(join(root, 'dist', 'esm', 'index.d.ts')) || !existsSync(join(root, 'dist', 'cjs', 'index.d.ts'))) {
    t.fail('dist/ is missing: run npm run build first')
    return
  }
  const dir = await realpath(await mkdtemp(join(tmpdir(), 'fastify-wss-consumer-')))
  t.teardown(() => rm(dir, { recursive: true, force: true }))

  const pack = await run(npm[0], [...npm[1], 'pack', '--json', '--pack-destination', dir], root, 60_000)
  t.equal(pack.code, 0, 'npm pack succeeds')
  if (pack.code !== 0) {
    t.comment(pack.output)
    return
  }
  const [{ filename }] = JSON.parse(pack.output.slice(pack.output.indexOf('['))) as Array<{ filename: string }>

  // The project: the tarball unpacked where npm would install it, and the
  // packages it needs (fastify, ws, typescript, @types/node, ...) taken from
  // this repository's node_modules, so that nothing is downloaded.
  const project = join(dir, 'consumer')
  const modules = join(project, 'node_modules')
  await mkdir(join(modules, 'fastify-wss'), { recursive: true })
  const untar = await run('tar', ['-xzf', join(dir, filename), '-C', join(modules, 'fastify-wss'), '--strip-components=1'], dir, 30_000)
  t.equal(untar.code, 0, 'the tarball unpacks', { output: untar.output })
  for (const entry of await readdir(join(root, 'node_modules'))) {
    if (entry.startsWith('.') || entry === 'fastify-wss') continue
    await symlink(join(root, 'node_modules', entry), join(modules, entry), 'junction')
  }
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  for (const file of ['esm.ts', 'cjs.cts']) await copyFile(join(fixtures, file), join(project, file))

  // The checker of tsc through its API, in this process: each program is
  // built as `tsc -p` builds it (skipLibCheck off), and asked for the errors of
  // the consumer file and of every declaration file of the package; the
  // declarations of fastify, @types/node and the rest are not checked whole
  // (that took over a minute), only as far as the package's types use them.
  const cache = new Map<string, ts.SourceFile | undefined>()
  const base = `${project.replaceAll('\\', '/')}/` // file names as TypeScript writes them
  for (const check of checks) {
    const config = join(project, `tsconfig.${check.moduleResolution}.${check.file}.json`)
    await writeFile(config, JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2023'],
        module: check.module,
        moduleResolution: check.moduleResolution,
        strict: true,
        skipLibCheck: false,
        noEmit: true,
        types: ['node']
      },
      files: [check.file]
    }))
    const parsed = ts.getParsedCommandLineOfConfigFile(config, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })
    if (parsed === undefined) throw new Error(`cannot read ${config}`)
    const host = ts.createCompilerHost(parsed.options)
    const getSourceFile = host.getSourceFile
    // the declarations outside the project, parsed once for the three programs
    host.getSourceFile = (fileName, version, ...rest) => {
      if (fileName.startsWith(base)) return getSourceFile(fileName, version, ...rest)
      const key = `${fileName}|${JSON.stringify(version)}`
      if (!cache.has(key)) cache.set(key, getSourceFile(fileName, version, ...rest))
      return cache.get(key)
    }
    const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options, host, configFileParsingDiagnostics: parsed.errors })
    const ours = program.getSourceFiles().filter((file) => file.fileName.startsWith(base) &&
      (!file.fileName.includes('/node_modules/') || file.fileName.includes('/node_modules/fastify-wss/')))
    const declarations = ours.filter((file) => file.isDeclarationFile).map((file) => file.fileName.slice(file.fileName.indexOf('node_modules/')))
    t.ok(declarations.some((file) => file.endsWith('/errors.d.ts')) && declarations.some((file) => file.endsWith('/index.d.ts')),
      `under ${check.name}, the program holds the package's declarations`, { declarations })
    const diagnostics = [
      ...program.getConfigFileParsingDiagnostics(),
      ...program.getOptionsDiagnostics(),
      ...program.getGlobalDiagnostics(),
      ...ours.flatMap((file) => [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)])
    ]
    const output = ts.formatDiagnostics(diagnostics, { getCanonicalFileName: (name) => name, getCurrentDirectory: () => project, getNewLine: () => '\n' })
    t.equal(output, '', `the consumer and the package's declarations type-check under ${check.name}`)
  }
})

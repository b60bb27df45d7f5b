// Builds fastify-wss as it was at a commit into bench/baseline/dist, so that
// bench/run.js can measure it beside the working tree in one run:
//   BASELINE=<commit> node bench/run.js echo object broadcast
// (run.js calls this itself). Only lib/ and tsconfig.json of the commit are
// taken; they compile against the dependencies installed now.
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const dir = fileURLToPath(new URL('baseline/', import.meta.url))

export function buildBaseline (commit) {
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const archive = execFileSync('git', ['archive', commit, 'lib', 'tsconfig.json'])
  execFileSync('tar', ['-x', '-C', dir], { input: archive })
  writeFileSync(`${dir}tsconfig.build.json`, JSON.stringify({
    extends: './tsconfig.json',
    compilerOptions: { outDir: 'dist', rootDir: 'lib', declaration: false, sourceMap: false }
  }))
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  execFileSync(process.execPath, [tsc, '-p', `${dir}tsconfig.build.json`], { stdio: 'inherit' })
  return `${dir}dist/index.js`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(buildBaseline(process.argv[2] ?? 'HEAD'))
}

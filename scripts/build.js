// Builds the ESM and CommonJS outputs, each with its declarations.
import { execFileSync } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')

rmSync('dist', { recursive: true, force: true })
for (const project of ['tsconfig.build.json', 'tsconfig.cjs.json']) {
  execFileSync(process.execPath, [tsc, '-p', project], { stdio: 'inherit' })
}
// dist/cjs holds CommonJS inside a "type": "module" package.
writeFileSync('dist/cjs/package.json', '{\n  "type": "commonjs"\n}\n')

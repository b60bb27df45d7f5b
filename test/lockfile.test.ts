// `npm install` in a fresh clone must leave the work tree clean: npm rewrites
// package-lock.json when the package's own entry in it (packages[""]) no
// longer matches package.json, e.g. after a peer dependency was added by hand.
import { readFileSync } from 'node:fs'
import t from 'tap'

const read = (file: string): Record<string, any> => JSON.parse(readFileSync(new URL(`../${file}`, import.meta.url), 'utf8'))

t.test('the root entry of package-lock.json matches package.json, so npm install does not rewrite it', async (t) => {
  const pkg = read('package.json')
  const lock = read('package-lock.json')
  t.equal(lock.name, pkg.name, 'name')
  t.equal(lock.version, pkg.version, 'version')
  const root = lock.packages['']
  // the fields of package.json that npm copies into the root entry
  for (const field of ['name', 'version', 'license', 'bin', 'engines', 'dependencies', 'devDependencies',
    'optionalDependencies', 'peerDependencies', 'peerDependenciesMeta', 'workspaces']) {
    t.same(root[field], pkg[field], field)
  }
})

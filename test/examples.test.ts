import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import t from 'tap'
import { connect, messages, closed } from './helpers/index.js'

const root = new URL('..', import.meta.url)

/** Runs an example as a user would (`node example/.../server.js`, built package) and returns its base URL. */
async function run (test: typeof t, file: string): Promise<string> {
  if (!existsSync(new URL('dist/esm/index.js', root))) throw new Error('dist/ is missing: run npm run build first')
  const env = { ...process.env, PORT: '0', HOST: '127.0.0.1' }
  // The child runs the built package as a user would, outside the coverage of lib/.
  delete env.NODE_OPTIONS
  delete env.NODE_V8_COVERAGE
  const child = spawn(process.execPath, [file], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] })
  test.teardown(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM')
      await once(child, 'exit')
    }
  })
  let output = ''
  for await (const chunk of child.stdout) {
    output += chunk
    const match = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
    if (match !== null) return `127.0.0.1:${match[1]}`
  }
  throw new Error(`the example exited before listening:\n${output}`)
}

t.test('the uppercase example answers every message in uppercase', async (t) => {
  const host = await run(t, 'example/uppercase/server.js')
  const ws = await connect(t, `ws://${host}/upper`)
  ws.send('hello')
  ws.send('4d')
  t.same(await messages(ws, 2), ['HELLO', '4D'])
})

t.test('the chat example welcomes, announces, relays to the others and says goodbye', async (t) => {
  const host = await run(t, 'example/chat/server.js')
  const page = await fetch(`http://${host}/`)
  t.equal(page.status, 200)
  t.match(await page.text(), /new WebSocket/)

  const first = await connect(t, `ws://${host}/chat`)
  const firstSees = messages(first, 4)
  const second = await connect(t, `ws://${host}/chat`)
  t.same(await messages(second, 1), ['Welcome on the chat!'])
  second.send('hello from the second')
  second.close()
  await closed(second)
  t.same(await firstSees, [
    'Welcome on the chat!',
    'New client connected',
    'hello from the second',
    'Client disconnected'
  ])
})

import t from 'tap'
import type WebSocket from 'ws'
import { connect, messages, closed } from './helpers/index.js'
import { runExample } from './helpers/browser.js'

/** The next `count` messages of a client, parsed; each `at` is checked to be an ISO date, then left out. */
async function entries (ws: WebSocket, count: number): Promise<Array<Record<string, unknown>>> {
  return (await messages(ws, count)).map((text) => {
    const { at, ...entry } = JSON.parse(text)
    if (typeof at !== 'string' || Number.isNaN(Date.parse(at))) throw new Error(`no date in ${text}`)
    return entry
  })
}

/** A chat client that has joined under `name`, its welcome read. */
async function join (test: typeof t, host: string, name: string): Promise<{ ws: WebSocket, users: unknown }> {
  const ws = await connect(test, `ws://${host}/chat`)
  ws.send(JSON.stringify({ type: 'join', name }))
  const [welcome] = await entries(ws, 1)
  test.match(welcome, { type: 'welcome', name: name.trim(), text: `Welcome, ${name.trim()}!` })
  return { ws, users: welcome.users }
}

// Each test starts a Node.js process or two.
t.setTimeout(90000)

t.test('the uppercase example answers every message in uppercase', async (t) => {
  const { host } = await runExample(t, 'example/uppercase/server.js')
  const ws = await connect(t, `ws://${host}/upper`)
  ws.send('hello')
  ws.send('4d')
  t.same(await messages(ws, 2), ['HELLO', '4D'])
})

t.test('the chat example serves its page at /', async (t) => {
  const { host } = await runExample(t, 'example/chat/server.js')
  const page = await fetch(`http://${host}/`)
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /^text\/html/)
  t.match(await page.text(), /new WebSocket\(url\)/)
})

t.test('the chat example welcomes a joiner, tells the room who joins, relays messages to everyone and says who left', async (t) => {
  const { host } = await runExample(t, 'example/chat/server.js')
  const ada = await join(t, host, 'Ada')
  t.same(ada.users, ['Ada'])
  const adaSees = entries(ada.ws, 4)

  const bob = await join(t, host, '  Bob  ')
  t.same(bob.users, ['Ada', 'Bob'], 'the welcome lists who is online, the name trimmed')
  const bobSees = entries(bob.ws, 2)
  bob.ws.send(JSON.stringify({ type: 'message', text: 'Hi Ada!' }))
  ada.ws.send(JSON.stringify({ type: 'message', text: 'Hello Bob' }))
  t.same(await bobSees, [
    { type: 'message', name: 'Bob', text: 'Hi Ada!' },
    { type: 'message', name: 'Ada', text: 'Hello Bob' }
  ])
  bob.ws.close()
  await closed(bob.ws)
  t.same(await adaSees, [
    { type: 'join', name: 'Bob' },
    { type: 'message', name: 'Bob', text: 'Hi Ada!' },
    { type: 'message', name: 'Ada', text: 'Hello Bob' },
    { type: 'leave', name: 'Bob' }
  ])
})

t.test('the chat example answers an error to a message it cannot accept and keeps the connection', async (t) => {
  const { host } = await runExample(t, 'example/chat/server.js')
  const ws = await connect(t, `ws://${host}/chat`)
  const bad = [
    'not json',
    '"a string"',
    JSON.stringify({ type: 'shout', text: 'hey' }),
    JSON.stringify({ type: 'message', text: 'before joining' }),
    JSON.stringify({ type: 'join', name: '   ' }),
    JSON.stringify({ type: 'join', name: 'x'.repeat(33) })
  ]
  for (const message of bad) ws.send(message)
  const errors = await entries(ws, bad.length)
  t.same(errors.map((entry) => entry.type), bad.map(() => 'error'))
  t.match(errors.map((entry) => entry.text), [
    /JSON object/, /"join"/, /"join"/, /Join with a name first/, /1 to 32 characters/, /1 to 32 characters/
  ])

  ws.send(JSON.stringify({ type: 'join', name: 'Ada' }))
  t.match(await entries(ws, 1), [{ type: 'welcome', name: 'Ada' }])
  ws.send(JSON.stringify({ type: 'join', name: 'Eve' }))
  ws.send(JSON.stringify({ type: 'message', text: 'x'.repeat(501) }))
  ws.send(JSON.stringify({ type: 'message', text: 42 }))
  ws.send(JSON.stringify({ type: 'message', text: 'still here' }))
  t.same(await entries(ws, 4), [
    { type: 'error', name: 'Ada', text: 'You have already joined as Ada.' },
    { type: 'error', name: 'Ada', text: 'A message is 1 to 500 characters.' },
    { type: 'error', name: 'Ada', text: 'A message is 1 to 500 characters.' },
    { type: 'message', name: 'Ada', text: 'still here' }
  ])
})

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`the chat example closes its connections with 1001 and exits with 0 on ${signal}`, async (t) => {
    const example = await runExample(t, 'example/chat/server.js')
    const { ws } = await join(t, example.host, 'Ada')
    const gone = closed(ws)
    const exitCode = example.stop(signal)
    t.equal((await gone).code, 1001)
    t.equal(await exitCode, 0)
  })
}

t.test('the dashboard example serves its page at /', async (t) => {
  const { host } = await runExample(t, 'example/dashboard/server.js')
  const page = await fetch(`http://${host}/`)
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /^text\/html/)
  t.match(await page.text(), /subscribe: 'metrics'/)
})

t.test('the dashboard example publishes metrics every second to the subscribers of its topic', async (t) => {
  const { host } = await runExample(t, 'example/dashboard/server.js')
  const ws = await connect(t, `ws://${host}/live`)
  ws.send(JSON.stringify({ subscribe: 'weather' }))
  t.match(JSON.parse((await messages(ws, 1))[0]), { type: 'error', text: /metrics/ })

  ws.send(JSON.stringify({ subscribe: 'metrics' }))
  const [first, second] = await entries(ws, 2)
  const shape = { type: 'metrics', tick: Number, clients: 1, heapUsed: Number, rss: Number, loopDelay: Number }
  t.match(first, shape)
  t.match(second, shape)
  t.equal(second.tick, (first.tick as number) + 1, 'the counter goes up by one at each update')
})

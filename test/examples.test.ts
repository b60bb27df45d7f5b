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

/** The samples of a Prometheus text exposition, by name with its labels: `name` or `name{label="value"}`. */
function samples (text: string): Map<string, number> {
  const found = new Map<string, number>()
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line)
    if (match !== null) found.set(match[1], Number(match[2]))
  }
  return found
}

async function scrape (host: string): Promise<{ text: string, values: Map<string, number> }> {
  const response = await fetch(`http://${host}/metrics`)
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`)
  if (!/^text\/plain; version=0\.0\.4/.test(response.headers.get('content-type') ?? '')) throw new Error('not the Prometheus text format')
  const text = await response.text()
  return { text, values: samples(text) }
}

t.test('the dashboard example serves the fastify_wss_* metrics at /metrics in the Prometheus text format, with HELP and TYPE, collected from wss.stats()', async (t) => {
  const { host } = await runExample(t, 'example/dashboard/server.js')
  const { text, values } = await scrape(host)
  const types = {
    fastify_wss_connections: 'gauge',
    fastify_wss_connections_accepted_total: 'counter',
    fastify_wss_refused_total: 'counter',
    fastify_wss_closed_total: 'counter',
    fastify_wss_messages_received_total: 'counter',
    fastify_wss_messages_sent_total: 'counter',
    fastify_wss_bytes_received_total: 'counter',
    fastify_wss_bytes_sent_total: 'counter',
    fastify_wss_dropped_total: 'counter',
    fastify_wss_rate_limited_total: 'counter',
    fastify_wss_errors_total: 'counter'
  }
  for (const [name, type] of Object.entries(types)) {
    t.match(text, new RegExp(`^# HELP ${name} \\S.+$`, 'm'), `${name} has a HELP text`)
    t.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), `${name} is a ${type}`)
  }
  for (const name of ['fastify_wss_connections', 'fastify_wss_connections_accepted_total', 'fastify_wss_messages_received_total',
    'fastify_wss_messages_sent_total', 'fastify_wss_bytes_received_total', 'fastify_wss_bytes_sent_total',
    'fastify_wss_dropped_total', 'fastify_wss_rate_limited_total']) {
    t.equal(values.get(name), 0, `${name} starts at 0`)
  }
  t.match(text, /^process_cpu_user_seconds_total /m, 'the default metrics of the process are there too')
})

t.test('the numbers of /metrics move after clients connect, send, break a limit and leave', async (t) => {
  const { host } = await runExample(t, 'example/dashboard/server.js')
  const a = await connect(t, `ws://${host}/live`)
  const b = await connect(t, `ws://${host}/live`)
  const wrong = JSON.stringify({ subscribe: 'weather' }) // answered with an error message
  a.send(wrong)
  b.send(wrong)
  await Promise.all([messages(a, 1), messages(b, 1)])
  let { values } = await scrape(host)
  t.equal(values.get('fastify_wss_connections'), 2)
  t.equal(values.get('fastify_wss_connections_accepted_total'), 2)
  t.equal(values.get('fastify_wss_messages_received_total'), 2)
  t.equal(values.get('fastify_wss_bytes_received_total'), 2 * Buffer.byteLength(wrong))
  t.ok((values.get('fastify_wss_messages_sent_total') ?? 0) >= 2, 'the answers count as sent')
  t.ok((values.get('fastify_wss_bytes_sent_total') ?? 0) > 0)

  // past the example's maxPayload of 1024 bytes: closed with 1009, errCode 401
  const gone = closed(a)
  a.send('x'.repeat(2000))
  t.equal((await gone).code, 1009)
  b.close(1000)
  await closed(b)
  for (let i = 0; i < 100; i++) {
    values = (await scrape(host)).values
    if (values.get('fastify_wss_connections') === 0) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.equal(values.get('fastify_wss_connections'), 0, 'both left')
  // ws stops reading a connection once it has sent the 1009, so the echo of its close frame is never read: 1006
  t.same(Object.fromEntries([...values].filter(([name]) => name.startsWith('fastify_wss_closed_total'))),
    { 'fastify_wss_closed_total{code="1006"}': 1, 'fastify_wss_closed_total{code="1000"}': 1 })
  t.equal(values.get('fastify_wss_errors_total{errcode="401"}'), 1)
  t.equal(values.get('fastify_wss_connections_accepted_total'), 2, 'a counter does not go down')
})

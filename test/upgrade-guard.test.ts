import { once } from 'node:events'
import { connect as netConnect } from 'node:net'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import t from 'tap'
import wssPlugin, { type ConnectionHandler, type WebSocketConnection } from '../lib/index.js'
import { connect, deferred, listen, messages, start } from './helpers/index.js'
import { attempt, portOf, rawRequest } from './helpers/http.js'
import { captureLog } from './helpers/log.js'

const accept: ConnectionHandler<any> = { onMessage (ws, event) { ws.send(event.data) } }

/** The lines of a WebSocket handshake for `path`, with `changes` replacing or (with `undefined`) removing headers. */
function handshake (path: string, changes: Record<string, string | undefined> = {}): string[] {
  const headers: Record<string, string | undefined> = {
    Host: '127.0.0.1',
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    ...changes
  }
  return [`GET ${path} HTTP/1.1`, ...Object.entries(headers).filter(([, value]) => value !== undefined).map(([name, value]) => `${name}: ${value as string}`)]
}

for (const where of ['before the plugin', 'after the plugin', 'in a sibling context'] as const) {
  t.test(`an upgrade aimed at a plain GET route declared ${where} gets the route's plain answer or 404, never a 101, and skips no limit`, async (t) => {
    let calls = 0
    const app = Fastify()
    t.teardown(() => app.close())
    const route = async (): Promise<{ ok: boolean }> => ({ ok: true })
    if (where === 'before the plugin') app.get('/api/status', route)
    await app.register(async (child) => {
      await child.register(wssPlugin, {
        path: '/chat',
        maxConnections: 1,
        allowedOrigins: ['https://allowed.example'],
        handler: { onConnection () { calls++; return accept } }
      })
      if (where === 'after the plugin') child.get('/api/status', route)
    })
    if (where === 'in a sibling context') await app.register(async (sibling) => { sibling.get('/api/status', route) })
    const base = await listen(app)
    await connect(t, `${base}/chat`) // maxConnections is full
    const outcome = await attempt(`${base}/api/status`, { origin: 'https://evil.example' })
    t.ok('refused' in outcome, `refused, not upgraded (${JSON.stringify(outcome)})`)
    t.ok([200, 404].includes((outcome as { refused: number }).refused), 'the route\'s answer or 404')
    t.equal(calls, 1, 'onConnection ran for the real connection only')
    t.equal(app.wss?.connections.length ?? 1, 1)
    const { text } = await rawRequest(base, handshake('/api/status'))
    t.notMatch(text, /101 Switching Protocols/, 'a raw handshake is not upgraded either, and its socket is closed')
  })
}

t.test('a route the app declares with { websocket: true } after the plugin keeps working, with or without its own @fastify/websocket', async (t) => {
  for (const own of [false, true]) {
    const app = Fastify()
    t.teardown(() => app.close())
    if (own) await app.register(websocket)
    await app.register(wssPlugin, { path: '/wss', handler: { onConnection: () => accept } })
    app.get('/own', { websocket: true }, (socket) => {
      socket.on('message', (data: Buffer) => socket.send(`own:${String(data)}`))
    })
    app.get('/plain', async () => 'plain')
    const base = await listen(app)
    const client = await connect(t, `${base}/own`)
    client.send('hi')
    t.same(await messages(client, 1), ['own:hi'], `the app's own route (own @fastify/websocket: ${String(own)})`)
    t.same(await attempt(`${base}/plain`), { refused: 404 }, 'a plain route in the same scope is not upgraded')
    t.equal(app.wss.connections.length, 0)
  }
})

t.test('with the app\'s own @fastify/websocket and two fastify-wss servers, a WebSocket route with its own onRequest hook works, and plain routes are still not upgraded', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket)
  const hooked: string[] = []
  for (const path of ['/one', '/two']) {
    await app.register(async (child) => {
      await child.register(wssPlugin, { path, handler: { onConnection: () => accept } })
      child.get(`${path}/own`, { websocket: true, onRequest: async () => { hooked.push(path) } }, (socket) => {
        socket.on('message', (data: Buffer) => socket.send(`own:${String(data)}`))
      })
      child.get(`${path}/plain`, async () => 'plain')
    })
  }
  const base = await listen(app)
  for (const path of ['/one', '/two']) {
    const client = await connect(t, `${base}${path}/own`)
    client.send('x')
    t.same(await messages(client, 1), ['own:x'])
    t.same(await attempt(`${base}${path}/plain`), { refused: 404 })
  }
  t.same(hooked, ['/one', '/two'], 'the route\'s own onRequest ran')
})

t.test('with the app\'s own @fastify/websocket, a { websocket: true } route declared before fastify-wss is answered 404, as the README says', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket)
  app.get('/early', { websocket: true }, (socket) => { socket.close() })
  await app.register(wssPlugin, { path: '/wss', handler: { onConnection: () => accept } })
  const base = await listen(app)
  t.same(await attempt(`${base}/early`), { refused: 404 })
})

const badHandshakes: Array<[string, Record<string, string | undefined>, number, RegExp]> = [
  ['a Sec-WebSocket-Key that is not base64 of 16 bytes', { 'Sec-WebSocket-Key': 'not-a-key' }, 400, /Sec-WebSocket-Key/],
  ['no Sec-WebSocket-Key', { 'Sec-WebSocket-Key': undefined }, 400, /Sec-WebSocket-Key/],
  ['an unsupported Sec-WebSocket-Version', { 'Sec-WebSocket-Version': '12' }, 426, /Sec-WebSocket-Version: 13/],
  ['no Host header', { Host: undefined }, 400, /Host/]
]

for (const [what, changes, status, pattern] of badHandshakes) {
  t.test(`an upgrade with ${what} is answered ${status} before any hook or onConnection runs`, async (t) => {
    let calls = 0
    let hooks = 0
    const app = Fastify()
    t.teardown(() => app.close())
    app.addHook('onRequest', async () => { hooks++ })
    await app.register(wssPlugin, { path: '/chat', handler: { onConnection () { calls++; return accept } } })
    const base = await listen(app)
    const { status: got, text } = await rawRequest(base, handshake('/chat', changes))
    t.equal(got, status)
    t.match(text, pattern)
    t.equal(calls, 0, 'onConnection was not called')
    t.equal(hooks, 0, 'no hook ran')
  })
}

t.test('a request whose Connection header does not ask for the upgrade is a plain GET: 404, not upgraded, onConnection not called', async (t) => {
  let calls = 0
  const { base } = await start(t, { path: '/chat', handler: { onConnection () { calls++; return accept } } })
  const { status } = await rawRequest(base, handshake('/chat', { Connection: 'close' }))
  t.equal(status, 404)
  t.equal(calls, 0)
})

t.test('an upgrade with a method other than GET is answered 400 without calling onConnection', async (t) => {
  let calls = 0
  const { base } = await start(t, { path: '/chat', handler: { onConnection () { calls++; return accept } } })
  const lines = handshake('/chat')
  lines[0] = 'POST /chat HTTP/1.1'
  const { status } = await rawRequest(base, lines)
  t.equal(status, 400)
  t.equal(calls, 0)
})

for (const cause of ['the client left', 'the server was terminated'] as const) {
  t.test(`when ${cause} while an async onConnection ran, its handler gets one onTerminate with 1006 and a Closed connection, and no onOpen`, async (t) => {
    const entered = deferred<import('node:stream').Duplex>()
    const gate = deferred()
    const terminated = deferred<{ ws: WebSocketConnection<any>, event: any }>()
    let opens = 0
    let terminates = 0
    const { app, base } = await start(t, {
      path: '/chat',
      handler: {
        async onConnection (_wss, { fastifyRequest }) {
          entered.resolve(fastifyRequest.raw.socket)
          await gate.promise
          return {
            onOpen () { opens++ },
            onMessage () {},
            onTerminate (ws, event) { terminates++; terminated.resolve({ ws, event }) }
          }
        }
      }
    })
    const client = netConnect(portOf(base), '127.0.0.1')
    client.on('error', () => {})
    let answer = ''
    client.on('data', (chunk: Buffer) => { answer += chunk.toString() })
    client.write(handshake('/chat').join('\r\n') + '\r\n\r\n')
    const serverSocket = await entered.promise
    if (cause === 'the client left') {
      const gone = once(serverSocket, 'close')
      client.destroy()
      await gone
    } else {
      await app.wss.terminate()
    }
    gate.resolve()
    const { ws, event } = await terminated.promise
    t.equal(event.code, 1006)
    t.equal(event.reason, undefined)
    t.equal(ws.status, 'Closed')
    t.equal(ws.send('late'), false, 'nothing can be sent on it')
    t.equal(opens, 0, 'no onOpen')
    t.same(app.wss.connections, [], 'no connection is listed')
    if (cause === 'the server was terminated') {
      await once(client, 'close')
      t.match(answer, /^HTTP\/1\.1 503/, 'the upgrade was refused with 503')
    }
    await new Promise((resolve) => setImmediate(resolve))
    t.equal(terminates, 1, 'exactly one onTerminate')
  })
}

t.test('a 5xx refusal without an onError is logged once, by Fastify, with the request', async (t) => {
  const capture = captureLog()
  const { base } = await start(t, {
    path: '/chat',
    handler: { onConnection () { throw new Error('database down') } }
  }, { logger: { level: 'info', stream: capture.stream } })
  t.same(await attempt(`${base}/chat`), { refused: 500 })
  await capture.next((line) => line.msg === 'request completed')
  const errors = capture.lines.filter((line) => line.level === 50)
  t.equal(errors.length, 1, 'one error line')
  t.match(errors[0], { err: { message: 'database down' } })
})

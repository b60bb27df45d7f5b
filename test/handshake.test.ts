import Fastify from 'fastify'
import t from 'tap'
import WebSocket, { WebSocketServer as WsServer } from 'ws'
import wssPlugin, { type ConnectionRequest, type ServerErrorEvent, type WSSHandler, type WebSocketServer } from '../lib/index.js'
import { connect, deferred, listen, messages, refusal, start } from './helpers/index.js'
import { attempt, httpUrl, rawRequest } from './helpers/http.js'

type Test = typeof t

const accept = { onMessage () {} }

/** A server whose onConnection does `outcome` and whose onError records every error event. */
async function withOutcome (test: Test, outcome: () => unknown): Promise<{ base: string, app: Awaited<ReturnType<typeof start>>['app'], errors: ServerErrorEvent[] }> {
  const errors: ServerErrorEvent[] = []
  const { app, base } = await start(test, {
    path: '/chat',
    handler: {
      onConnection: outcome as WSSHandler['onConnection'],
      onError (_wss, event) { errors.push(event) }
    }
  })
  return { app, base, errors }
}

/** Records the request onConnection received, and accepts. */
async function capture (test: Test, path: string, url: string, options?: WebSocket.ClientOptions, fastifyOptions = {}): Promise<ConnectionRequest> {
  let request: ConnectionRequest | undefined
  const { base } = await start(test, {
    path,
    handler: { onConnection (_wss, event) { request = event.request; return accept } }
  }, fastifyOptions)
  await connect(test, base + url, options)
  return request as ConnectionRequest
}

t.test('the request headers are lower-cased, and a header sent several times is an array in order', async (t) => {
  const request = await capture(t, '/chat', '/chat', {
    headers: { 'X-Custom-Header': 'Value', 'X-Multi': ['one', 'two', 'three'], 'X-Pair': ['a', 'b'] }
  })
  t.equal(request.headers['x-custom-header'], 'Value')
  t.same(request.headers['x-multi'], ['one', 'two', 'three'])
  t.same(request.headers['x-pair'], ['a', 'b'])
  t.equal(request.headers.upgrade, 'websocket')
  t.equal(request.headers['X-Custom-Header'], undefined, 'no mixed-case name')
  for (const name of Object.keys(request.headers)) t.equal(name, name.toLowerCase())
})

t.test('each request header sent once is a string, set-cookie and duplicates of single-value headers included', async (t) => {
  const request = await capture(t, '/chat', '/chat', {
    headers: { 'X-Once': 'only', 'Set-Cookie': 'a=1', 'User-Agent': ['first', 'second'] }
  })
  t.equal(request.headers['x-once'], 'only')
  t.equal(request.headers['set-cookie'], 'a=1', 'a string, where Node would give an array')
  t.same(request.headers['user-agent'], ['first', 'second'], 'both, where Node would keep the first only')
  t.equal(request.headers.upgrade, 'websocket')
})

t.test('the request query parses a repeated key as an array, and url is the request target exactly', async (t) => {
  const request = await capture(t, '/upper', '/upper?name=ryan&x=1&x=2')
  t.same({ ...request.query }, { name: 'ryan', x: ['1', '2'] })
  t.equal(request.url, '/upper?name=ryan&x=1&x=2')

  const simple = await capture(t, '/upper', '/upper?name=ryan&x=1')
  t.equal(simple.url, '/upper?name=ryan&x=1')
  t.same({ ...simple.query }, { name: 'ryan', x: '1' })
})

t.test('the request remoteAddress is the client IP', async (t) => {
  const request = await capture(t, '/chat', '/chat')
  t.equal(request.remoteAddress, '127.0.0.1')
})

t.test('the request remoteAddress honours trustProxy and X-Forwarded-For', async (t) => {
  const request = await capture(t, '/chat', '/chat', { headers: { 'X-Forwarded-For': '203.0.113.7' } }, { trustProxy: true })
  t.equal(request.remoteAddress, '203.0.113.7')
})

t.test('the request params are the route parameters of the path', async (t) => {
  const request = await capture(t, '/rooms/:room', '/rooms/lobby?x=1')
  t.same({ ...request.params }, { room: 'lobby' })
  t.equal(request.url, '/rooms/lobby?x=1')
})

t.test('onConnection is called as a method of the handler with (wss, { type: connection, request })', async (t) => {
  const calls: Array<{ self: unknown, wss: WebSocketServer, event: unknown }> = []
  class ChatServer {
    onConnection (wss: WebSocketServer, event: { type: 'connection', request: ConnectionRequest }): typeof accept {
      calls.push({ self: this, wss, event })
      return accept
    }
  }
  const handler = new ChatServer()
  const { app, base } = await start(t, { path: '/chat', handler })
  await connect(t, `${base}/chat`)
  t.equal(calls.length, 1)
  t.equal(calls[0].self, handler, 'this is the handler')
  t.equal(calls[0].wss, app.wss, 'wss is app.wss')
  t.same(Object.keys(calls[0].event as object).sort(), ['fastifyRequest', 'request', 'type'])
  t.equal((calls[0].event as { type: string }).type, 'connection')
  t.equal((calls[0].event as { request: ConnectionRequest }).request.url, '/chat')
})

t.test('an async onConnection that resolves later is accepted', async (t) => {
  const entered = deferred()
  const gate = deferred()
  const { app, base } = await start(t, {
    path: '/chat',
    handler: {
      async onConnection () {
        entered.resolve()
        await gate.promise
        return { onMessage (ws, event) { ws.send(`got ${String(event.data)}`) } }
      }
    }
  })
  const ws = new WebSocket(`${base}/chat`)
  t.teardown(() => ws.terminate())
  await entered.promise
  t.equal(ws.readyState, WebSocket.CONNECTING, 'no 101 before onConnection has resolved')
  gate.resolve()
  await new Promise((resolve) => ws.once('open', resolve))
  t.equal(app.wss.connections.length, 1)
  ws.send('x')
  t.same(await messages(ws, 1), ['got x'])
})

t.test('onConnection returning null refuses with 403 and creates no connection', async (t) => {
  const { app, base, errors } = await withOutcome(t, () => null)
  const { status, body } = await refusal(`${base}/chat`)
  t.equal(status, 403)
  t.equal(JSON.parse(body).code, 'FST_WSS_CONNECTION_REFUSED')
  t.same(app.wss.connections, [])
  t.same(errors, [], 'a refusal is not an error')
})

t.test('onConnection returning undefined refuses with 403 and creates no connection', async (t) => {
  const { app, base, errors } = await withOutcome(t, () => undefined)
  t.equal((await refusal(`${base}/chat`)).status, 403)
  t.same(app.wss.connections, [])
  t.same(errors, [])
})

t.test('onConnection returning an object without onMessage gives 500 and server onError errCode 101', async (t) => {
  const { app, base, errors } = await withOutcome(t, () => ({ onOpen () {} }))
  const { status, body } = await refusal(`${base}/chat`)
  t.equal(status, 500)
  t.equal(JSON.parse(body).code, 'FST_WSS_INVALID_CONNECTION_HANDLER')
  t.same(app.wss.connections, [])
  t.equal(errors.length, 1)
  t.equal(errors[0].type, 'error')
  t.equal(errors[0].errors[0].errCode, 101)
  t.equal(errors[0].errors[0].componentSignature, 'fastify-wss')
  t.notOk('connection' in errors[0], 'a server error has no connection field')
})

t.test('onConnection throwing an error with statusCode 401 refuses with 401 and calls no onError', async (t) => {
  const { base, errors } = await withOutcome(t, () => {
    throw Object.assign(new Error('who are you'), { statusCode: 401 })
  })
  const { status, body } = await refusal(`${base}/chat`)
  t.equal(status, 401)
  t.equal(JSON.parse(body).message, 'who are you')
  t.same(errors, [], 'a 4xx is a deliberate refusal')
})

t.test('onConnection rejecting with statusCode 503 refuses with 503 and gives server onError errCode 100', async (t) => {
  const { base, errors } = await withOutcome(t, async () => {
    throw Object.assign(new Error('database down'), { statusCode: 503 })
  })
  t.equal((await refusal(`${base}/chat`)).status, 503)
  t.equal(errors.length, 1)
  t.equal(errors[0].errors[0].errCode, 100)
  t.equal(errors[0].errors[0].message, 'database down')
  t.equal((errors[0].errors[0].error as Error & { statusCode: number }).statusCode, 503)
})

t.test('onConnection throwing an error without statusCode refuses with 500 and gives server onError errCode 100', async (t) => {
  const thrown = new Error('boom')
  const { base, errors } = await withOutcome(t, () => { throw thrown })
  t.equal((await refusal(`${base}/chat`)).status, 500)
  t.equal(errors.length, 1)
  t.equal(errors[0].errors[0].errCode, 100)
  t.equal(errors[0].errors[0].error, thrown)
})

t.test('onConnection throwing a non-Error (a string) refuses with 500', async (t) => {
  const { base, errors } = await withOutcome(t, () => {
    throw 'not an error' // eslint-disable-line no-throw-literal
  })
  t.equal((await refusal(`${base}/chat`)).status, 500)
  t.equal(errors.length, 1)
  t.equal(errors[0].errors[0].errCode, 100)
  t.equal(errors[0].errors[0].message, 'not an error')
  t.ok(errors[0].errors[0].error instanceof Error, 'wrapped in an Error')
})

t.test('onConnection throwing an error with a status property in 400-599 refuses with that status', async (t) => {
  const { base, errors } = await withOutcome(t, () => {
    throw Object.assign(new Error('slow down'), { status: 429 })
  })
  t.equal((await refusal(`${base}/chat`)).status, 429)
  t.same(errors, [])

  const failing = await withOutcome(t, async () => {
    throw Object.assign(new Error('gateway'), { status: 502 })
  })
  t.equal((await refusal(`${failing.base}/chat`)).status, 502)
  t.equal(failing.errors[0].errors[0].errCode, 100)
})

t.test('onConnection throwing an error with a statusCode outside 400-599 refuses with 500', async (t) => {
  for (const statusCode of [302, 200, 600, 'abc']) {
    const { base, errors } = await withOutcome(t, () => {
      throw Object.assign(new Error('odd status'), { statusCode })
    })
    t.equal((await refusal(`${base}/chat`)).status, 500, `statusCode ${String(statusCode)}`)
    t.equal(errors[0].errors[0].errCode, 100)
  }
})

t.test('onConnection throwing an error with a numeric string statusCode refuses with that status, as Fastify reads it', async (t) => {
  const { base, errors } = await withOutcome(t, () => {
    throw Object.assign(new Error('who are you'), { statusCode: '401' })
  })
  t.equal((await refusal(`${base}/chat`)).status, 401)
  t.same(errors, [], 'a 4xx is a deliberate refusal')
})

t.test('a terminated server refuses upgrades with 503 without calling onConnection', async (t) => {
  let calls = 0
  const { app, base } = await start(t, { path: '/chat', handler: { onConnection () { calls++; return accept } } })
  await app.wss.terminate()
  const { status, body } = await refusal(`${base}/chat`)
  t.equal(status, 503)
  t.equal(JSON.parse(body).code, 'FST_WSS_UNAVAILABLE')
  t.equal(calls, 0)
})

t.test('a server terminated while onConnection is pending refuses that upgrade with 503', async (t) => {
  const entered = deferred()
  const gate = deferred()
  let opened = false
  const { app, base } = await start(t, {
    path: '/chat',
    handler: {
      async onConnection () {
        entered.resolve()
        await gate.promise
        return { onOpen () { opened = true }, onMessage () {} }
      }
    }
  })
  const result = refusal(`${base}/chat`)
  await entered.promise
  await app.wss.terminate()
  gate.resolve()
  t.equal((await result).status, 503)
  t.notOk(opened)
  t.same(app.wss.connections, [])
})

t.test('maxConnections reached refuses with 503 without calling onConnection', async (t) => {
  let calls = 0
  const { base } = await start(t, { path: '/chat', maxConnections: 2, handler: { onConnection () { calls++; return accept } } })
  await connect(t, `${base}/chat`)
  await connect(t, `${base}/chat`)
  const { status, body } = await refusal(`${base}/chat`)
  t.equal(status, 503)
  t.match(JSON.parse(body), { code: 'FST_WSS_UNAVAILABLE', message: /maxConnections/ })
  t.equal(calls, 2)
})

t.test('with maxConnections a slot frees when a connection is Closed', async (t) => {
  const terminated = deferred()
  const { app, base } = await start(t, {
    path: '/chat',
    maxConnections: 1,
    handler: { onConnection () { return { onMessage () {}, onTerminate () { terminated.resolve() } } } }
  })
  const first = await connect(t, `${base}/chat`)
  t.equal((await refusal(`${base}/chat`)).status, 503)
  first.close()
  await terminated.promise
  t.same(app.wss.connections, [])
  await connect(t, `${base}/chat`)
  t.equal(app.wss.connections.length, 1)
})

t.test('with maxConnections handshakes in progress count: a second concurrent upgrade gets 503', async (t) => {
  const entered = deferred()
  const gate = deferred()
  let calls = 0
  const { app, base } = await start(t, {
    path: '/chat',
    maxConnections: 1,
    handler: {
      async onConnection () {
        calls++
        entered.resolve()
        await gate.promise
        return accept
      }
    }
  })
  const first = new WebSocket(`${base}/chat`)
  t.teardown(() => first.terminate())
  const opened = new Promise((resolve) => first.once('open', resolve))
  await entered.promise
  t.equal((await refusal(`${base}/chat`)).status, 503)
  t.equal(calls, 1, 'onConnection was not called for the second')
  gate.resolve()
  await opened
  t.equal(app.wss.connections.length, 1)
})

t.test('a client that goes away while an async onConnection is pending gets no connection, no onOpen, and frees its slot', async (t) => {
  const entered = deferred()
  const gate = deferred<unknown>()
  const opened: string[] = []
  const { app, base } = await start(t, {
    path: '/chat',
    maxConnections: 1,
    handler: {
      async onConnection (_wss, event) {
        if (event.request.query.who === 'second') return { onOpen () { opened.push('second') }, onMessage () {} }
        entered.resolve()
        return await gate.promise
      }
    }
  })
  // The server side of the first upgrade: resolved when the client's end of it is gone.
  const gone = deferred()
  app.server.once('upgrade', (_req, socket) => {
    socket.once('end', () => gone.resolve())
    socket.once('close', () => gone.resolve())
  })
  const first = new WebSocket(`${base}/chat?who=first`)
  first.on('error', () => {}) // closed before the connection was established
  await entered.promise
  first.terminate()
  await gone.promise
  gate.resolve({ onOpen () { opened.push('first') }, onMessage () {} })

  await connect(t, `${base}/chat?who=second`)
  t.same(opened, ['second'], 'the first connection handler\'s onOpen never ran')
  t.equal(app.wss.connections.length, 1)
  t.equal(app.wss.connections[0].request.query.who, 'second')
})

t.test('allowedOrigins as exact strings compares case-insensitively and refuses others with 403 before onConnection', async (t) => {
  let calls = 0
  const { base } = await start(t, {
    path: '/chat',
    allowedOrigins: ['https://Example.com', 'http://localhost:3000'],
    handler: { onConnection () { calls++; return accept } }
  })
  await connect(t, `${base}/chat`, { origin: 'https://example.COM' })
  await connect(t, `${base}/chat`, { origin: 'http://localhost:3000' })
  t.equal(calls, 2)
  const { status, body } = await refusal(`${base}/chat`, { origin: 'https://evil.com' })
  t.equal(status, 403)
  t.equal(JSON.parse(body).code, 'FST_WSS_ORIGIN_NOT_ALLOWED')
  t.equal((await refusal(`${base}/chat`, { origin: 'https://example.com.evil.com' })).status, 403)
  t.equal(calls, 2, 'onConnection was not called for a disallowed origin')
})

t.test('allowedOrigins as a single string allows only that origin', async (t) => {
  const { base } = await start(t, { path: '/chat', allowedOrigins: 'https://example.com', handler: { onConnection: () => accept } })
  await connect(t, `${base}/chat`, { origin: 'https://EXAMPLE.com' })
  t.equal((await refusal(`${base}/chat`, { origin: 'https://other.com' })).status, 403)
})

t.test('allowedOrigins as a RegExp allows the matching origins, even a /g one used repeatedly', async (t) => {
  let calls = 0
  const { base } = await start(t, {
    path: '/chat',
    allowedOrigins: /^https:\/\/[a-z]+\.example\.org$/g,
    handler: { onConnection () { calls++; return accept } }
  })
  await connect(t, `${base}/chat`, { origin: 'https://a.example.org' })
  await connect(t, `${base}/chat`, { origin: 'https://a.example.org' })
  await connect(t, `${base}/chat`, { origin: 'https://b.example.org' })
  t.equal((await refusal(`${base}/chat`, { origin: 'https://a.example.org.evil.com' })).status, 403)
  t.equal(calls, 3)
})

t.test('allowedOrigins as an array mixing strings and RegExps allows either', async (t) => {
  let calls = 0
  const { base } = await start(t, {
    path: '/chat',
    allowedOrigins: ['https://app.example.com', /^http:\/\/localhost:\d+$/],
    handler: { onConnection () { calls++; return accept } }
  })
  await connect(t, `${base}/chat`, { origin: 'HTTPS://APP.EXAMPLE.COM' })
  await connect(t, `${base}/chat`, { origin: 'http://localhost:8080' })
  t.equal((await refusal(`${base}/chat`, { origin: 'http://localhost' })).status, 403)
  t.equal((await refusal(`${base}/chat`, { origin: 'https://www.example.com' })).status, 403)
  t.equal(calls, 2)
})

t.test('allowedOrigins as a function decides from the Origin header', async (t) => {
  const asked: string[] = []
  let calls = 0
  const { base } = await start(t, {
    path: '/chat',
    allowedOrigins: (origin) => { asked.push(origin); return origin.endsWith('.trusted.net') },
    handler: { onConnection () { calls++; return accept } }
  })
  await connect(t, `${base}/chat`, { origin: 'https://x.trusted.net' })
  t.equal((await refusal(`${base}/chat`, { origin: 'https://x.untrusted.com' })).status, 403)
  t.same(asked, ['https://x.trusted.net', 'https://x.untrusted.com'])
  t.equal(calls, 1)
})

t.test('allowedOrigins lets a request without an Origin header through', async (t) => {
  let calls = 0
  const { base } = await start(t, {
    path: '/chat',
    allowedOrigins: ['https://example.com'],
    handler: { onConnection () { calls++; return accept } }
  })
  await connect(t, `${base}/chat`)
  t.equal(calls, 1)
})

t.test('an upgrade whose Upgrade header is not websocket is refused with 400 without calling onConnection', async (t) => {
  let calls = 0
  const { base } = await start(t, { path: '/chat', handler: { onConnection () { calls++; return accept } } })
  const { status, text } = await rawRequest(base, [
    'GET /chat HTTP/1.1',
    'Host: 127.0.0.1',
    'Connection: Upgrade',
    'Upgrade: foo',
    'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='
  ])
  t.equal(status, 400)
  t.match(text, 'the Upgrade header must be websocket')
  t.match(text, 'FST_WSS_NOT_WEBSOCKET')
  t.equal(calls, 0)
})

t.test('a raw WebSocket handshake with a header sent several times gives that header as an array', async (t) => {
  let request: ConnectionRequest | undefined
  const { base } = await start(t, {
    path: '/chat',
    handler: { onConnection (_wss, event) { request = event.request; return null } }
  })
  const { status } = await rawRequest(base, [
    'GET /chat?a=1 HTTP/1.1',
    'Host: 127.0.0.1',
    'Connection: Upgrade',
    'Upgrade: websocket',
    'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'X-Tag: first',
    'x-TAG: second',
    'X-Tag: third'
  ])
  t.equal(status, 403)
  t.same(request?.headers['x-tag'], ['first', 'second', 'third'])
  t.equal(request?.url, '/chat?a=1')
})

t.test('a non-upgrade GET on the path gets the app\'s not-found answer', async (t) => {
  let calls = 0
  const app = Fastify()
  t.teardown(() => app.close())
  app.setNotFoundHandler(async (_request, reply) => reply.code(404).send({ custom: 'not here' }))
  await app.register(wssPlugin, { path: '/chat', handler: { onConnection () { calls++; return accept } } })
  const base = await listen(app)
  const response = await fetch(httpUrl(base, '/chat'))
  t.equal(response.status, 404)
  t.same(await response.json(), { custom: 'not here' })
  t.equal(calls, 0)
})

t.test('a non-upgrade GET on the path gets the default 404 without a custom not-found handler', async (t) => {
  const { base } = await start(t, { path: '/chat', handler: { onConnection: () => accept } })
  const response = await fetch(httpUrl(base, '/chat'))
  t.equal(response.status, 404)
  await response.text()
})

t.test('the catch-all server takes upgrades to any URL and has an undefined path', async (t) => {
  const urls: string[] = []
  const { app, base } = await start(t, {
    handler: { onConnection (_wss, event) { urls.push(event.request.url); return accept } }
  })
  t.equal(app.wss.path, undefined)
  await connect(t, `${base}/a`)
  await connect(t, `${base}/b/c?x=1`)
  t.same(urls, ['/a', '/b/c?x=1'])
  t.equal(app.wss.connections.length, 2)
})

for (const routeFirst of [false, true]) {
  const when = routeFirst ? 'declared before the plugin' : 'declared after the plugin'
  t.test(`the catch-all server does not take an upgrade aimed at a plain HTTP route of the app ${when}`, async (t) => {
    let calls = 0
    const app = Fastify()
    t.teardown(() => app.close())
    if (routeFirst) app.get('/api', async () => ({ ok: true }))
    await app.register(wssPlugin, { handler: { onConnection () { calls++; return accept } } })
    if (!routeFirst) app.get('/api', async () => ({ ok: true }))
    const base = await listen(app)
    // Before the plugin, the route answers with its plain HTTP response; after
    // it, @fastify/websocket wraps the route and would upgrade it: the
    // plugin answers 404 instead. Either way nothing is upgraded.
    t.same(await attempt(`${base}/api`), routeFirst ? { refused: 200 } : { refused: 404 })
    t.equal(calls, 0, 'onConnection was not called')
    t.same(app.wss.connections, [])
    const response = await fetch(httpUrl(base, '/api'))
    t.same(await response.json(), { ok: true }, 'the route still answers plain requests')
  })
}

t.test('the catch-all server leaves a plain GET to an unknown URL to the app\'s 404', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.setNotFoundHandler(async (_request, reply) => reply.code(404).send({ custom: 'nothing' }))
  await app.register(wssPlugin, { handler: { onConnection: () => accept } })
  const base = await listen(app)
  const response = await fetch(httpUrl(base, '/unknown/place?x=1'))
  t.equal(response.status, 404)
  t.same(await response.json(), { custom: 'nothing' })
})

t.test('the catch-all server registered under a prefix takes upgrades below that prefix only', async (t) => {
  const urls: string[] = []
  const app = Fastify()
  t.teardown(() => app.close())
  let wss: WebSocketServer | undefined
  await app.register(async (child) => {
    await child.register(wssPlugin, { handler: { onConnection (_wss, event) { urls.push(event.request.url); return accept } } })
    wss = child.wss
  }, { prefix: '/ws' })
  const base = await listen(app)
  await connect(t, `${base}/ws/anything`)
  await connect(t, `${base}/ws/deeper/path?q=1`)
  t.same(urls, ['/ws/anything', '/ws/deeper/path?q=1'])
  t.equal(wss?.path, undefined)
  // A 404 answered by the root context, outside the prefix, does not run the
  // hooks that destroy a refused upgrade's socket: end it here.
  app.server.once('upgrade', (_req, socket) => { socket.once('end', () => socket.destroy()) })
  t.same(await attempt(`${base}/elsewhere`), { refused: 404 })
  t.equal(urls.length, 2)
})

t.test('app.injectWS opens an accepted connection that sends and receives messages', async (t) => {
  let request: ConnectionRequest | undefined
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wssPlugin, {
    path: '/upper',
    handler: {
      onConnection (_wss, event) {
        request = event.request
        return { onMessage (ws, e) { ws.send(String(e.data).toUpperCase()) } }
      }
    }
  })
  await app.ready()
  const ws = await app.injectWS('/upper?name=ryan', { headers: { 'X-Token': 'abc', 'X-Multi': ['1', '2'] } })
  t.teardown(() => ws.terminate())
  const reply = messages(ws, 1)
  ws.send('hello')
  t.same(await reply, ['HELLO'])
  t.equal(app.wss.connections.length, 1)
  t.equal(request?.url, '/upper?name=ryan')
  t.equal(request?.headers['x-token'], 'abc')
  t.same(request?.headers['x-multi'], ['1', '2'])
  t.equal(request?.headers['sec-websocket-version'], '13')
})

t.test('app.injectWS rejects for a refused connection', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wssPlugin, { path: '/chat', handler: { onConnection: () => null } })
  await app.ready()
  await t.rejects(app.injectWS('/chat'), /403/)
  t.same(app.wss.connections, [])
})

t.test('an upgrade that other code completed while an async onConnection ran is reported to onError (100), and the other code keeps the socket', async (t) => {
  const gate = deferred()
  const reported = deferred<ServerErrorEvent<any>>()
  const { app, base } = await start(t, {
    path: '/ws',
    handler: {
      async onConnection () {
        await gate.promise
        return { onMessage () {} }
      },
      onError (_wss, event) { reported.resolve(event) }
    }
  })
  // A second upgrader on the same HTTP server, a misconfiguration.
  const other = new WsServer({ noServer: true })
  t.teardown(() => other.close())
  app.server.on('upgrade', (req, socket, head) => {
    other.handleUpgrade(req, socket, head, (ws) => ws.send('from the other server'))
  })
  const client = await connect(t, `${base}/ws`)
  const [first] = await messages(client, 1)
  t.equal(first, 'from the other server')
  gate.resolve()
  const event = await reported.promise
  t.equal(event.errors[0].errCode, 100)
  t.match(event.errors[0].message, /handleUpgrade/)
  t.equal(app.wss.connections.length, 0, 'not counted as a connection of the plugin')
  client.send('still open')
  t.equal(client.readyState, WebSocket.OPEN, 'the other code\'s connection is left alone')
})

import t from 'tap'
import Fastify from 'fastify'
import wssPlugin from '../lib/index.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect, deferred, listen, messages, start } from './helpers/index.js'
import { rawRequest } from './helpers/http.js'

const upgrade = (path: string): string[] => [
  `GET ${path} HTTP/1.1`,
  'Host: 127.0.0.1',
  'Connection: Upgrade',
  'Upgrade: websocket',
  'Sec-WebSocket-Version: 13',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='
]

t.test('an upgrade answered by a context without the plugin is closed after handshakeTimeout, and app.close() completes', async (t) => {
  const app = Fastify()
  await app.register(async (child) => {
    await child.register(wssPlugin, { path: '/chat', handshakeTimeout: 100, handler: { onConnection: () => null } })
  }, { prefix: '/ws' })
  const base = await listen(app)
  // The root context answers 404; the socket is then closed by the server, not left open.
  const { status } = await rawRequest(base, upgrade('/elsewhere'))
  t.equal(status, 404)
  await app.close()
  t.equal(app.wss, undefined, 'the plugin lives in the child context')
})

t.test('an upgrade whose onConnection takes longer than handshakeTimeout is dropped, and others are served', async (t) => {
  const late = deferred()
  let calls = 0
  const { base } = await start(t, {
    path: '/ws',
    handshakeTimeout: 100,
    handler: {
      async onConnection (_wss, event) {
        calls++
        if (event.request.query.slow !== undefined) await late.promise
        return { onMessage (ws, e) { ws.send(e.data) } }
      }
    }
  })
  const { status, text } = await rawRequest(base, upgrade('/ws?slow'))
  t.equal(status, 0, 'no answer at all')
  t.equal(text, '')
  late.resolve()
  const ws = await connect(t, `${base}/ws`)
  ws.send('still here')
  t.same(await messages(ws, 1), ['still here'])
  t.equal(calls, 2)
})

t.test('an upgraded connection is not affected by handshakeTimeout', async (t) => {
  const { base } = await start(t, {
    path: '/ws',
    handshakeTimeout: 20,
    handler: { onConnection: () => ({ onMessage (ws, e) { ws.send(e.data) } }) }
  })
  const ws = await connect(t, `${base}/ws`)
  await new Promise((resolve) => setTimeout(resolve, 100)) // five times the timeout, idle
  ws.send('alive')
  t.same(await messages(ws, 1), ['alive'])
})

t.test('a socket that other code upgraded on the same server is left open after handshakeTimeout', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wssPlugin, { path: '/chat', handshakeTimeout: 50, handler: { onConnection: () => null } })
  // a route of the app's own, upgraded by @fastify/websocket rather than by the plugin
  app.get('/plain', { websocket: true }, (socket) => {
    socket.on('message', (data: Buffer) => socket.send(`plain: ${String(data)}`))
  })
  const base = await listen(app)
  const first = await connect(t, `${base}/plain`)
  await sleep(20)
  const second = await connect(t, `${base}/plain`) // its deadline comes after the first sweep
  await sleep(150) // three timeouts
  first.send('one')
  second.send('two')
  t.same(await messages(first, 1), ['plain: one'])
  t.same(await messages(second, 1), ['plain: two'])
})

t.test('with two servers on one app, one upgrade listener serves both, the shortest handshakeTimeout applies, and it leaves with the last', async (t) => {
  const app = Fastify()
  const before = app.server.listenerCount('upgrade')
  const late = deferred()
  t.teardown(() => late.resolve())
  await app.register(async (child) => {
    await child.register(wssPlugin, { path: '/fast', handshakeTimeout: 50, handler: { onConnection: () => null } })
  })
  await app.register(async (child) => {
    await child.register(wssPlugin, {
      path: '/slow',
      handshakeTimeout: 60_000,
      handler: {
        async onConnection () {
          await late.promise
          return null
        }
      }
    })
  })
  const base = await listen(app)
  const listeners = app.server.listenerCount('upgrade')
  const { status, text } = await rawRequest(base, upgrade('/slow'))
  t.equal(status, 0, 'dropped after 50 ms, without an answer')
  t.equal(text, '')
  await app.close()
  t.equal(app.server.listenerCount('upgrade'), before, 'no listener left once both have closed')
  t.ok(listeners > before, 'listening while open')
})

import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import t from 'tap'
import wssPlugin, { defaults, type WebSocketServer, type WssPluginOptions } from '../lib/index.js'
import { connect, listen, messages, refusal, start } from './helpers/index.js'
import { httpUrl } from './helpers/http.js'

type Test = typeof t

const handler = { onConnection () { return { onMessage () {} } } }

/** A fresh app, closed at the end of the test. */
function fresh (test: Test): FastifyInstance {
  const app = Fastify()
  test.teardown(() => app.close())
  return app
}

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** `register` rejects with FST_WSS_INVALID_OPTION and a message naming `name`. */
async function rejectsOption (test: Test, options: unknown, name: string): Promise<void> {
  const app = fresh(test)
  await test.rejects(async () => { await app.register(wssPlugin, options as WssPluginOptions<any>) }, {
    code: 'FST_WSS_INVALID_OPTION',
    message: new RegExp(`option "${escapeRegExp(name)}"`)
  })
}

t.test('register rejects a missing handler, naming "handler"', async (t) => {
  await rejectsOption(t, {}, 'handler')
  await rejectsOption(t, { handler: null }, 'handler')
  await rejectsOption(t, { handler: 'chat' }, 'handler')
})

t.test('register rejects a handler without an onConnection function, naming "handler"', async (t) => {
  await rejectsOption(t, { handler: {} }, 'handler')
  await rejectsOption(t, { handler: { onConnection: 'yes' } }, 'handler')
})

for (const name of ['onOpen', 'onTerminate', 'onError']) {
  t.test(`register rejects a handler.${name} that is not a function, naming "handler.${name}"`, async (t) => {
    await rejectsOption(t, { handler: { ...handler, [name]: 'nope' } }, `handler.${name}`)
    await rejectsOption(t, { handler: { ...handler, [name]: null } }, `handler.${name}`)
  })
}

t.test('register rejects an unknown dataType, naming "dataType"', async (t) => {
  await rejectsOption(t, { handler, dataType: 'binary' }, 'dataType')
  await rejectsOption(t, { handler, dataType: 1 }, 'dataType')
})

t.test('register rejects a path that is not a string or does not start with "/", naming "path"', async (t) => {
  await rejectsOption(t, { handler, path: 42 }, 'path')
  await rejectsOption(t, { handler, path: 'chat' }, 'path')
  await rejectsOption(t, { handler, path: '' }, 'path')
})

for (const name of ['maxPayload', 'maxConnections', 'maxPendingMessages', 'maxBackpressure', 'closeTimeout',
  'handshakeTimeout', 'shutdownTimeout', 'maxPendingBytes', 'maxBufferedBytes', 'maxDepth']) {
  t.test(`register rejects a ${name} that is not a positive integer, naming "${name}"`, async (t) => {
    // Infinity is maxConnections' default, so it is accepted there (below)
    const values = [0, -1, 1.5, '10', NaN, null, {}, () => 10, ...(name === 'maxConnections' ? [] : [Infinity])]
    for (const value of values) {
      await rejectsOption(t, { handler, [name]: value }, name)
    }
  })
}

for (const name of ['closeTimeout', 'handshakeTimeout', 'shutdownTimeout']) {
  t.test(`register rejects a ${name} past 2^31 - 1 ms, which Node's timers would fire at once, naming "${name}"`, async (t) => {
    await rejectsOption(t, { handler, [name]: 2 ** 31 }, name)
    await rejectsOption(t, { handler, [name]: 3e9 }, name)
  })
}

t.test('register rejects a heartbeat.interval past 2^31 - 1 ms, naming "heartbeat.interval"', async (t) => {
  await rejectsOption(t, { handler, heartbeat: { interval: 3e9 } }, 'heartbeat.interval')
})

t.test('register rejects an invalid rateLimit, naming the key', async (t) => {
  await rejectsOption(t, { handler, rateLimit: 5 }, 'rateLimit')
  await rejectsOption(t, { handler, rateLimit: null }, 'rateLimit')
  await rejectsOption(t, { handler, rateLimit: { timeWindow: 1000 } }, 'rateLimit.max')
  await rejectsOption(t, { handler, rateLimit: { max: 0, timeWindow: 1000 } }, 'rateLimit.max')
  await rejectsOption(t, { handler, rateLimit: { max: 10 } }, 'rateLimit.timeWindow')
  await rejectsOption(t, { handler, rateLimit: { max: 10, timeWindow: 2 ** 31 } }, 'rateLimit.timeWindow')
  await rejectsOption(t, { handler, rateLimit: { max: 10, timeWindow: 1000, action: 'drop' } }, 'rateLimit.action')
})

t.test('register accepts every exported default passed explicitly, and the largest durations', async (t) => {
  const app = fresh(t)
  await app.register(wssPlugin, { handler, path: '/all', ...defaults, heartbeat: { ...defaults.heartbeat }, rateLimit: { max: 1, timeWindow: 2 ** 31 - 1 } })
  await app.ready()
  t.equal(app.wss.dataType, defaults.dataType)
  const other = fresh(t)
  await other.register(wssPlugin, { handler, maxConnections: Infinity, closeTimeout: 2 ** 31 - 1, shutdownTimeout: 2 ** 31 - 1, handshakeTimeout: 2 ** 31 - 1, heartbeat: { interval: 2 ** 31 - 1 } })
  await other.ready()
  t.equal(other.wss.path, undefined)
})

t.test('register rejects a heartbeat that is not a boolean or an object, naming "heartbeat"', async (t) => {
  for (const value of ['yes', 1, null]) {
    await rejectsOption(t, { handler, heartbeat: value }, 'heartbeat')
  }
})

t.test('register rejects an invalid heartbeat.interval, naming "heartbeat.interval"', async (t) => {
  for (const interval of [0, -1, 1.5, '10']) {
    await rejectsOption(t, { handler, heartbeat: { interval } }, 'heartbeat.interval')
  }
})

t.test('register rejects allowedOrigins with an entry that is neither a string nor a RegExp, naming "allowedOrigins"', async (t) => {
  await rejectsOption(t, { handler, allowedOrigins: ['https://example.com', 5] }, 'allowedOrigins')
  await rejectsOption(t, { handler, allowedOrigins: [null] }, 'allowedOrigins')
  await rejectsOption(t, { handler, allowedOrigins: 42 }, 'allowedOrigins')
  await rejectsOption(t, { handler, allowedOrigins: { origin: 'https://example.com' } }, 'allowedOrigins')
})

t.test('register rejects a perMessageDeflate of a wrong type, naming "perMessageDeflate"', async (t) => {
  await rejectsOption(t, { handler, perMessageDeflate: 'yes' }, 'perMessageDeflate')
  await rejectsOption(t, { handler, perMessageDeflate: 1 }, 'perMessageDeflate')
})

t.test('register rejects an adapter without the cluster adapter methods, naming "adapter"', async (t) => {
  await rejectsOption(t, { handler, adapter: {} }, 'adapter')
  await rejectsOption(t, { handler, adapter: null }, 'adapter')
  await rejectsOption(t, { handler, adapter: { open () {}, publish () {}, subscribe () {}, unsubscribe () {} } }, 'adapter')
})

t.test('valid values of every option register fine', async (t) => {
  const valid: Array<Partial<WssPluginOptions<any>>> = [
    {},
    { path: '/chat', dataType: 'text' },
    { path: '/rooms/:room', dataType: 'blob' },
    { dataType: 'object' },
    { heartbeat: true },
    { heartbeat: false },
    { heartbeat: { interval: 50 } },
    { maxPayload: 1, maxConnections: 1, maxPendingMessages: 1, maxBackpressure: 1, closeTimeout: 1 },
    { allowedOrigins: 'https://example.com' },
    { allowedOrigins: /^https:\/\/.*\.example\.com$/ },
    { allowedOrigins: ['https://example.com', /\.example\.org$/] },
    { allowedOrigins: [] },
    { allowedOrigins: (origin: string) => origin.endsWith('.example.com') },
    { perMessageDeflate: true },
    { perMessageDeflate: false },
    { perMessageDeflate: { threshold: 0 } },
    { handler: { ...handler, onOpen () {}, onTerminate () {}, onError () {} } }
  ]
  for (const options of valid) {
    const app = fresh(t)
    await app.register(wssPlugin, { handler, ...options })
    await app.ready()
    t.ok(app.wss, `registered with ${JSON.stringify(Object.keys(options))}`)
    await app.close()
  }
})

t.test('registering twice in the same context rejects with FST_WSS_ALREADY_REGISTERED', async (t) => {
  const app = fresh(t)
  await app.register(wssPlugin, { handler, path: '/a' })
  await t.rejects(async () => { await app.register(wssPlugin, { handler, path: '/b' }) }, {
    code: 'FST_WSS_ALREADY_REGISTERED'
  })
})

t.test('registering in a child context when an ancestor has a server rejects with FST_WSS_ALREADY_REGISTERED', async (t) => {
  const app = fresh(t)
  await app.register(wssPlugin, { handler, path: '/a' })
  await t.rejects(async () => {
    await app.register(async (child) => {
      await child.register(wssPlugin, { handler, path: '/b' })
    })
  }, { code: 'FST_WSS_ALREADY_REGISTERED' })
})

t.test('two sibling contexts each get their own server on their own path', async (t) => {
  const app = fresh(t)
  const servers: Record<string, WebSocketServer> = {}
  const seen: string[] = []
  for (const name of ['a', 'b']) {
    await app.register(async (child) => {
      await child.register(wssPlugin, {
        path: `/${name}`,
        handler: {
          onConnection (wss) {
            seen.push(`${name}:${wss.path as string}`)
            return { onMessage (ws) { ws.send(`hello from ${name}`) } }
          }
        }
      })
      servers[name] = child.wss
    })
  }
  const base = await listen(app)
  t.not(servers.a, servers.b, 'two different server objects')
  t.equal(servers.a.path, '/a')
  t.equal(servers.b.path, '/b')
  t.notOk(app.hasDecorator('wss'), 'the parent context has no server')

  const a = await connect(t, `${base}/a`)
  a.send('who')
  t.same(await messages(a, 1), ['hello from a'])
  const b = await connect(t, `${base}/b`)
  b.send('who')
  t.same(await messages(b, 1), ['hello from b'])
  t.same(seen, ['a:/a', 'b:/b'], 'each connection went to its own handler')
  t.equal(servers.a.connections.length, 1)
  t.equal(servers.b.connections.length, 1)
  t.not(servers.a.connections[0], servers.b.connections[0])
})

t.test('an existing @fastify/websocket registration is reused: the app\'s own route and the plugin\'s path both work', async (t) => {
  const app = fresh(t)
  await app.register(websocket)
  await app.register(wssPlugin, {
    path: '/wss',
    handler: { onConnection () { return { onMessage (ws, event) { ws.send(`wss:${String(event.data)}`) } } } }
  })
  app.get('/own', { websocket: true }, (socket) => {
    socket.on('message', (data: Buffer) => socket.send(`own:${data.toString()}`))
  })
  const base = await listen(app)

  const own = await connect(t, `${base}/own`)
  own.send('one')
  t.same(await messages(own, 1), ['own:one'])
  const wss = await connect(t, `${base}/wss`)
  wss.send('two')
  t.same(await messages(wss, 1), ['wss:two'])
  t.equal(app.wss.connections.length, 1, 'the app\'s own route is not a plugin connection')
})

t.test('an onRequest hook of the context that replies 401 stops the upgrade with 401 and onConnection is never called', async (t) => {
  let calls = 0
  const app = fresh(t)
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers.authorization !== 'Bearer ok') {
      await reply.code(401).send({ error: 'no token' })
    }
  })
  await app.register(wssPlugin, {
    path: '/chat',
    handler: { onConnection () { calls++; return { onMessage () {} } } }
  })
  const base = await listen(app)

  const refused = await refusal(`${base}/chat`)
  t.equal(refused.status, 401)
  t.same(JSON.parse(refused.body), { error: 'no token' })
  t.equal(calls, 0, 'onConnection was not called')

  const plain = await fetch(httpUrl(base, '/chat'))
  t.equal(plain.status, 401, 'a plain GET is stopped by the hook too')
  await plain.text()

  await connect(t, `${base}/chat`, { headers: { authorization: 'Bearer ok' } })
  t.equal(calls, 1, 'with the token the hook lets it through to onConnection')
})

t.test('the context\'s onRequest, preValidation and preHandler hooks run before onConnection', async (t) => {
  const order: string[] = []
  const app = fresh(t)
  app.addHook('onRequest', async () => { order.push('onRequest') })
  app.addHook('preValidation', async () => { order.push('preValidation') })
  app.addHook('preHandler', async () => { order.push('preHandler') })
  await app.register(wssPlugin, {
    path: '/chat',
    handler: { onConnection () { order.push('onConnection'); return { onMessage () {} } } }
  })
  const base = await listen(app)
  await connect(t, `${base}/chat`)
  t.same(order, ['onRequest', 'preValidation', 'preHandler', 'onConnection'])
})

t.test('start() helper: the plugin decorates the context it is registered in', async (t) => {
  const { app } = await start(t, { handler, path: '/x' })
  t.ok(app.hasDecorator('wss'))
  t.equal(app.wss.path, '/x')
  t.equal(app.wss.handler, handler)
})

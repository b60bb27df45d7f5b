import { once } from 'node:events'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import rateLimit from '@fastify/rate-limit'
import { Type } from '@fastify/type-provider-typebox'
import t from 'tap'
import wssPlugin, { type ConnectionRequest, type WebSocketServer } from '../lib/index.js'
import { connect, deferred, listen, messages, refusal } from './helpers/index.js'
import { captureLog } from './helpers/log.js'
import { until } from './helpers/until.js'

const echo = { onMessage (ws: any, event: any) { ws.send(String(event.data)) } }

t.test('@fastify/jwt verified once in an onRequest hook: request.user reaches onConnection through fastifyRequest', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(jwt, { secret: 'a secret of the tests' })
  let verifications = 0
  const users: unknown[] = []
  await app.register(async (child) => {
    child.addHook('onRequest', async (request) => {
      verifications++
      await request.jwtVerify()
    })
    await child.register(wssPlugin, {
      path: '/notifications',
      handler: {
        onConnection (_wss, { fastifyRequest }) {
          users.push(fastifyRequest.user)
          return echo
        }
      }
    })
  })
  const base = await listen(app)
  const token = app.jwt.sign({ sub: 'ada' })
  const client = await connect(t, `${base}/notifications`, { headers: { authorization: `Bearer ${token}` } })
  client.send('hi')
  t.same(await messages(client, 1), ['hi'])
  t.equal(verifications, 1, 'the token was verified once, in the hook')
  t.match(users, [{ sub: 'ada' }], 'onConnection read request.user')
  t.equal((await refusal(`${base}/notifications`)).status, 401, 'without a token the hook refuses with 401')
  t.equal(users.length, 1, 'onConnection was not called for the refused upgrade')
})

t.test('route.config.rateLimit of @fastify/rate-limit applies to one server only', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(rateLimit, { global: false })
  await app.register(async (child) => {
    await child.register(wssPlugin, { path: '/strict', route: { config: { rateLimit: { max: 2, timeWindow: 60_000 } } }, handler: { onConnection: () => echo } })
  })
  await app.register(async (child) => {
    await child.register(wssPlugin, { path: '/free', handler: { onConnection: () => echo } })
  })
  const base = await listen(app)
  await connect(t, `${base}/strict`)
  await connect(t, `${base}/strict`)
  t.equal((await refusal(`${base}/strict`)).status, 429, 'the third upgrade on /strict is refused with 429')
  for (let i = 0; i < 3; i++) await connect(t, `${base}/free`)
  t.pass('/free is not limited')
})

t.test('a TypeBox schema of route.schema validates params and querystring before onConnection (400), and event.request has the coerced values', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const requests: ConnectionRequest[] = []
  await app.register(wssPlugin, {
    path: '/rooms/:room',
    route: {
      schema: {
        params: Type.Object({ room: Type.String({ pattern: '^[a-z]+$' }) }),
        querystring: Type.Object({ since: Type.Integer({ minimum: 0 }) })
      }
    },
    handler: { onConnection (_wss, { request }) { requests.push(request); return echo } }
  })
  const base = await listen(app)
  await connect(t, `${base}/rooms/lobby?since=42`)
  t.same(requests[0].params, { room: 'lobby' })
  t.equal(requests[0].query.since as unknown, 42, 'querystring coerced to an integer by the schema')
  const bad = await refusal(`${base}/rooms/Lobby1?since=42`)
  t.equal(bad.status, 400)
  t.match(JSON.parse(bad.body), { code: 'FST_ERR_VALIDATION' })
  t.equal((await refusal(`${base}/rooms/lobby?since=-1`)).status, 400)
  t.equal(requests.length, 1, 'onConnection ran only for the valid request')
})

t.test('route hooks, logLevel and constraints of the route option apply to the upgrade route', async (t) => {
  const capture = captureLog()
  const app = Fastify({ logger: { level: 'info', stream: capture.stream } })
  t.teardown(() => app.close())
  const order: string[] = []
  await app.register(wssPlugin, {
    path: '/hooked',
    route: {
      logLevel: 'warn',
      onRequest: async () => { order.push('onRequest') },
      preHandler: async () => { order.push('preHandler') },
      constraints: { host: 'ws.example' }
    },
    handler: { onConnection () { order.push('onConnection'); return echo } }
  })
  const base = await listen(app)
  await connect(t, `${base}/hooked`, { headers: { host: 'ws.example' } })
  t.same(order, ['onRequest', 'preHandler', 'onConnection'])
  t.notOk(capture.lines.some((line) => line.msg === 'incoming request'), 'logLevel warn hides the request logs of the route')
  t.equal((await refusal(`${base}/hooked`, { headers: { host: 'other.example' } })).status, 404, 'the host constraint applies')
  const withArray = Fastify()
  t.teardown(() => withArray.close())
  await withArray.register(wssPlugin, { path: '/a', route: { preHandler: [async () => { order.push('array') }], onResponse: [async () => { order.push('onResponse') }] }, handler: { onConnection: () => null } })
  const other = await listen(withArray)
  t.equal((await refusal(`${other}/a`)).status, 403)
  t.ok(order.includes('array'), 'a preHandler array runs before onConnection too')
  await until(() => order.includes('onResponse'), 'the route onResponse of the refused upgrade ran')
})

t.test('register rejects a route option that sets a key the plugin owns, naming it', async (t) => {
  for (const key of ['method', 'url', 'handler', 'websocket', 'wsHandler']) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(wssPlugin, { handler: { onConnection: () => null }, route: { [key]: 'x' } as any }) }, { code: 'FST_WSS_INVALID_OPTION', message: new RegExp(`"route\\.${key}"`) })
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(wssPlugin, { handler: { onConnection: () => null }, route: 'GET' as any }) }, { message: /"route"/ })
})

t.test('app.injectWS works on the root when the plugin lives in a child context, and reaches each sibling server', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const servers: Array<WebSocketServer<any>> = []
  for (const path of ['/a', '/b']) {
    await app.register(async (child) => {
      await child.register(wssPlugin, { path, handler: { onConnection: () => ({ onMessage (ws: any, event: any) { ws.send(`${path}:${String(event.data)}`) } }) } })
      servers.push(child.wss)
    })
  }
  await app.ready()
  for (const path of ['/a', '/b']) {
    const client = await app.injectWS(path)
    client.send('x')
    const [data] = await once(client, 'message') as [Buffer]
    t.equal(String(data), `${path}:x`)
    client.terminate()
  }
})

t.test('under app.injectWS, what onOpen sends reaches the awaited client, remoteAddress is 127.0.0.1, a client close reaches onTerminate at once, and closing the app reports no error', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const errors: unknown[] = []
  const terminated = deferred<{ code: number }>()
  let remoteAddress: unknown
  await app.register(wssPlugin, {
    path: '/chat',
    handler: {
      onConnection (_wss, { request, fastifyRequest }) {
        remoteAddress = request.remoteAddress
        t.equal(fastifyRequest.ip, '127.0.0.1', 'request.ip, for key generators')
        return {
          onOpen (ws) { ws.send('welcome') },
          onMessage (ws, event) { ws.send(`echo:${String(event.data)}`) },
          onTerminate (_ws, event) { terminated.resolve(event) }
        }
      },
      onError (_wss, event) { errors.push(event) }
    }
  })
  await app.ready()
  const client = await app.injectWS('/chat')
  const [welcome] = await once(client, 'message') as [Buffer]
  t.equal(String(welcome), 'welcome', 'the message sent in onOpen is received after await app.injectWS()')
  t.equal(remoteAddress, '127.0.0.1')
  client.close()
  t.equal((await terminated.promise).code, 1005, 'onTerminate ran when the close handshake completed, not closeTimeout later')
  const other = await app.injectWS('/chat')
  other.terminate()
  await app.close()
  t.same(errors, [], 'no error was reported')
})

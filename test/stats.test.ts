import t from 'tap'
import type WebSocket from 'ws'
import type { WebSocketConnection } from '../lib/index.js'
import { closed, connect, deferred, messages, refusal, start } from './helpers/index.js'
import { until } from './helpers/until.js'

type Connection = WebSocketConnection<any>

const zero = {
  connections: 0,
  accepted: 0,
  refused: {},
  closed: {},
  messagesIn: 0,
  messagesOut: 0,
  bytesIn: 0,
  bytesOut: 0,
  dropped: 0,
  rateLimited: 0,
  errors: {}
}

const echo = {
  onConnection () {
    return { onMessage (ws: Connection, e: { data: unknown }) { ws.send(e.data) } }
  }
}

t.test('stats() starts at zero and is a fresh plain object on each call, which changing changes nothing', async (t) => {
  const { app } = await start(t, { handler: echo })
  const stats = app.wss.stats()
  t.same(stats, zero)
  t.equal(Object.getPrototypeOf(stats), Object.prototype, 'a plain object')
  t.not(app.wss.stats(), stats, 'a new object on each call')
  stats.accepted = 42
  stats.refused[403] = 1
  t.same(app.wss.stats(), zero, 'changing a snapshot changes nothing')
})

t.test('an accepted upgrade counts in accepted and connections; a close counts under its code and leaves connections', async (t) => {
  const { app, base } = await start(t, { handler: echo })
  const a = await connect(t, base)
  const b = await connect(t, base)
  const c = await connect(t, base)
  t.match(app.wss.stats(), { accepted: 3, connections: 3, closed: {} })

  a.close(1000)
  b.close(4001, 'bye')
  await Promise.all([closed(a), closed(b)])
  await until(() => app.wss.stats().connections === 1, 'two connections closed')
  t.match(app.wss.stats(), { accepted: 3, connections: 1 })
  t.same(app.wss.stats().closed, { 1000: 1, 4001: 1 })

  c.terminate() // no close frame: 1006
  await until(() => app.wss.stats().connections === 0, 'the third closed')
  t.same(app.wss.stats().closed, { 1000: 1, 4001: 1, 1006: 1 })
  t.equal(app.wss.stats().accepted, 3, 'accepted does not go down')
})

t.test('refused counts each refused upgrade by HTTP status, whatever refused it: onConnection, a hook, a schema, maxConnections; a plain GET is not counted', async (t) => {
  const { app, base } = await start(t, {
    maxConnections: 1,
    route: {
      schema: { querystring: { type: 'object', properties: { n: { type: 'integer' } } } },
      onRequest: async (request: any, reply: any) => {
        if (request.query.hook === '1') await reply.code(401).send({ denied: true })
      }
    },
    handler: {
      onConnection (_wss: unknown, { request }: any) {
        if (request.query.refuse === 'null') return null
        if (request.query.refuse === 'throw') throw Object.assign(new Error('teapot'), { statusCode: 418 })
        return echo.onConnection()
      }
    }
  })
  const http = base.replace('ws:', 'http:')
  t.equal((await fetch(`${http}/`)).status, 404, 'a plain GET on the path')
  t.same(app.wss.stats().refused, {}, 'a plain GET is no refused upgrade')

  t.equal((await refusal(`${base}/?refuse=null`)).status, 403)
  t.same(app.wss.stats().refused, { 403: 1 })
  t.equal((await refusal(`${base}/?refuse=null`)).status, 403)
  t.equal((await refusal(`${base}/?refuse=throw`)).status, 418)
  t.equal((await refusal(`${base}/?hook=1`)).status, 401)
  t.equal((await refusal(`${base}/?n=abc`)).status, 400)
  t.same(app.wss.stats().refused, { 403: 2, 418: 1, 401: 1, 400: 1 })

  await connect(t, base)
  t.equal((await refusal(base)).status, 503, 'maxConnections reached')
  t.same(app.wss.stats().refused, { 403: 2, 418: 1, 401: 1, 400: 1, 503: 1 })
  t.match(app.wss.stats(), { accepted: 1, connections: 1 })
})

t.test('messagesIn and bytesIn count each message received and its payload bytes; messagesOut and bytesOut each message sent', async (t) => {
  const { app, base } = await start(t, { handler: echo })
  const ws = await connect(t, base)
  ws.send('héllo') // 6 bytes of UTF-8
  ws.send(Buffer.from([1, 2, 3]))
  t.same(await messages(ws, 2), ['héllo', '\u0001\u0002\u0003'])
  t.match(app.wss.stats(), { messagesIn: 2, bytesIn: 9, messagesOut: 2, bytesOut: 9 })

  ws.send('')
  t.same(await messages(ws, 1), [''])
  t.match(app.wss.stats(), { messagesIn: 3, bytesIn: 9, messagesOut: 3, bytesOut: 9 }, 'an empty message counts, with no bytes')
})

t.test('broadcast and publish count one message per recipient, and its payload bytes times the recipients', async (t) => {
  const { app, base } = await start(t, {
    handler: {
      onConnection () {
        return { onOpen (ws: Connection) { ws.subscribe('news') }, onMessage () {} }
      }
    }
  })
  const clients = await Promise.all([connect(t, base), connect(t, base), connect(t, base)])
  await until(() => app.wss.connections.every((ws) => ws.topics.length === 1), 'all subscribed')
  const received = clients.map(async (ws) => await messages(ws, 2))
  t.equal(app.wss.broadcast('hé'), 3) // 3 bytes
  t.equal(app.wss.publish('news', Buffer.alloc(10), { except: app.wss.connections[0] }), 2)
  t.equal(app.wss.publish('sports', 'nobody'), 0)
  await Promise.all(received.slice(1))
  t.match(app.wss.stats(), { messagesOut: 5, bytesOut: 3 * 3 + 2 * 10, messagesIn: 0 })
})

t.test('a send to a connection that is not Connected counts nothing', async (t) => {
  const sent = deferred<boolean>()
  const { app, base } = await start(t, {
    handler: {
      onConnection () {
        return { onMessage () {}, onTerminate (ws: Connection) { sent.resolve(ws.send('too late')) } }
      }
    }
  })
  const ws = await connect(t, base)
  ws.close()
  t.equal(await sent.promise, false)
  t.match(app.wss.stats(), { messagesOut: 0, bytesOut: 0 })
})

t.test('dropped counts a slow reader dropped for maxBackpressure; its close counts under 1006', async (t) => {
  const terminated = deferred()
  const { app, base } = await start(t, {
    maxBackpressure: 64 * 1024,
    handler: {
      onConnection () {
        return {
          onMessage (ws: Connection) {
            const chunk = 'x'.repeat(16 * 1024)
            for (let i = 0; i < 4096 && ws.send(chunk); i++);
          },
          onTerminate () { terminated.resolve() }
        }
      }
    }
  })
  const slow = await connect(t, base);
  (slow as any)._socket.pause()
  slow.send('flood')
  await terminated.promise
  const stats = app.wss.stats()
  t.equal(stats.dropped, 1)
  t.same(stats.closed, { 1006: 1 })
  t.equal(stats.connections, 0)
  t.ok(stats.messagesOut >= 4, 'the messages written before the drop count')
  t.equal(stats.bytesOut, stats.messagesOut * 16 * 1024, 'each with its bytes; the one that dropped it is not counted')
})

t.test("rateLimited counts a connection closed for its rateLimit (action 'close') once, with errors[420] and closed[1008]", async (t) => {
  const { app, base } = await start(t, {
    rateLimit: { max: 3, timeWindow: 10_000, action: 'close' },
    handler: { onConnection: () => ({ onMessage () {}, onError () {} }) }
  })
  const ws = await connect(t, base)
  const gone = closed(ws)
  for (let i = 0; i < 10; i++) ws.send(String(i))
  t.equal((await gone).code, 1008)
  await until(() => app.wss.stats().connections === 0, 'closed')
  const stats = app.wss.stats()
  t.equal(stats.rateLimited, 1)
  t.same(stats.errors, { 420: 1 })
  t.same(stats.closed, { 1008: 1 })
  t.ok(stats.messagesIn >= 4, 'the messages past the limit were received all the same')
})

t.test("rateLimited counts each window in which a connection reached its rateLimit (action 'pause')", async (t) => {
  const delivered: string[] = []
  const { app, base } = await start(t, {
    rateLimit: { max: 2, timeWindow: 100 },
    handler: {
      onConnection () {
        return { onMessage (ws: Connection, e: { data: string }) { delivered.push(e.data); ws.send(e.data) } }
      }
    }
  })
  const ws = await connect(t, base)
  for (let i = 0; i < 5; i++) ws.send(String(i))
  t.same(await messages(ws, 5), ['0', '1', '2', '3', '4'], 'all delivered, paced')
  const { rateLimited } = app.wss.stats()
  t.ok(rateLimited >= 2, `the limit was reached in at least two windows (${rateLimited})`)
  t.ok(rateLimited <= 3, 'at most once per window of two messages')
})

t.test('errors counts every error by errCode, whether it reached an onError or the log', async (t) => {
  const { app, base } = await start(t, {
    dataType: 'object',
    handler: {
      onConnection (_wss: unknown, { request }: any) {
        if (request.query.fail === '1') throw new Error('database down') // 500 and errCode 100, to the log
        return {
          onMessage (_ws: Connection, e: { data: any }) { if (e.data.boom === true) throw new Error('boom') },
          onError () {}
        }
      }
    }
  }, { logger: false })
  const ws: WebSocket = await connect(t, base)
  ws.send('not json')
  ws.send('{"also": not json}')
  ws.send(JSON.stringify({ boom: true }))
  ws.send(JSON.stringify({ ok: true }))
  await until(() => app.wss.stats().messagesIn === 4, 'four messages read')
  t.equal((await refusal(`${base}/?fail=1`)).status, 500)
  t.same(app.wss.stats().errors, { 300: 2, 201: 1, 100: 1 })
})

t.test("the route's own onSend hooks, one or an array, still run on a refused upgrade, which is counted", async (t) => {
  for (const onSend of ['one', 'array'] as const) {
    const seen: string[] = []
    const hook = async (_request: unknown, reply: any, payload: unknown): Promise<unknown> => {
      seen.push(onSend)
      reply.header('x-seen', onSend)
      return payload
    }
    const { app, base } = await start(t, {
      route: { onSend: onSend === 'one' ? hook : [hook] },
      handler: { onConnection: () => null }
    })
    t.equal((await refusal(base)).status, 403)
    t.same(seen, [onSend], `the route's onSend (${onSend}) ran`)
    t.same(app.wss.stats().refused, { 403: 1 })
  }
})

import { AsyncLocalStorage } from 'node:async_hooks'
import diagnostics from 'node:diagnostics_channel'
import t, { type Test } from 'tap'
import type { WebSocketConnection, WebSocketServer, WssDiagnostics } from '../lib/index.js'
import { closed, connect, deferred, messages, refusal, start } from './helpers/index.js'
import { until } from './helpers/until.js'

type Connection = WebSocketConnection<any>
type Name = keyof WssDiagnostics

/** The messages of a channel about `wss` (every server of the process publishes on the same channels), until the end of the test. */
function listen<K extends Name> (test: Test, name: K, wss: () => WebSocketServer<any>): Array<WssDiagnostics<any>[K]> {
  const seen: Array<WssDiagnostics<any>[K]> = []
  const subscriber = (message: unknown): void => {
    const typed = message as WssDiagnostics<any>[K]
    if (typed.wss === wss()) seen.push(typed)
  }
  diagnostics.subscribe(name, subscriber)
  test.teardown(() => { diagnostics.unsubscribe(name, subscriber) })
  return seen
}

const echo = {
  onConnection () {
    return { onMessage (ws: Connection, e: { data: unknown }) { ws.send(e.data) } }
  }
}

t.test('fastify-wss:connection:opened and :closed carry the server, the connection, and at the close its code, reason and duration', async (t) => {
  const { app, base } = await start(t, { handler: echo })
  const opened = listen(t, 'fastify-wss:connection:opened', () => app.wss)
  const closes = listen(t, 'fastify-wss:connection:closed', () => app.wss)
  const ws = await connect(t, base)
  t.equal(opened.length, 1)
  t.same(Object.keys(opened[0]).sort(), ['connection', 'wss'])
  t.equal(opened[0].wss, app.wss)
  t.equal(opened[0].connection, app.wss.connections[0])
  const connection = opened[0].connection

  ws.close(4000, 'bye')
  await closed(ws)
  await until(() => closes.length === 1, 'the close is published')
  t.same(Object.keys(closes[0]).sort(), ['code', 'connection', 'duration', 'reason', 'wss'])
  t.equal(closes[0].wss, app.wss)
  t.equal(closes[0].connection, connection)
  t.equal(closes[0].code, 4000)
  t.equal(closes[0].reason, 'bye')
  t.type(closes[0].duration, 'number')
  t.ok(closes[0].duration >= 0, 'the duration is how long it was open, in ms')
})

t.test('fastify-wss:message:received and :sent carry the connection, the payload and whether it is binary; a broadcast publishes once per recipient', async (t) => {
  const { app, base } = await start(t, {
    dataType: 'blob',
    handler: {
      onConnection () {
        // answers in kind: text as text, bytes as bytes
        return { onMessage (ws: Connection, e: { data: Buffer, binary: boolean }) { ws.send(e.binary ? e.data : e.data.toString()) } }
      }
    }
  })
  const received = listen(t, 'fastify-wss:message:received', () => app.wss)
  const sent = listen(t, 'fastify-wss:message:sent', () => app.wss)
  const a = await connect(t, base)
  const b = await connect(t, base)
  const [ca, cb] = app.wss.connections
  a.send('hi')
  a.send(Buffer.from([7, 8]))
  await messages(a, 2)
  t.same(received.map((m) => [m.connection, m.data, m.binary]), [[ca, Buffer.from('hi'), false], [ca, Buffer.from([7, 8]), true]])
  t.ok(received.every((m) => Buffer.isBuffer(m.data)), 'a received payload is a Buffer, before decoding')
  t.same(sent.map((m) => [m.connection, m.data, m.binary]), [[ca, 'hi', false], [ca, Buffer.from([7, 8]), true]])
  t.same(Object.keys(sent[0]).sort(), ['binary', 'connection', 'data', 'wss'])

  sent.length = 0
  const both = [messages(a, 1), messages(b, 1)]
  t.equal(app.wss.broadcast('all'), 2)
  await Promise.all(both)
  t.same(sent.map((m) => m.connection), [ca, cb], 'one message per recipient')
  t.ok(sent.every((m) => Buffer.from('all').equals(m.data as Buffer) && !m.binary), 'the framed payload, as text')
  sent.length = 0
  app.wss.broadcast(Buffer.from([1]), { except: ca })
  t.same(sent.map((m) => [m.connection, m.binary]), [[cb, true]])
})

t.test('fastify-wss:handshake:refused carries the server, the Fastify request and the status', async (t) => {
  const { app, base } = await start(t, { path: '/chat', handler: { onConnection: () => null } })
  const refused = listen(t, 'fastify-wss:handshake:refused', () => app.wss)
  t.equal((await refusal(`${base}/chat?who=eve`)).status, 403)
  t.equal(refused.length, 1)
  t.same(Object.keys(refused[0]).sort(), ['request', 'status', 'wss'])
  t.equal(refused[0].status, 403)
  t.equal(refused[0].request.url, '/chat?who=eve')
  t.equal(refused[0].request.headers.upgrade, 'websocket')
})

t.test('fastify-wss:error carries the errCode, the error and the connection, or no connection for an error of the server', async (t) => {
  const { app, base } = await start(t, {
    dataType: 'object',
    handler: {
      onConnection (_wss: unknown, { request }: any) {
        if (request.query.fail === '1') throw new Error('database down')
        return { onMessage () {}, onError () {} }
      },
      onError () {}
    }
  })
  const errors = listen(t, 'fastify-wss:error', () => app.wss)
  const ws = await connect(t, base)
  ws.send('not json')
  await until(() => errors.length === 1, 'the invalid JSON is published')
  t.same(Object.keys(errors[0]).sort(), ['connection', 'errCode', 'error', 'wss'])
  t.equal(errors[0].errCode, 300)
  t.equal(errors[0].connection, app.wss.connections[0])
  t.match(errors[0].error, { code: 'FST_WSS_INVALID_JSON' })

  t.equal((await refusal(`${base}/?fail=1`)).status, 500)
  t.equal(errors.length, 2)
  t.equal(errors[1].errCode, 100)
  t.equal(errors[1].connection, undefined)
  t.match(errors[1].error, { message: 'database down' })
})

t.test('fastify-wss:connection:dropped carries the slow reader, its unsent bytes and maxBackpressure', async (t) => {
  const terminated = deferred()
  const { app, base } = await start(t, {
    maxBackpressure: 64 * 1024,
    handler: {
      onConnection () {
        return {
          onMessage (ws: Connection) {
            const chunk = Buffer.alloc(16 * 1024)
            for (let i = 0; i < 4096 && ws.send(chunk); i++);
          },
          onTerminate () { terminated.resolve() }
        }
      }
    }
  })
  const dropped = listen(t, 'fastify-wss:connection:dropped', () => app.wss)
  const slow = await connect(t, base);
  (slow as any)._socket.pause()
  const connection = app.wss.connections[0]
  slow.send('flood')
  await terminated.promise
  t.equal(dropped.length, 1)
  t.same(Object.keys(dropped[0]).sort(), ['bufferedAmount', 'connection', 'maxBackpressure', 'wss'])
  t.equal(dropped[0].connection, connection)
  t.equal(dropped[0].maxBackpressure, 64 * 1024)
  t.ok(dropped[0].bufferedAmount > 64 * 1024)
})

t.test('with no subscriber left, nothing reaches a former subscriber', async (t) => {
  const { app, base } = await start(t, { handler: echo })
  const seen: unknown[] = []
  const subscriber = (message: unknown): void => { seen.push(message) }
  diagnostics.subscribe('fastify-wss:message:received', subscriber)
  diagnostics.unsubscribe('fastify-wss:message:received', subscriber)
  t.equal(diagnostics.channel('fastify-wss:message:received').hasSubscribers, false)
  const ws = await connect(t, base)
  ws.send('x')
  await messages(ws, 1)
  t.same(seen, [])
  t.equal(app.wss.stats().messagesIn, 1, 'the counters move all the same')
})

t.test("Fastify's tracing:fastify.request.handler channels see the upgrade request, and a store bound to them reaches onConnection", async (t) => {
  const handler = diagnostics.tracingChannel('fastify.request.handler')
  const store = new AsyncLocalStorage<string>()
  const starts: any[] = []
  const ends: any[] = []
  const seenInOnConnection: Array<string | undefined> = []
  const subscribers = {
    start (message: any) { starts.push(message) },
    end (message: any) { ends.push(message) },
    asyncStart () {},
    asyncEnd () {},
    error () {}
  }
  handler.subscribe(subscribers)
  handler.start.bindStore(store, (message: any) => `traced ${message.request.url as string}`)
  t.teardown(() => {
    handler.unsubscribe(subscribers)
    handler.start.unbindStore(store)
  })
  const { base } = await start(t, {
    path: '/chat',
    handler: {
      async onConnection () {
        seenInOnConnection.push(store.getStore())
        await new Promise((resolve) => setImmediate(resolve))
        seenInOnConnection.push(store.getStore())
        return echo.onConnection()
      }
    }
  })
  const ws = await connect(t, `${base}/chat?room=1`)
  ws.send('hi')
  t.same(await messages(ws, 1), ['hi'], 'the connection works')
  const upgrade = starts.find((message) => message.request.url === '/chat?room=1')
  t.ok(upgrade !== undefined, 'the start of the handler is published for the upgrade request')
  t.equal(upgrade.request.headers.upgrade, 'websocket')
  t.same(upgrade.route, { url: '/chat', method: 'GET' })
  t.ok(ends.includes(upgrade), 'and its end')
  t.same(seenInOnConnection, ['traced /chat?room=1', 'traced /chat?room=1'], 'onConnection runs in the store of the request, across an await')
})

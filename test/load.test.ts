import { once } from 'node:events'
import Fastify from 'fastify'
import t from 'tap'
import type WebSocket from 'ws'
import wssPlugin, { type WebSocketConnection, type WssErrorEntry } from '../lib/index.js'
import { connect, deferred, listen, messages } from './helpers/index.js'
import { captureLog } from './helpers/log.js'
import { until } from './helpers/until.js'

type Connection = WebSocketConnection<any>

/** Sends `count` numbered messages one round trip at a time and checks each echo. */
async function roundTrips (client: WebSocket, name: string, count: number): Promise<string[]> {
  const received: string[] = []
  for (let i = 0; i < count; i++) {
    client.send(`${name}:${i}`)
    received.push(...await messages(client, 1))
  }
  return received
}

t.test('a client flooding a gated onMessage is held at maxPendingMessages with reading paused, while the echoes of other clients complete, then gets every message once, in order', async (t) => {
  const max = 10
  const count = 300
  const size = 16 * 1024
  // ws reads at most 64 KiB from the socket at a time: the messages that one read completes
  const perRead = Math.ceil(65536 / size) + 1
  const gate = deferred()
  const order: number[] = []
  const done = deferred()
  let slow: Connection | undefined
  const slowOpen = deferred()

  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wssPlugin, {
    maxPendingMessages: max,
    heartbeat: false,
    handler: {
      onConnection (_wss: unknown, event: any) {
        if (event.request.query.slow !== '1') {
          return { onMessage (ws: Connection, e: { data: unknown }) { ws.send(e.data) } }
        }
        return {
          onOpen (ws: Connection) { slow = ws; slowOpen.resolve() },
          async onMessage (_ws: Connection, e: { data: unknown }) {
            await gate.promise
            const text = String(e.data)
            order.push(Number(text.slice(0, text.indexOf(':'))))
            if (order.length === count) done.resolve()
          }
        }
      }
    }
  })
  const base = await listen(app)
  const flooder = await connect(t, `${base}/?slow=1`)
  await slowOpen.promise
  const others = await Promise.all([1, 2, 3, 4].map(() => connect(t, base)))

  const padding = 'x'.repeat(size - 8)
  for (let i = 0; i < count; i++) flooder.send(`${i}:${padding}`)
  const connection = slow as Connection
  let largest = 0
  const sample = setInterval(() => { largest = Math.max(largest, connection._inbound.length) }, 1)
  t.teardown(() => clearInterval(sample))
  await until(() => connection._inbound.paused, 'the slow connection stops reading')

  // the other clients are served while the slow one sits paused
  const results = await Promise.all(others.map((client, n) => roundTrips(client, `c${n}`, 50)))
  others.forEach((client, n) => {
    t.same(results[n], Array.from({ length: 50 }, (_, i) => `c${n}:${i}`), `client ${n} got its 50 echoes, in order`)
  })
  largest = Math.max(largest, connection._inbound.length)
  t.equal(connection._inbound.paused, true, 'the slow connection is still paused')
  t.ok(largest >= max, `its queue reached the bound (${largest})`)
  t.ok(largest <= max + perRead, `its queue never held more than maxPendingMessages plus one read (${largest} <= ${max + perRead})`)
  t.equal(order.length, 0, 'no message of the slow client got past the gate')

  gate.resolve()
  await done.promise
  clearInterval(sample)
  t.ok(largest <= max + perRead, `the bound held while draining (${largest})`)
  t.same(order, Array.from({ length: count }, (_, i) => i), 'every message of the flood, exactly once, in order')
  t.same({ queued: connection._inbound.length, paused: connection._inbound.paused }, { queued: 0, paused: false }, 'reading resumed and the queue is empty')
  await until(() => flooder.bufferedAmount === 0, 'the flooding client has written everything')
})

t.test('several flooding clients each stay within the bound and each get all their messages in order', async (t) => {
  const max = 8
  const count = 200
  const clients = 5
  const gate = deferred()
  const orders = new Map<number, number[]>()
  const connections: Connection[] = []
  let total = 0
  const done = deferred()

  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wssPlugin, {
    maxPendingMessages: max,
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onOpen (ws: Connection) { connections.push(ws); orders.set(ws.id, []) },
          async onMessage (ws: Connection, e: { data: unknown }) {
            await gate.promise
            const text = String(e.data);
            (orders.get(ws.id) as number[]).push(Number(text.slice(0, text.indexOf(':'))))
            if (++total === count * clients) done.resolve()
          }
        }
      }
    }
  })
  const base = await listen(app)
  const flooders = await Promise.all(Array.from({ length: clients }, () => connect(t, base)))
  await until(() => connections.length === clients, 'every connection is open')
  const padding = 'y'.repeat(8 * 1024)
  for (let i = 0; i < count; i++) for (const client of flooders) client.send(`${i}:${padding}`)

  let largest = 0
  const sample = setInterval(() => {
    for (const connection of connections) largest = Math.max(largest, connection._inbound.length)
  }, 1)
  t.teardown(() => clearInterval(sample))
  await until(() => connections.every((c) => c._inbound.paused), 'every flooding connection is paused')
  gate.resolve()
  await done.promise
  clearInterval(sample)

  const perRead = Math.ceil(65536 / (8 * 1024)) + 1
  t.ok(largest <= max + perRead, `no queue held more than maxPendingMessages plus one read (${largest} <= ${max + perRead})`)
  for (const connection of connections) {
    t.same(orders.get(connection.id), Array.from({ length: count }, (_, i) => i), `connection ${connection.id}: every message once, in order`)
    t.same({ queued: connection._inbound.length, paused: connection._inbound.paused }, { queued: 0, paused: false })
  }
})

t.test('callbacks that all throw or reject under load from 50 clients × 20 messages never stop a control client from getting its echoes', async (t) => {
  const clients = 50
  const perClient = 20
  const log = captureLog()
  const codes = new Map<number, number>()
  let terminates = 0
  let onErrorCalls = 0
  let serverOnErrorCalls = 0
  const allTerminated = deferred()
  const expectedErrors = clients * (1 + perClient + 1)
  const allErrors = deferred()
  let calls = 0
  /** Throws on one call, returns a rejected Promise on the next. */
  const fail = (what: string): Promise<never> | never => {
    const error = new Error(`${what} failed`)
    if (++calls % 2 === 0) return Promise.reject(error)
    throw error
  }

  const app = Fastify({ logger: { level: 'error', stream: log.stream } })
  t.teardown(() => app.close())
  await app.register(wssPlugin, {
    heartbeat: false,
    handler: {
      onConnection (_wss: unknown, event: any) {
        if (event.request.query.control === '1') {
          return { onMessage (ws: Connection, e: { data: unknown }) { ws.send(e.data) } }
        }
        return {
          onOpen () { return fail('onOpen') },
          onMessage () { return fail('onMessage') },
          onTerminate () {
            if (++terminates === clients) allTerminated.resolve()
            return fail('onTerminate')
          },
          onError (_ws: Connection, e: { errors: WssErrorEntry[] }) {
            for (const entry of e.errors) codes.set(entry.errCode, (codes.get(entry.errCode) ?? 0) + 1)
            if (++onErrorCalls === expectedErrors) allErrors.resolve()
            return fail('onError')
          }
        }
      },
      onError () {
        serverOnErrorCalls++
        return fail('server onError')
      }
    }
  })
  const base = await listen(app)
  const control = await connect(t, `${base}/?control=1`)

  const load = Promise.all(Array.from({ length: clients }, async (_, n) => {
    const ws = await connect(t, base)
    for (let i = 0; i < perClient; i++) ws.send(`load ${n}:${i}`)
    ws.close()
    await once(ws, 'close')
  }))
  const echoes = roundTrips(control, 'control', 200)
  const [received] = await Promise.all([echoes, load])
  t.same(received, Array.from({ length: 200 }, (_, i) => `control:${i}`), 'the control client got its 200 echoes, in order, during the load')

  await allTerminated.promise
  await allErrors.promise
  t.equal(codes.get(200), clients, 'one errCode 200 per failed onOpen')
  t.equal(codes.get(201), clients * perClient, 'one errCode 201 per failed onMessage: every message was delivered')
  t.equal(codes.get(202), clients, 'one errCode 202 per failed onTerminate')
  t.equal(serverOnErrorCalls, 0, 'connection errors stayed with the connection handler')
  await until(() => log.lines.filter((l) => /onError callback failed/.test(l.msg)).length === expectedErrors, 'every failed onError is logged')
  t.equal(log.lines.filter((l) => /onError callback failed/.test(l.msg)).length, expectedErrors, 'each throw or rejection of onError is logged, and goes no further')
  t.equal(app.wss.connections.length, 1, 'only the control connection is left')

  control.send('after')
  t.same(await messages(control, 1), ['after'], 'the control client is still served afterwards')
})

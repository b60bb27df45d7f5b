import Fastify from 'fastify'
import t from 'tap'
import type WebSocket from 'ws'
import wssPlugin, { type WebSocketConnection } from '../lib/index.js'
import { closed, connect, listen } from './helpers/index.js'
import { until } from './helpers/until.js'
import { captureLog } from './helpers/log.js'
import { Opcode, closeCode, rawConnect, type RawClient, type RawFrame } from './helpers/frames.js'

type Connection = WebSocketConnection<any>

/** How many active resources of each kind keep the event loop alive. */
function resources (): Map<string, number> {
  const counts = new Map<string, number>()
  for (const name of process.getActiveResourcesInfo()) counts.set(name, (counts.get(name) ?? 0) + 1)
  return counts
}

/** Reads frames until the close frame; `undefined` when the socket closed without one. */
async function closeFrame (client: RawClient): Promise<RawFrame | undefined> {
  for (;;) {
    const received = await client.nextFrame()
    if (received === undefined || received.opcode === Opcode.Close) return received
  }
}

t.test('app.close() with 1,000 open connections and messages in flight closes every client with 1001, destroys the peers that never answer after closeTimeout, runs each onTerminate once and leaves no timer, listener or socket behind', { timeout: 60_000 }, async (t) => {
  const total = 1000
  const silent = 50
  const batch = 100
  const perClient = 3
  const before = resources()

  const terminates = new Map<number, number[]>()
  const silentIds = new Set<number>()
  let delivered = 0
  let serverTerminates = 0

  const app = Fastify()
  t.teardown(() => app.close())
  const upgradeListeners = app.server.listenerCount('upgrade')
  await app.register(wssPlugin, {
    closeTimeout: 300,
    heartbeat: { interval: 10_000 },
    handler: {
      onConnection (_wss: unknown, event: any) {
        const isSilent = event.request.query.silent === '1'
        return {
          onOpen (ws: Connection) { if (isSilent) silentIds.add(ws.id) },
          async onMessage (ws: Connection, e: { data: unknown }) {
            delivered++
            // still in flight when the close begins
            await new Promise((resolve) => setImmediate(resolve))
            ws.send(e.data)
          },
          onTerminate (ws: Connection, e: { code: number }) {
            const codes = terminates.get(ws.id) ?? []
            codes.push(e.code)
            terminates.set(ws.id, codes)
          }
        }
      },
      onTerminate () { serverTerminates++ }
    }
  })
  const base = await listen(app)

  // 950 ws clients, which answer the close frame, and 50 raw TCP clients, which never do
  const clients: WebSocket[] = []
  const raws: RawClient[] = []
  for (let opened = 0; opened < total; opened += batch) {
    const wave = Array.from({ length: batch }, (_, i) => opened + i)
    await Promise.all(wave.map(async (n) => {
      if (n % (total / silent) === 0) raws.push(await rawConnect(t, `${base}/?silent=1`))
      else clients.push(await connect(t, base))
    }))
  }
  t.equal(app.wss.connections.length, total, `${total} connections are open`)
  t.equal(raws.length, silent)
  t.equal(clients.length, total - silent)

  const clientCodes = clients.map((ws) => closed(ws))
  const silentFrames = raws.map((raw) => closeFrame(raw))
  for (const ws of clients) for (let i = 0; i < perClient; i++) ws.send(`m${i}`)
  for (const raw of raws) raw.send({ opcode: Opcode.Text, payload: 'raw' })

  await app.close()

  // every onTerminate has run by the time app.close() resolves, once per connection
  t.equal(terminates.size, total, 'onTerminate ran for every connection')
  t.ok([...terminates.values()].every((codes) => codes.length === 1), 'onTerminate ran exactly once per connection')
  t.equal(serverTerminates, 1, 'the server onTerminate ran once')
  const silentCodes = [...silentIds].map((id) => terminates.get(id)?.[0])
  t.equal(silentIds.size, silent)
  t.ok(silentCodes.every((code) => code === 1006), 'the peers that never answered got onTerminate 1006')
  const answeredCodes = [...terminates].filter(([id]) => !silentIds.has(id)).map(([, codes]) => codes[0])
  // A peer that answered gets the code it echoed (1001), unless closeTimeout ran out before its
  // answer was read: closing 1,000 connections whose clients share this process's event loop can
  // take longer than 300 ms, and then the socket is destroyed (1006) like that of a silent peer.
  t.ok(answeredCodes.every((code) => code === 1001 || code === 1006), 'the peers that answered got onTerminate 1001, or 1006 when closeTimeout expired first')
  t.equal(delivered, clients.length * perClient + raws.length, 'every message sent before the close was delivered')
  t.same(app.wss.connections, [], 'wss.connections is empty')

  const codes = await Promise.all(clientCodes)
  t.ok(codes.every((c) => c.code === 1001), 'every ws client was closed with 1001')
  const frames = await Promise.all(silentFrames)
  t.ok(frames.every((f) => f !== undefined && closeCode(f) === 1001), 'every raw client got a close frame with 1001')
  await Promise.all(raws.map((raw) => raw.closed))
  t.ok(raws.every((raw) => raw.socket.destroyed), 'the server ended the sockets of the peers that never answered')

  t.equal(app.server.listenerCount('upgrade'), upgradeListeners, 'no upgrade listener is left on app.server')
  const after = resources()
  t.equal(app.server.listening, false, 'the HTTP server is closed')
  for (const kind of ['Timeout', 'TCPSocketWrap']) {
    t.ok((after.get(kind) ?? 0) <= (before.get(kind) ?? 0), `no ${kind} left (${after.get(kind) ?? 0} now, ${before.get(kind) ?? 0} before)`)
  }
})

t.test('app.close() resolves within closeTimeout + shutdownTimeout when onOpen, onMessage, onTerminate, the adapter and the server onTerminate never settle, logs what it abandoned, and leaves no timer, listener or socket', async (t) => {
  const before = resources()
  const capture = captureLog()
  const never = new Promise<void>(() => {})
  const terminated: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: capture.stream } })
  const upgradeListeners = app.server.listenerCount('upgrade')
  await app.register(wssPlugin, {
    path: '/stuck',
    closeTimeout: 100,
    shutdownTimeout: 200,
    adapter: { open () {}, publish () {}, subscribe () {}, unsubscribe () {}, close: async () => await never },
    handler: {
      onConnection (_wss, { request }) {
        const kind = String(request.query.kind)
        return {
          onOpen: kind === 'open' ? async () => await never : undefined,
          onMessage: async () => { if (kind === 'message') await never },
          onTerminate: async () => {
            terminated.push(kind)
            if (kind === 'terminate') await never
          }
        }
      },
      onTerminate: async () => await never
    }
  })
  const base = await listen(app)
  const clients = await Promise.all(['open', 'message', 'terminate', 'plain'].map(async (kind) => await connect(t, `${base}/stuck?kind=${kind}`)))
  clients[1].send('stall')
  await until(() => app.wss.connections.length === 4, 'four connections')
  await new Promise((resolve) => setTimeout(resolve, 20)) // the stalled message is read
  await app.close()
  t.same(terminated.sort(), ['message', 'open', 'plain', 'terminate'], 'every connection handler got its onTerminate')
  const warning = await capture.next((line) => line.level === 40 && /shutdown did not wait/.test(line.msg))
  t.same(warning.abandoned, { onOpen: 1, onMessage: 1, onTerminate: 1, 'adapter.close': 1, 'onTerminate of the server': 1 })
  t.equal(app.server.listenerCount('upgrade'), upgradeListeners, 'no upgrade listener is left')
  await new Promise((resolve) => setImmediate(resolve))
  const after = resources()
  for (const name of ['Timeout', 'TCPSocketWrap', 'TCPServerWrap']) {
    t.ok((after.get(name) ?? 0) <= (before.get(name) ?? 0), `no ${name} left (${after.get(name) ?? 0} now, ${before.get(name) ?? 0} before)`)
  }
})

t.test('with several servers on one app, app.close() closes them all at once: the second is terminated before the first has finished', async (t) => {
  const never = new Promise<void>(() => {})
  const app = Fastify()
  const seen: boolean[] = []
  const servers: Array<import('../lib/index.js').WebSocketServer<any>> = []
  for (const path of ['/a', '/b']) {
    await app.register(async (child) => {
      await child.register(wssPlugin, {
        path,
        closeTimeout: 50,
        shutdownTimeout: 100,
        handler: {
          onConnection: () => ({ onMessage: async () => await never }),
          onTerminate () { seen.push(servers.every((server) => server.terminated)) }
        }
      })
      servers.push(child.wss)
    })
  }
  const base = await listen(app)
  for (const path of ['/a', '/b']) {
    const client = await connect(t, `${base}${path}`)
    client.send('stall')
  }
  await until(() => servers.every((server) => server.connections.length === 1), 'one connection each')
  await new Promise((resolve) => setTimeout(resolve, 20))
  await app.close()
  t.same(seen, [true, true], 'when each server handler\'s onTerminate ran, both servers were already terminating')
})

t.test('past the shutdown deadline: a callback that settles late changes nothing, a closed connection whose queue still waits is released, and each handler gets one onTerminate', async (t) => {
  const late = new Promise<void>((resolve) => setTimeout(resolve, 600))
  const terminated: string[] = []
  const capture = captureLog()
  const app = Fastify({ logger: { level: 'warn', stream: capture.stream } })
  const opened: Connection[] = []
  await app.register(wssPlugin, {
    path: '/late',
    closeTimeout: 200,
    shutdownTimeout: 50,
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onOpen (ws: Connection) { opened.push(ws) },
          async onMessage () { await late },
          onTerminate () { terminated.push('once') }
        }
      }
    }
  })
  const base = await listen(app)
  // a raw client that never answers the close frame, with messages queued behind the stalled one
  const client = await rawConnect(t, `${base}/late`)
  for (let i = 0; i < 3; i++) client.send({ opcode: Opcode.Text, payload: `m${i}` })
  await until(() => opened.length === 1 && opened[0]._inbound.length === 2, 'two messages wait behind the first')
  await app.close()
  t.same(terminated, ['once'], 'onTerminate ran at the deadline')
  const warning = await capture.next((line) => line.level === 40 && /shutdown did not wait/.test(line.msg))
  t.same(warning.abandoned, { onMessage: 1 })
  await late
  await new Promise((resolve) => setImmediate(resolve))
  t.same(terminated, ['once'], 'the late settling of onMessage ran nothing more')
})

t.test('a connection abandoned while its socket is still open gets onTerminate 1006 at once, and nothing more when its close comes', async (t) => {
  const terminated: number[] = []
  const app = Fastify()
  t.teardown(() => app.close())
  const opened: Connection[] = []
  await app.register(wssPlugin, {
    path: '/open',
    handler: {
      onConnection: () => ({
        onOpen (ws: Connection) { opened.push(ws) },
        onMessage () {},
        onTerminate (_ws: Connection, event: { code: number }) { terminated.push(event.code) }
      })
    }
  })
  const base = await listen(app)
  const client = await connect(t, `${base}/open`)
  await until(() => opened.length === 1, 'open')
  t.equal(opened[0]._abandon(), 'close', 'nothing was pending but the close itself')
  t.same(terminated, [1006])
  await closed(client)
  await until(() => opened[0].status === 'Closed', 'the close comes')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(terminated, [1006], 'still one onTerminate')
})

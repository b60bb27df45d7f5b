import { setTimeout as delay } from 'node:timers/promises'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import wssPlugin, { type WebSocketServer } from '../lib/index.js'
import { closed, connect, deferred, listen, messages, refusal, start } from './helpers/index.js'

/** A connection handler that echoes. */
const echo = {
  onMessage (ws: any, event: any) { ws.send(event.data) }
}

t.test('the server handler onOpen runs once, as a method, with (wss, { type: "open" }), when the app is ready', async (t) => {
  const calls: Array<{ self: unknown, args: unknown[] }> = []
  const handler = {
    onConnection () { return echo },
    onOpen (...args: unknown[]) { calls.push({ self: this, args }) }
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wssPlugin, { handler })
  t.equal(calls.length, 0, 'not before the app is ready')

  await app.ready()
  t.equal(calls.length, 1)
  t.equal(calls[0].self, handler, '`this` is the handler')
  t.equal(calls[0].args.length, 2)
  t.equal(calls[0].args[0], app.wss)
  t.same(calls[0].args[1], { type: 'open' })

  await listen(app)
  t.equal(calls.length, 1, 'listening does not run it again')
})

t.test('wss.terminate() is terminated at once, refuses upgrades with 503, closes every connection with 1001, then runs the server onTerminate once and resolves', async (t) => {
  const order: string[] = []
  const codes: number[] = []
  const slowStarted = deferred()
  const gate = deferred()
  const serverCalls: Array<{ self: unknown, args: unknown[] }> = []
  const handler = {
    onConnection (_wss: unknown, event: any) {
      const slow = event.request.query.slow === '1'
      return {
        ...echo,
        async onTerminate (_ws: unknown, e: any) {
          codes.push(e.code)
          if (!slow) {
            order.push('fast')
            return
          }
          order.push('slow:start')
          slowStarted.resolve()
          await gate.promise
          await delay(30)
          order.push('slow:end')
        }
      }
    },
    onTerminate (...args: unknown[]) {
      order.push('server')
      serverCalls.push({ self: this, args })
    }
  }
  const { app, base } = await start(t, { handler })
  const fast = await connect(t, base)
  const slow = await connect(t, `${base}/?slow=1`)
  t.equal(app.wss.connections.length, 2)
  const fastClosed = closed(fast)
  const slowClosed = closed(slow)

  let resolved = false
  const terminating = app.wss.terminate().then(() => { resolved = true })
  t.equal(app.wss.terminated, true, 'terminated is true before the promise resolves')

  t.equal((await refusal(base)).status, 503, 'a new upgrade gets 503 while terminating')
  t.equal((await fastClosed).code, 1001, 'the client sees 1001')
  t.equal((await slowClosed).code, 1001, 'the client sees 1001')

  await slowStarted.promise
  t.equal(resolved, false, 'not resolved while a connection onTerminate runs')
  t.same(serverCalls, [], 'the server onTerminate waits for the connections')
  gate.resolve()

  await terminating
  t.same(codes.sort(), [1001, 1001], 'each connection onTerminate got the 1001 echoed by its client')
  t.equal(order.length, 4)
  t.equal(order[order.length - 1], 'server', 'the server onTerminate runs last')
  t.ok(order.includes('fast'))
  t.ok(order.indexOf('slow:end') < order.indexOf('server'), 'after the async connection onTerminate finished')
  t.equal(serverCalls.length, 1)
  t.equal(serverCalls[0].self, handler, '`this` is the handler')
  t.equal(serverCalls[0].args[0], app.wss)
  t.same(serverCalls[0].args[1], { type: 'terminate' })
  t.same(app.wss.connections, [])

  await app.wss.terminate()
  t.equal(serverCalls.length, 1, 'a second terminate() does not run onTerminate again')
  t.equal(app.wss.terminated, true)
  t.equal((await refusal(base)).status, 503, 'upgrades still get 503 once terminated')
})

t.test('wss.terminate() with no connection runs the server onTerminate once and resolves', async (t) => {
  let calls = 0
  const { app } = await start(t, {
    handler: {
      onConnection () { return echo },
      onTerminate () { calls++ }
    }
  })
  await app.wss.terminate()
  t.equal(calls, 1)
  t.equal(app.wss.terminated, true)
})

t.test('wss.terminate() waits for a connection already closing until closeTimeout ends it with 1006', async (t) => {
  const order: string[] = []
  let code: number | undefined
  const { app, base } = await start(t, {
    closeTimeout: 100,
    handler: {
      onConnection () {
        return {
          ...echo,
          onTerminate (_ws: unknown, e: any) {
            code = e.code
            order.push('connection')
          }
        }
      },
      onTerminate () { order.push('server') }
    }
  })
  const client = await connect(t, base)
  // The client stops reading, so it never answers the server's close frame.
  ;(client as any)._socket.pause()
  const [connection] = app.wss.connections
  connection.terminate({ code: 4000 })
  t.equal(connection.status, 'Closing')

  await app.wss.terminate()
  t.same(order, ['connection', 'server'])
  t.equal(code, 1006, 'no close frame came back before closeTimeout')
  t.same(app.wss.connections, [])
})

t.test('app.close() closes every client with 1001 and resolves after every connection onTerminate and the server onTerminate', async (t) => {
  const order: string[] = []
  let serverCalls = 0
  const { app, base } = await start(t, {
    handler: {
      onConnection (_wss: unknown, event: any) {
        const slow = event.request.query.slow === '1'
        return {
          ...echo,
          async onTerminate () {
            if (!slow) {
              order.push('fast')
              return
            }
            await delay(50)
            order.push('slow:end')
          }
        }
      },
      onTerminate () {
        order.push('server')
        serverCalls++
      }
    }
  })
  const fast = await connect(t, base)
  const slow = await connect(t, `${base}/?slow=1`)
  const fastClosed = closed(fast)
  const slowClosed = closed(slow)

  await app.close()
  t.ok(order.includes('slow:end'), 'the async connection onTerminate has finished')
  t.ok(order.includes('fast'))
  t.equal(order[order.length - 1], 'server')
  t.equal(serverCalls, 1, 'the server onTerminate ran once')
  t.equal(app.wss.terminated, true)
  t.equal((await fastClosed).code, 1001)
  t.equal((await slowClosed).code, 1001)
})

t.test('after app.close() no upgrade listener is left on app.server and no connection in wss.connections', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const before = app.server.listenerCount('upgrade')
  await app.register(wssPlugin, { handler: { onConnection () { return echo } } })
  const base = await listen(app)
  const client = await connect(t, base)
  client.send('hi')
  t.same(await messages(client, 1), ['hi'])
  t.ok(app.server.listenerCount('upgrade') > before, 'listening for upgrades while open')
  t.equal(app.wss.connections.length, 1)

  await app.close()
  t.equal(app.server.listenerCount('upgrade'), before)
  t.same(app.wss.connections, [])
})

t.test('a server terminated before the app is ready never runs onOpen and refuses upgrades with 503', async (t) => {
  let opened = 0
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wssPlugin, {
    handler: {
      onConnection () { return echo },
      onOpen () { opened++ }
    }
  })
  await app.wss.terminate()
  const base = await listen(app)
  t.equal(opened, 0)
  t.equal(app.wss.terminated, true)
  t.equal((await refusal(base)).status, 503)
})

/** Assigning a property either throws a TypeError or leaves it as it was. */
function assignFails (t: Test, target: object, name: string, value: unknown): void {
  const before = (target as Record<string, unknown>)[name]
  try {
    (target as Record<string, unknown>)[name] = value
  } catch (err) {
    t.type(err, TypeError, `assigning ${name} throws a TypeError`)
  }
  const after = (target as Record<string, unknown>)[name]
  // connections is a new array on each read: compare what it holds
  if (Array.isArray(before)) t.same(after, before, `${name} is unchanged`)
  else t.equal(after, before, `${name} is unchanged`)
}

t.test('the properties of wss are read-only', async (t) => {
  const { app, base } = await start(t, { handler: { onConnection () { return echo } } })
  await connect(t, base)
  const wss: WebSocketServer = app.wss
  t.equal(wss.connections.length, 1)
  assignFails(t, wss, 'connections', [])
  assignFails(t, wss, 'dataType', 'blob')
  assignFails(t, wss, 'handler', { onConnection () { return null } })
  assignFails(t, wss, 'path', '/other')
  assignFails(t, wss, 'terminated', true)
  t.equal(wss.connections.length, 1, 'connections still has the connection')
  t.equal(wss.terminated, false)
})

t.test('wss.connections is a new array on each read, and changing it changes nothing', async (t) => {
  const { app, base } = await start(t, { handler: { onConnection () { return echo } } })
  const client = await connect(t, base)
  const first = app.wss.connections
  t.not(app.wss.connections, first, 'another array on the next read')
  t.same(app.wss.connections, first, 'with the same connections')

  first.push(first[0])
  t.equal(app.wss.connections.length, 1, 'pushing into a read changes nothing')
  first.length = 0
  t.equal(app.wss.connections.length, 1, 'clearing a read changes nothing')
  app.wss.connections.splice(0)
  t.equal(app.wss.connections.length, 1)

  client.send('still here')
  t.same(await messages(client, 1), ['still here'])
})

t.test('wss.dataType, handler and path are those of the options', async (t) => {
  const handler = { onConnection () { return echo } }
  const { app } = await start(t, { handler, path: '/chat', dataType: 'object' })
  t.equal(app.wss.dataType, 'object')
  t.equal(app.wss.handler, handler)
  t.equal(app.wss.path, '/chat')
})

t.test('wss.path is undefined for the catch-all server, and dataType defaults to text', async (t) => {
  const handler = { onConnection () { return echo } }
  const { app } = await start(t, { handler })
  t.equal(app.wss.path, undefined)
  t.equal(app.wss.dataType, 'text')
  t.equal(app.wss.handler, handler)
})

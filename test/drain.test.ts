import Fastify from 'fastify'
import t from 'tap'
import WebSocket from 'ws'
import wssPlugin, { type WebSocketConnection, type WssPluginOptions } from '../lib/index.js'
import { closed, connect, deferred, listen, messages, start } from './helpers/index.js'
import { captureLog } from './helpers/log.js'
import { until } from './helpers/until.js'

type Connection = WebSocketConnection<any>
type Test = typeof t

/** The status and headers an upgrade attempt was refused with. */
async function refusedWith (url: string): Promise<{ status: number, headers: Record<string, unknown> }> {
  const ws = new WebSocket(url)
  return await new Promise((resolve, reject) => {
    ws.on('open', () => { ws.terminate(); reject(new Error('the upgrade was accepted')) })
    ws.on('unexpected-response', (_req, res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode as number, headers: res.headers }))
    })
    ws.on('error', reject)
  })
}

/** A handler that echoes, and counts the onTerminate calls and codes of each connection. */
function counting (): { handler: WssPluginOptions<any>['handler'], terminates: Map<number, number[]>, serverTerminates: () => number } {
  const terminates = new Map<number, number[]>()
  let serverTerminates = 0
  return {
    terminates,
    serverTerminates: () => serverTerminates,
    handler: {
      onConnection () {
        return {
          onMessage (ws: Connection, e: { data: unknown }) { ws.send(e.data) },
          onTerminate (ws: Connection, e: { code: number }) {
            terminates.set(ws.id, [...(terminates.get(ws.id) ?? []), e.code])
          }
        }
      },
      onTerminate () { serverTerminates++ }
    }
  }
}

t.test('with shutdown { spread: 1000 }, app.close() closes 20 clients at random moments over the second, each with 1001; every onTerminate runs once before it resolves', async (t) => {
  const count = 20
  const spread = 1000
  const { handler, terminates, serverTerminates } = counting()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wssPlugin, { handler, shutdown: { spread }, heartbeat: false })
  const base = await listen(app)
  const clients = await Promise.all(Array.from({ length: count }, async () => await connect(t, base)))

  const started = performance.now()
  const moments: number[] = []
  const codes = clients.map(async (ws) => {
    const result = await closed(ws)
    moments.push(performance.now() - started)
    return result.code
  })
  await app.close()

  t.same(await Promise.all(codes), clients.map(() => 1001), 'every client got 1001')
  t.equal(terminates.size, count, 'onTerminate ran for every connection')
  t.ok([...terminates.values()].every((calls) => calls.length === 1 && calls[0] === 1001), 'exactly once each, with the 1001 echoed')
  t.equal(serverTerminates(), 1, 'the server onTerminate ran once')
  moments.sort((a, b) => a - b)
  t.ok(moments.some((moment) => moment > spread / 10), 'not all closed in the first tenth of the window')
  // each of the 20 moments is uniform over the window: all in its first half has odds of 2^-20
  t.ok(moments[count - 1] > spread / 2, `the last close came in the second half of the window (${Math.round(moments[count - 1])} ms)`)
  t.equal(app.wss.stats().closed[1001], count, 'stats() counts them under 1001')
})

t.test('wss.terminate({ spread, code: 1012 }): terminated at once, new upgrades get 503 with Retry-After: 1, connections not yet closed keep working, then each gets 1012', async (t) => {
  const { handler, terminates } = counting()
  const { app, base } = await start(t, { handler, heartbeat: false })
  const clients = await Promise.all(Array.from({ length: 5 }, async () => await connect(t, base)))
  const codes = clients.map(async (ws) => (await closed(ws)).code)

  const terminating = app.wss.terminate({ spread: 600, code: 1012 })
  t.equal(app.wss.terminated, true, 'terminated at once')
  const refused = await refusedWith(base)
  t.equal(refused.status, 503, 'a new upgrade during the drain gets 503')
  t.equal(refused.headers['retry-after'], '1', 'with Retry-After: 1')
  t.equal(app.wss.stats().refused[503], 1)

  const open = clients.filter((ws) => ws.readyState === WebSocket.OPEN)
  t.ok(open.length > 0, 'some connections are still open during the drain')
  open[0].send('still served')
  t.same(await messages(open[0], 1), ['still served'], 'and still served')

  t.equal(app.wss.terminate({ spread: 0, code: 1001 }), terminating, 'a second call returns the first one\'s Promise')
  await terminating
  t.same(await Promise.all(codes), [1012, 1012, 1012, 1012, 1012], 'every client got 1012')
  t.same([...terminates.values()], [[1012], [1012], [1012], [1012], [1012]], 'each onTerminate once, with 1012')

  const after = await refusedWith(base)
  t.same([after.status, after.headers['retry-after']], [503, '1'], 'once terminated too')
})

t.test('wss.terminate() without options uses the shutdown option; a connection that closes by itself during the drain gets one onTerminate with its own code', async (t) => {
  const { handler, terminates } = counting()
  const { app, base } = await start(t, { handler, heartbeat: false, shutdown: { spread: 400, code: 1012 } })
  const leaving = await connect(t, base)
  const staying = await connect(t, base)
  const [leavingId] = app.wss.connections.map((ws) => ws.id)
  const stayingCode = closed(staying)
  const terminating = app.wss.terminate()
  leaving.close(1000)
  await terminating
  t.equal((await stayingCode).code, 1012, 'the code of the shutdown option')
  t.same(terminates.get(leavingId), [1000], 'the connection that left got one onTerminate, with its own code')
  t.equal(terminates.size, 2)
})

t.test('an upgrade whose async onConnection answers during the drain is refused with 503 and Retry-After, and its handler gets one onTerminate', async (t) => {
  const gate = deferred()
  const entered = deferred()
  const terminated: number[] = []
  const { app, base } = await start(t, {
    heartbeat: false,
    handler: {
      async onConnection () {
        entered.resolve()
        await gate.promise
        return { onMessage () {}, onTerminate (_ws: Connection, e: { code: number }) { terminated.push(e.code) } }
      }
    }
  })
  const refused = refusedWith(base)
  await entered.promise
  const terminating = app.wss.terminate({ spread: 200 })
  gate.resolve()
  const answer = await refused
  t.same([answer.status, answer.headers['retry-after']], [503, '1'])
  await terminating
  t.same(terminated, [1006], 'one onTerminate, 1006: the connection never opened')
})

t.test('with a spread, app.close() stops waiting at spread + closeTimeout + shutdownTimeout when a callback never settles', async (t) => {
  const capture = captureLog()
  const never = new Promise<void>(() => {})
  const app = Fastify({ logger: { level: 'warn', stream: capture.stream } })
  t.teardown(() => app.close())
  const spread = 300
  const closeTimeout = 100
  const shutdownTimeout = 100
  await app.register(wssPlugin, {
    shutdown: { spread },
    closeTimeout,
    shutdownTimeout,
    heartbeat: false,
    handler: { onConnection: () => ({ onMessage () {}, onTerminate: async () => await never }) }
  })
  const base = await listen(app)
  await connect(t, base)
  const started = performance.now()
  await app.close()
  const elapsed = performance.now() - started
  // timers never fire early: the lower bound is exact (a few ms of clock rounding aside)
  t.ok(elapsed >= spread + closeTimeout + shutdownTimeout - 5, `it waited for the deadline grown by the spread (${Math.round(elapsed)} ms)`)
  const warning = await capture.next((line) => line.level === 40 && /shutdown did not wait/.test(line.msg))
  t.same(warning.abandoned, { onTerminate: 1 })
})

/** `register` rejects with FST_WSS_INVALID_OPTION naming `name`. */
async function rejectsOption (test: Test, shutdown: unknown, name: string): Promise<void> {
  const app = Fastify()
  test.teardown(() => app.close())
  await test.rejects(async () => {
    await app.register(wssPlugin, { handler: counting().handler, shutdown } as WssPluginOptions<any>)
  }, { code: 'FST_WSS_INVALID_OPTION', message: new RegExp(`option "${name}" `) }, `${JSON.stringify(shutdown) ?? String(shutdown)} names ${name}`)
}

t.test('register rejects an invalid shutdown option, naming the key, and accepts spread 0 to 2^31 - 1 ms and codes 1001 and 1012', async (t) => {
  for (const shutdown of ['soon', 1000, null]) await rejectsOption(t, shutdown, 'shutdown')
  for (const spread of [-1, 1.5, '100', NaN, Infinity, 2 ** 31, null]) await rejectsOption(t, { spread }, 'shutdown.spread')
  for (const code of [1000, 1006, 4000, '1001', null]) await rejectsOption(t, { code }, 'shutdown.code')

  for (const shutdown of [{}, { spread: 0, code: 1001 }, { spread: 2 ** 31 - 1 }, { code: 1012 }] as const) {
    const app = Fastify({ pluginTimeout: 0 })
    t.teardown(() => app.close())
    await app.register(wssPlugin, { handler: counting().handler, shutdown })
    await app.ready()
  }
})

t.test("register refuses a spread that, with closeTimeout, reaches Fastify's pluginTimeout, which bounds app.close()", async (t) => {
  const refused = Fastify({ pluginTimeout: 10_000 })
  t.teardown(() => refused.close())
  await t.rejects(async () => {
    await refused.register(wssPlugin, { handler: counting().handler, shutdown: { spread: 5000 }, closeTimeout: 5000 })
  }, { code: 'FST_WSS_INVALID_OPTION', message: /option "shutdown.spread" plus closeTimeout \(5000 ms\) must stay under Fastify's pluginTimeout \(10000 ms\)/ })
  const raised = Fastify({ pluginTimeout: 30_000 })
  t.teardown(() => raised.close())
  await raised.register(wssPlugin, { handler: counting().handler, shutdown: { spread: 5000 }, closeTimeout: 5000 })
  await raised.ready()
  t.equal(raised.wss.terminated, false, 'a pluginTimeout above the spread and closeTimeout takes it')
})

t.test('wss.terminate() with an invalid spread or code throws FST_WSS_INVALID_SHUTDOWN (a RangeError) and closes nothing', async (t) => {
  const { app, base } = await start(t, { handler: counting().handler, heartbeat: false })
  const ws = await connect(t, base)
  const bad: Array<[unknown, RegExp]> = [
    ['now', /its argument must be \{ spread\?, code\? \}/],
    [{ code: 1000 }, /"code" must be 1001 \(Going Away\) or 1012 \(Service Restart\), got 1000/],
    [{ code: 4000 }, /"code" must be/],
    [{ spread: -5 }, /"spread" must be an integer from 0 to 2147483647 ms, got -5/],
    [{ spread: 2 ** 31 }, /"spread" must be/]
  ]
  for (const [options, message] of bad) {
    let thrown: unknown
    try {
      // synchronously, before any Promise is made
      app.wss.terminate(options as any).catch(() => {})
    } catch (err) {
      thrown = err
    }
    t.ok(thrown instanceof RangeError, `${JSON.stringify(options)}: a RangeError`)
    t.match(thrown, { code: 'FST_WSS_INVALID_SHUTDOWN', message })
  }
  t.equal(app.wss.terminated, false, 'not terminated')
  ws.send('still here')
  t.same(await messages(ws, 1), ['still here'], 'the connection still works')
  await until(() => app.wss.connections.length === 1, 'still one connection')
})

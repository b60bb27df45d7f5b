import { EventEmitter } from 'node:events'
import Fastify from 'fastify'
import t from 'tap'
import wssPlugin, { type AdapterNode, type ClusterMessage, type WebSocketConnection, type WssAdapter, type WssPluginOptions } from '../lib/index.js'
import { start, connect, messages, deferred } from './helpers/index.js'

/**
 * A cluster of adapters in one process: what one node publishes reaches the
 * others. It records the calls the server makes, for the assertions.
 */
class LoopbackAdapter implements WssAdapter {
  node: AdapterNode | undefined
  readonly calls: string[] = []
  constructor (readonly bus: EventEmitter) {}
  open (node: AdapterNode): void {
    this.node = node
    this.calls.push('open')
    this.bus.on('message', this.#receive)
  }

  #receive = (from: LoopbackAdapter, message: ClusterMessage): void => {
    if (from !== this) this.node?.deliver(message)
  }

  publish (message: ClusterMessage): void {
    this.calls.push(`publish ${message.topic ?? '*'}`)
    this.bus.emit('message', this, message)
  }

  subscribe (topic: string): void { this.calls.push(`subscribe ${topic}`) }
  unsubscribe (topic: string): void { this.calls.push(`unsubscribe ${topic}`) }
  close (): void {
    this.calls.push('close')
    this.bus.off('message', this.#receive)
  }
}

function node (test: typeof t, adapter: WssAdapter, extra: Partial<WssPluginOptions<any>> = {}) {
  const opened: Array<WebSocketConnection<any>> = []
  const started = start(test, {
    path: '/ws',
    adapter,
    ...extra,
    handler: {
      onConnection: () => ({ onOpen (ws) { opened.push(ws) }, onMessage () {} }),
      ...extra.handler
    }
  })
  return { opened, started }
}

t.test('broadcast and publish reach the connections of the other nodes through the adapter', async (t) => {
  const bus = new EventEmitter()
  const one = new LoopbackAdapter(bus)
  const two = new LoopbackAdapter(bus)
  const a = node(t, one)
  const b = node(t, two)
  const { app: appA, base: baseA } = await a.started
  const { base: baseB } = await b.started
  const onA = await connect(t, `${baseA}/ws`)
  const onB = await connect(t, `${baseB}/ws`)
  const otherOnB = await connect(t, `${baseB}/ws`)
  b.opened[0].subscribe('room')
  t.same(two.calls, ['open', 'subscribe room'])

  const toA = messages(onA, 1)
  const toB = messages(onB, 3)
  const toOther = messages(otherOnB, 2)
  t.equal(appA.wss.broadcast('to all', { except: a.opened[0] }), 0, 'no local recipient but except')
  t.equal(appA.wss.publish('room', { n: 1 }), 0, 'no local subscriber')
  t.equal(appA.wss.broadcast(Buffer.from([1, 2])), 1)
  t.same(await toB, ['to all', '{"n":1}', '\u0001\u0002'])
  t.same(await toOther, ['to all', '\u0001\u0002'])
  t.same(await toA, ['\u0001\u0002'])
  t.same(one.calls, ['open', 'publish *', 'publish room', 'publish *'])

  b.opened[0].unsubscribe('room')
  t.equal(two.calls.at(-1), 'unsubscribe room')
  appA.wss.publish('room', 'nobody') // reaches node two, which has no subscriber left
})

t.test('the adapter is closed when the server terminates, before the handler onTerminate', async (t) => {
  const adapter = new LoopbackAdapter(new EventEmitter())
  const order: string[] = []
  const { started } = node(t, adapter, {
    handler: { onConnection: () => null, onTerminate () { order.push(`onTerminate after ${adapter.calls.at(-1) as string}`) } }
  })
  const { app } = await started
  await app.wss.terminate()
  t.same(order, ['onTerminate after close'])
})

t.test('adapter failures are coded server errors and never reach the caller', async (t) => {
  const errors: Array<{ errCode: number, message: string }> = []
  const failing = deferred()
  const adapter: WssAdapter = {
    open (node) { node.fail(new Error('connection lost')) },
    publish () { throw new Error('publish failed') },
    subscribe () { throw new Error('subscribe failed') },
    unsubscribe () { throw new Error('unsubscribe failed') },
    async close () { throw new Error('close failed') }
  }
  const opened: Array<WebSocketConnection<any>> = []
  const { app, base } = await start(t, {
    path: '/ws',
    adapter,
    handler: {
      onConnection: () => ({ onOpen (ws) { opened.push(ws) }, onMessage () {} }),
      onError (_wss, event) {
        errors.push({ errCode: event.errors[0].errCode, message: event.errors[0].message })
        if (errors.length === 5) failing.resolve()
      }
    }
  })
  const client = await connect(t, `${base}/ws`)
  const received = messages(client, 1)
  t.equal(app.wss.broadcast('still local'), 1)
  t.same(await received, ['still local'])
  opened[0].subscribe('x')
  opened[0].unsubscribe('x')
  client.terminate()
  await app.wss.terminate()
  await failing.promise
  t.same(errors, [
    { errCode: 500, message: 'connection lost' },
    { errCode: 500, message: 'publish failed' },
    { errCode: 500, message: 'subscribe failed' },
    { errCode: 500, message: 'unsubscribe failed' },
    { errCode: 500, message: 'close failed' }
  ])
})

t.test('an adapter without the methods of the contract is an invalid option', async (t) => {
  for (const adapter of [null, {}, { open () {}, publish () {}, subscribe () {}, unsubscribe () {} }]) {
    await t.rejects(start(t, { handler: { onConnection: () => null }, adapter: adapter as unknown as WssAdapter }), {
      code: 'FST_WSS_INVALID_OPTION',
      message: /"adapter"/
    })
  }
})

t.test('an adapter learns the full route pattern of its server at open: context prefix included, /* for a catch-all', async (t) => {
  const routes: string[] = []
  const recording = (): WssAdapter => ({
    open (node) { routes.push(node.route) },
    publish () {},
    subscribe () {},
    unsubscribe () {},
    close () {}
  })
  const app = Fastify()
  t.teardown(() => app.close())
  const handler = { onConnection: () => null }
  await app.register(async (child) => { await child.register(wssPlugin, { handler, path: '/chat/:room', adapter: recording() }) }, { prefix: '/api' })
  await app.register(async (child) => { await child.register(wssPlugin, { handler, adapter: recording() }) }, { prefix: '/api/v1' })
  await app.register(async (child) => { await child.register(wssPlugin, { handler, adapter: recording() }) })
  await app.register(async (child) => { await child.register(wssPlugin, { handler, path: '/feed', adapter: recording() }) })
  await app.ready()
  t.same(routes, ['/api/chat/:room', '/api/v1/*', '/*', '/feed'])
})

t.test('an adapter reports errCode 500 by default, and 501 for the end of an outage with messages not sent', async (t) => {
  const errors: Array<{ errCode: number, message: string }> = []
  const adapter: WssAdapter = {
    open (node) {
      node.fail(new Error('down'))
      node.fail(new Error('up again; 3 messages not sent'), 501)
    },
    publish () {},
    subscribe () {},
    unsubscribe () {},
    close () {}
  }
  await start(t, {
    adapter,
    handler: {
      onConnection: () => null,
      onError (_wss, event) { errors.push({ errCode: event.errors[0].errCode, message: event.errors[0].message }) }
    }
  })
  t.same(errors, [
    { errCode: 500, message: 'down' },
    { errCode: 501, message: 'up again; 3 messages not sent' }
  ])
})

import { createRequire } from 'node:module'
import t from 'tap'
import { Redis } from 'ioredis'
import Fastify, { type FastifyInstance } from 'fastify'
import type WebSocket from 'ws'
import wssPlugin, { type WebSocketConnection, type WebSocketServer, type WssErrorEntry } from '../lib/index.js'
import { connect, listen, messages } from './helpers/index.js'
import { until, turns } from './helpers/until.js'
import { RedisServer, eventually, startNode, withRedisServer, type TestNode } from './helpers/redis.js'

type Test = typeof t

await withRedisServer('the Redis adapter tests', suite)

async function suite (bin: string): Promise<void> {
  // Loaded only here, so that a skipped suite leaves the module out of the coverage report.
  const { redisAdapter } = await import('../lib/adapters/redis.js')

  const redis = await RedisServer.start(bin)
  t.teardown(() => redis.stop())
  const admin = await client(t, redis)

  let prefixes = 0
  /** A channel prefix of its own for each test, so that tests cannot see each other's messages. */
  const prefix = (): string => `test${++prefixes}:`

  type Node = TestNode
  const node = startNode

  /** `count` nodes sharing `server` under one channel prefix. */
  async function nodes (test: Test, count: number, channelPrefix: string, server = redis): Promise<Node[]> {
    const list: Node[] = []
    for (let i = 0; i < count; i++) list.push(await node(test, redisAdapter({ url: server.url, channelPrefix })))
    return list
  }

  /** Every message a client receives, as strings, from now on. */
  function record (ws: WebSocket): string[] {
    const received: string[] = []
    ws.on('message', (data: Buffer) => received.push(data.toString()))
    return received
  }

  async function numsub (channel: string, on = admin): Promise<number> {
    const reply = await on.pubsub('NUMSUB', channel) as [string, number]
    return Number(reply[1])
  }

  async function subscribed (channel: string, count: number, on = admin): Promise<void> {
    await eventually(async () => await numsub(channel, on) === count, `${count} node(s) subscribed to ${channel}`)
  }

  async function clientCount (on = admin): Promise<number> {
    const list = await on.client('LIST') as string
    return list.trim().split('\n').length
  }

  const numbered = Array.from({ length: 200 }, (_, i) => `message ${i}`)

  t.test('a publish on one node reaches the subscribers of every node exactly once and in order', async (t) => {
    const channelPrefix = prefix()
    const [a, b, c] = await nodes(t, 3, channelPrefix)
    const subscribers: WebSocket[] = []
    const others: WebSocket[] = []
    for (const n of [a, b, c]) {
      subscribers.push(await connect(t, n.url))
      n.opened.at(-1)?.subscribe('room')
      others.push(await connect(t, n.url))
    }
    await subscribed(`${channelPrefix}/ws#topic:room`, 3)

    const arrivals = subscribers.map((ws) => messages(ws, numbered.length + 1))
    const toOthers = others.map((ws) => messages(ws, 1))
    for (const text of numbered) t.equal(a.app.wss.publish('room', text), 1)
    a.app.wss.publish('room', 'last')
    for (const received of await Promise.all(arrivals)) t.same(received, [...numbered, 'last'])

    // the first message the non-subscribers get is this broadcast: none of the topic's reached them
    a.app.wss.broadcast('to all')
    t.same(await Promise.all(toOthers), [['to all'], ['to all'], ['to all']])
    t.same(a.errors, [])
  })

  t.test('a broadcast on one node reaches every connection of every node exactly once and in order', async (t) => {
    const [a, b, c] = await nodes(t, 3, prefix())
    const clients: WebSocket[] = []
    for (const n of [a, b, c]) {
      clients.push(await connect(t, n.url), await connect(t, n.url))
    }
    const arrivals = clients.map((ws) => messages(ws, numbered.length + 1))
    for (const text of numbered) t.equal(b.app.wss.broadcast(text), 2)
    b.app.wss.broadcast('last')
    for (const received of await Promise.all(arrivals)) t.same(received, [...numbered, 'last'])
  })

  t.test('text and binary messages cross nodes byte for byte, with their frame type', async (t) => {
    const [a, b] = await nodes(t, 2, prefix())
    const ws = await connect(t, b.url)
    const frames: Array<{ data: Buffer, binary: boolean }> = []
    ws.on('message', (data: Buffer, binary: boolean) => frames.push({ data, binary }))
    const bytes = Buffer.from([0, 1, 0xff, 0xfe, 0x80, 0])
    a.app.wss.broadcast(bytes)
    a.app.wss.broadcast('héllo ✓')
    a.app.wss.broadcast(Buffer.alloc(0))
    a.app.wss.broadcast('')
    await until(() => frames.length === 4, 'four frames arrived')
    t.same(frames, [
      { data: bytes, binary: true },
      { data: Buffer.from('héllo ✓'), binary: false },
      { data: Buffer.alloc(0), binary: true },
      { data: Buffer.alloc(0), binary: false }
    ])
  })

  t.test('except leaves out one local connection; the other nodes deliver to all their connections', async (t) => {
    const channelPrefix = prefix()
    const [a, b] = await nodes(t, 2, channelPrefix)
    const a1 = await connect(t, a.url)
    const a2 = await connect(t, a.url)
    const b1 = await connect(t, b.url)
    for (const ws of a.opened.concat(b.opened)) ws.subscribe('room')
    await subscribed(`${channelPrefix}/ws#topic:room`, 2)
    const gotA1 = messages(a1, 1)
    const gotA2 = messages(a2, 3)
    const gotB1 = messages(b1, 3)
    t.equal(a.app.wss.broadcast('all but a1', { except: a.opened[0] }), 1)
    t.equal(a.app.wss.publish('room', 'room but a1', { except: a.opened[0].id }), 1)
    t.equal(a.app.wss.broadcast('everyone'), 2)
    t.same(await gotA2, ['all but a1', 'room but a1', 'everyone'])
    t.same(await gotB1, ['all but a1', 'room but a1', 'everyone'])
    t.same(await gotA1, ['everyone'], 'a1 got neither message it was excluded from')
  })

  t.test('a node subscribes to a topic channel only while it has local subscribers', async (t) => {
    const channelPrefix = prefix()
    const channel = `${channelPrefix}/ws#topic:news`
    const [a, b] = await nodes(t, 2, channelPrefix)
    const b1 = await connect(t, b.url)
    const b2 = await connect(t, b.url)
    const topics = async (): Promise<string[]> => (await admin.pubsub('CHANNELS', `${channelPrefix}/ws#topic:*`) as string[]).sort()
    t.same(await topics(), [], 'no topic channel before a subscriber')

    b.opened[0].subscribe('news')
    b.opened[1].subscribe('news')
    await subscribed(channel, 1)
    t.same(await topics(), [channel], 'one Redis subscription for two local subscribers')
    const before = messages(b2, 1)
    a.app.wss.publish('news', 'first')
    t.same(await before, ['first'])

    b.opened[0].unsubscribe('news')
    a.app.wss.publish('news', 'second')
    t.same(await messages(b2, 1), ['second'], 'still subscribed while one local subscriber is left')

    const got1 = messages(b1, 1)
    const got2 = messages(b2, 1)
    b.opened[1].unsubscribe('news')
    await subscribed(channel, 0)
    t.same(await topics(), [], 'the last local subscriber left: the channel is gone')
    a.app.wss.publish('news', 'nobody gets this')
    a.app.wss.broadcast('after')
    // published after the topic message by the same node: a message of the topic would come first
    t.same(await got1, ['after'])
    t.same(await got2, ['after'])
    t.same(a.errors.concat(b.errors), [])
  })

  /** One app with a server in each of `contexts` (sibling contexts: prefix, path), all on `redis` with the default channel prefix. */
  async function multiServerApp (test: Test, contexts: Array<{ prefix: string, path?: string }>): Promise<{
    app: FastifyInstance
    base: string
    servers: Array<{ wss: WebSocketServer<any>, opened: Array<WebSocketConnection<any>>, errors: WssErrorEntry[] }>
  }> {
    const app = Fastify()
    test.teardown(() => app.close())
    const servers: Array<{ wss: WebSocketServer<any>, opened: Array<WebSocketConnection<any>>, errors: WssErrorEntry[] }> = []
    for (const { prefix, path } of contexts) {
      const server = { wss: undefined as unknown as WebSocketServer<any>, opened: [] as Array<WebSocketConnection<any>>, errors: [] as WssErrorEntry[] }
      servers.push(server)
      await app.register(async (child) => {
        await child.register(wssPlugin, {
          path,
          adapter: redisAdapter({ url: redis.url }),
          handler: {
            onConnection: () => ({ onOpen (ws: WebSocketConnection<any>) { server.opened.push(ws) }, onMessage () {} }),
            onError (_wss, event) { server.errors.push(...event.errors) }
          }
        })
        server.wss = child.wss
      }, { prefix })
    }
    return { app, base: await listen(app), servers }
  }

  t.test('two servers of one app never receive each other\'s broadcasts or topics, even with the default prefix; the same server on three nodes shares them', async (t) => {
    const cluster = []
    for (let i = 0; i < 3; i++) cluster.push(await multiServerApp(t, [{ prefix: '', path: '/a' }, { prefix: '', path: '/b' }]))
    const onA: string[][] = []
    const onB: string[][] = []
    for (const { base, servers: [a, b] } of cluster) {
      onA.push(record(await connect(t, `${base}/a`)))
      onB.push(record(await connect(t, `${base}/b`)))
      a.opened[0].subscribe('room')
      b.opened[0].subscribe('room')
    }
    for (const channel of ['fastify-wss:/a#broadcast', 'fastify-wss:/b#broadcast', 'fastify-wss:/a#topic:room', 'fastify-wss:/b#topic:room']) {
      await subscribed(channel, 3)
    }

    const [first] = cluster
    t.equal(first.servers[0].wss.broadcast('broadcast of /a'), 1)
    t.equal(first.servers[0].wss.publish('room', 'room of /a'), 1)
    await until(() => onA.every((list) => list.length === 2), 'every /a client of the three nodes got both messages')
    t.same(onA, Array(3).fill(['broadcast of /a', 'room of /a']), 'the same server on three nodes shares broadcasts and topics')

    // Redis pushed the messages of /a before it handled these: had a /b node subscribed to them, they would come first
    t.equal(first.servers[1].wss.broadcast('broadcast of /b'), 1)
    t.equal(first.servers[1].wss.publish('room', 'room of /b'), 1)
    await until(() => onB.every((list) => list.length === 2), 'every /b client of the three nodes got both messages')
    t.same(onB, Array(3).fill(['broadcast of /b', 'room of /b']), 'no message of /a reached a /b client')
    await turns(5)
    t.same(onA.map((list) => list.length), [2, 2, 2], 'no message of /b reached an /a client')
    t.same(cluster.flatMap(({ servers }) => servers.flatMap((server) => server.errors)), [])
  })

  t.test('the channels are named from the full route pattern, prefix of the context included; the catch-all is /*', async (t) => {
    const { app, base, servers } = await multiServerApp(t, [
      { prefix: '/api', path: '/chat/:room' },
      { prefix: '/api/v1' },
      { prefix: '' },
      { prefix: '/odd', path: '/100%#hash' }
    ])
    const [chat, nested, root, odd] = servers
    await connect(t, `${base}/api/chat/lobby`)
    await connect(t, `${base}/api/v1/anything`)
    await connect(t, `${base}/elsewhere`)
    chat.opened[0].subscribe('news')
    nested.opened[0].subscribe('news')
    root.opened[0].subscribe('news')
    await subscribed('fastify-wss:/*#topic:news', 1)
    t.same((await admin.pubsub('CHANNELS', 'fastify-wss:/[a*]*') as string[]).sort(), [
      'fastify-wss:/*#broadcast',
      'fastify-wss:/*#topic:news',
      'fastify-wss:/api/chat/:room#broadcast',
      'fastify-wss:/api/chat/:room#topic:news',
      'fastify-wss:/api/v1/*#broadcast',
      'fastify-wss:/api/v1/*#topic:news'
    ])
    // a # or % of the route is escaped, so that the route always ends at the first #
    t.equal(await numsub('fastify-wss:/odd/100%25%23hash#broadcast'), 1)
    t.equal(odd.wss.path, '/100%#hash')
    t.same(servers.flatMap((server) => server.errors), [])
    await app.close()
  })

  t.test('one redisAdapter() given to two servers: the second one reports it and stays local', async (t) => {
    const adapter = redisAdapter({ url: redis.url, channelPrefix: prefix() })
    const errors: WssErrorEntry[] = []
    const app = Fastify()
    t.teardown(() => app.close())
    for (const path of ['/one', '/two']) {
      await app.register(async (child) => {
        await child.register(wssPlugin, { path, adapter, handler: { onConnection: () => null, onError (_wss, event) { errors.push(...event.errors) } } })
      })
    }
    await app.ready()
    t.equal(errors.length, 1)
    t.equal(errors[0].errCode, 500)
    t.match(errors[0].message, /a redisAdapter\(\) serves one server: create one for each server/)
  })

  t.test('two apps with their own channelPrefix share one Redis without seeing each other', async (t) => {
    const [one1, one2] = await nodes(t, 2, 'one:')
    const [two1, two2] = await nodes(t, 2, 'two:')
    const ws = await connect(t, one2.url)
    const other = await connect(t, two2.url)
    for (const n of [one2, two2]) n.opened[0].subscribe('room')
    await subscribed('one:/ws#topic:room', 1)
    await subscribed('two:/ws#topic:room', 1)
    t.same((await admin.pubsub('CHANNELS', '*#broadcast') as string[]).sort(), ['one:/ws#broadcast', 'two:/ws#broadcast'])

    const gotOne = messages(ws, 2)
    const gotOther = messages(other, 1)
    one1.app.wss.broadcast('for one')
    one1.app.wss.publish('room', 'room of one')
    t.same(await gotOne, ['for one', 'room of one'])
    // Redis handled the publishes of app one before this one: had app two seen them, they would come first
    two1.app.wss.publish('room', 'for two')
    t.same(await gotOther, ['for two'])
  })

  t.test('the default channel prefix is fastify-wss:', async (t) => {
    const a = await node(t, redisAdapter({ url: redis.url }))
    const b = await node(t, redisAdapter({ url: redis.url }))
    const ws = await connect(t, b.url)
    b.opened[0].subscribe('default')
    await subscribed('fastify-wss:/ws#topic:default', 1)
    t.equal(await numsub('fastify-wss:/ws#broadcast'), 2)
    const got = messages(ws, 1)
    a.app.wss.publish('default', 'hello')
    t.same(await got, ['hello'])
  })

  t.test('a message on the channels that no fastify-wss node published is reported and not delivered', async (t) => {
    const channelPrefix = prefix()
    const [a, b] = await nodes(t, 2, channelPrefix)
    const ws = await connect(t, b.url)
    const got = messages(ws, 1)
    await admin.publish(`${channelPrefix}/ws#broadcast`, 'short')
    await admin.publish(`${channelPrefix}/ws#broadcast`, Buffer.from([7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
    const entry = await b.error(/ignored a message on "test\d+:\/ws#broadcast"/)
    t.equal(entry.errCode, 500)
    t.equal((entry.error as Error & { code: string }).code, 'FST_WSS_ADAPTER_ERROR')
    await until(() => b.errors.length === 2, 'both messages reported')
    a.app.wss.broadcast('real')
    t.same(await got, ['real'])
  })

  t.test('a subscription or a publish that Redis refuses is a coded server error', async (t) => {
    const channelPrefix = prefix()
    // this user may only use the broadcast channel
    await admin.call('ACL', 'SETUSER', 'limited', 'on', '>secret', '~*', '+@all', 'resetchannels', `&${channelPrefix}/ws#broadcast`)
    t.teardown(() => admin.call('ACL', 'DELUSER', 'limited'))
    const limited = await client(t, redis, { username: 'limited', password: 'secret' })
    const a = await node(t, redisAdapter({ client: limited, channelPrefix }))
    await connect(t, a.url)
    a.opened[0].subscribe('forbidden')
    const refused = await a.error(/^The cluster adapter failed: subscribe to "test\d+:\/ws#topic:forbidden": NOPERM/)
    t.equal(refused.errCode, 500)
    t.equal(a.app.wss.publish('forbidden', 'x'), 1, 'delivered locally')
    const failed = await a.error(/^The cluster adapter failed: publish to "test\d+:\/ws#topic:forbidden": NOPERM/)
    t.equal(failed.errCode, 500)
    t.equal((failed.error as Error & { code: string }).code, 'FST_WSS_ADAPTER_ERROR')
    t.ok((failed.error as Error).cause instanceof Error, 'the Redis error is the cause')
  })

  t.test('an outage is one coded error per Redis connection, its end one report with the count of messages not sent; local delivery goes on', async (t) => {
    const own = await RedisServer.start(bin)
    t.teardown(() => own.stop())
    const ownAdmin = await client(t, own)
    const channelPrefix = prefix()
    const channel = `${channelPrefix}/ws#topic:room`
    const cluster = await nodes(t, 3, channelPrefix, own)
    const received: string[][] = []
    for (const n of cluster) {
      received.push(record(await connect(t, n.url)))
      n.opened[0].subscribe('room')
    }
    await subscribed(channel, 3, ownAdmin)
    const [a, b, c] = cluster

    await own.stop()
    for (const n of cluster) {
      await n.error(/^The cluster adapter failed: the publishing Redis connection is down: /)
      await n.error(/^The cluster adapter failed: the subscribing Redis connection is down: /)
    }
    const during = Array.from({ length: 10_000 }, (_, i) => `during ${i}`)
    let local = 0
    t.doesNotThrow(() => {
      for (const [i, text] of during.entries()) local += i % 2 === 0 ? a.app.wss.publish('room', text) : a.app.wss.broadcast(text)
    })
    t.equal(local, during.length, 'each message was delivered to the local connection')
    await until(() => received[0].length === during.length, 'the local connection got every message')
    t.same(received[0], during, 'in order')
    t.equal(a.errors.length, 2, 'no error per message: one per connection for the whole outage')

    await own.restart()
    const ended = await a.error(/the publishing Redis connection is up/)
    t.equal(ended.errCode, 501)
    t.equal((ended.error as Error & { code: string }).code, 'FST_WSS_ADAPTER_ERROR')
    t.equal(ended.message, 'The cluster adapter failed: the publishing Redis connection is up; 10000 message(s) could not be sent to the other nodes while it was down')
    for (const n of [b, c]) {
      t.match((await n.error(/the publishing Redis connection is up/)).message, /; 0 message\(s\) could not be sent/)
    }
    await subscribed(channel, 3, ownAdmin)
    await subscribed(`${channelPrefix}/ws#broadcast`, 3, ownAdmin)
    a.app.wss.publish('room', 'after')
    await until(() => received.every((list) => list.includes('after')), 'every node got the message published after the restart')
    t.same(received.slice(1), [['after'], ['after']], 'the messages published while Redis was down never reached the other nodes')
    for (const n of cluster) {
      t.same(n.errors.map((entry) => entry.errCode).sort(), [500, 500, 501], 'two outages reported (publishing, subscribing connection) and one end')
    }
  })

  t.test('a message published before the publishing connection was ever ready is reported as not sent once it is', async (t) => {
    const adapter = redisAdapter({ url: redis.url, channelPrefix: prefix() })
    const reports: Array<{ error: Error, errCode: number | undefined }> = []
    const opening = adapter.open({ route: '/ws', deliver () {}, fail (error, errCode) { reports.push({ error: error as Error, errCode }) } })
    t.teardown(() => adapter.close())
    adapter.publish({ topic: undefined, payload: Buffer.from('too early'), binary: false })
    await opening
    await until(() => reports.length === 1, 'the report')
    t.equal(reports[0].errCode, 501)
    t.equal(reports[0].error.message, 'The cluster adapter failed: the publishing Redis connection is up; 1 message(s) could not be sent to the other nodes while it was down')
  })

  t.test('ioredis 6: a client of the other major carries broadcasts and topics across nodes, and reports an outage and its end', async (t) => {
    // ioredis6 is ioredis 6 installed under an npm alias; the adapter's connections are duplicates of this client.
    // The apps close right after the outage, often while the subscriptions are being restored: that must leave no
    // unhandled rejection (ioredis's own resubscription did, hence the adapter's).
    const { Redis: Redis6 } = await import('ioredis6')
    t.match(createRequire(import.meta.url)('ioredis6/package.json').version, /^6\./, 'ioredis6 is ioredis 6')
    const own = await RedisServer.start(bin)
    t.teardown(() => own.stop())
    const ownAdmin = await client(t, own)
    const channelPrefix = prefix()
    const cluster: Node[] = []
    for (let i = 0; i < 3; i++) {
      const mine = new Redis6({ host: '127.0.0.1', port: own.port })
      mine.on('error', () => {})
      t.teardown(() => mine.disconnect())
      cluster.push(await node(t, redisAdapter({ client: mine as unknown as Redis, channelPrefix })))
    }
    const [a, b, c] = cluster
    const received: string[][] = []
    for (const n of cluster) {
      received.push(record(await connect(t, n.url)))
      n.opened[0].subscribe('room')
    }
    await subscribed(`${channelPrefix}/ws#topic:room`, 3, ownAdmin)
    a.app.wss.broadcast('broadcast')
    c.app.wss.publish('elsewhere', 'nobody')
    a.app.wss.publish('room', 'topic')
    await until(() => received.every((list) => list.length === 2), 'every node got both messages')
    t.same(received, Array(3).fill(['broadcast', 'topic']), 'in the order of the publishing node')
    b.app.wss.publish('room', 'from b')
    await until(() => received.every((list) => list.length === 3), 'every node got the message of b')
    t.same(received.map((list) => list[2]), ['from b', 'from b', 'from b'])

    await own.stop()
    await a.error(/the publishing Redis connection is down/)
    for (let i = 0; i < 3; i++) a.app.wss.broadcast(`during ${i}`)
    await own.restart()
    t.match((await a.error(/the publishing Redis connection is up/)).message, /; 3 message\(s\) could not be sent/)
    t.same(a.errors.map((entry) => entry.errCode).sort(), [500, 500, 501])
  })

  t.test('a node started while Redis is down starts, reports it, and joins the cluster once Redis is up', async (t) => {
    const own = await RedisServer.start(bin)
    t.teardown(() => own.stop())
    await own.stop()
    const channelPrefix = prefix()
    const late = await node(t, redisAdapter({ url: own.url, channelPrefix }))
    const entry = await late.error(/^The cluster adapter failed: the (publishing|subscribing) Redis connection is down: /)
    t.equal(entry.errCode, 500)
    // ioredis retries every 50, 100, 150... ms and fails each time: one report per connection and outage
    await new Promise((resolve) => setTimeout(resolve, 1000))
    t.equal(late.errors.length, 2, 'reported once per connection, not on every retry')
    const ws = await connect(t, late.url)
    late.opened[0].subscribe('room')

    await own.restart()
    const ownAdmin = await client(t, own)
    await subscribed(`${channelPrefix}/ws#broadcast`, 1, ownAdmin)
    await subscribed(`${channelPrefix}/ws#topic:room`, 1, ownAdmin)
    const [other] = await nodes(t, 1, channelPrefix, own)
    const got = messages(ws, 2)
    other.app.wss.broadcast('hello')
    other.app.wss.publish('room', 'room')
    t.same(await got, ['hello', 'room'])
    t.match((await late.error(/the publishing Redis connection is up/)).message, /; 0 message\(s\) could not be sent/)
  })

  t.test('publishes refused by a connection that is breaking belong to its one outage report, and are counted when it ends', async (t) => {
    // the adapter's connections are duplicates of this client: keep them, to break the publishing one
    const mine = new Redis(redis.url, { lazyConnect: true })
    t.teardown(() => mine.disconnect())
    const duplicates: Redis[] = []
    const duplicate = mine.duplicate.bind(mine)
    mine.duplicate = (options) => {
      const connection = duplicate(options)
      duplicates.push(connection)
      return connection
    }
    const a = await node(t, redisAdapter({ client: mine, channelPrefix: prefix() }))
    const [publishing] = duplicates
    t.equal(publishing.status, 'ready')
    // Its socket is gone, ioredis has not noticed yet: every publish of this tick is refused.
    ;(publishing as unknown as { stream: { destroy: () => void } }).stream.destroy()
    for (let i = 0; i < 50; i++) a.app.wss.broadcast(`refused ${i}`)
    const end = await a.error(/the publishing Redis connection is up/)
    t.equal(end.errCode, 501)
    t.match(end.message, /; 50 message\(s\) could not be sent/, 'the 50 refused are counted')
    t.same(a.errors.map((entry) => entry.errCode), [500, 501], 'one report for the outage, one for its end, none per message')
  })

  t.test('app.close() quits the connections the adapter opened, at once even while Redis is down', async (t) => {
    const own = await RedisServer.start(bin)
    t.teardown(() => own.stop())
    const ownAdmin = await client(t, own)
    const baseline = await clientCount(ownAdmin)
    const up = await node(t, redisAdapter({ url: own.url, channelPrefix: prefix() }))
    t.equal(await clientCount(ownAdmin), baseline + 2, 'two connections per node')
    await up.app.close()
    await eventually(async () => await clientCount(ownAdmin) === baseline, 'the connections are gone')

    const down = await node(t, redisAdapter({ url: own.url, channelPrefix: prefix() }))
    await connect(t, down.url)
    await own.stop()
    await down.error(/the subscribing Redis connection/)
    await down.error(/the publishing Redis connection/)
    down.opened[0].subscribe('queued') // waits for Redis, which will not come back before the close
    const reported = down.errors.length
    await down.app.close()
    t.equal(down.errors.length, reported, 'closing reported nothing')
  })

  t.test('app.close() leaves a client passed in open and usable', async (t) => {
    const mine = await client(t, redis)
    const baseline = await clientCount()
    const a = await node(t, redisAdapter({ client: mine, channelPrefix: prefix() }))
    t.equal(await clientCount(), baseline + 2, 'the adapter uses two duplicates of the client')
    await a.app.close()
    await eventually(async () => await clientCount() === baseline, 'the duplicates are gone')
    t.equal(mine.status, 'ready')
    t.equal(await mine.ping(), 'PONG')
  })

  t.test('after the app closed, a broadcast reports nothing and throws nothing', async (t) => {
    const a = await node(t, redisAdapter({ url: redis.url, channelPrefix: prefix() }))
    await a.app.close()
    t.equal(a.app.wss.broadcast('late'), 0)
    await turns(5)
    t.same(a.errors, [])
  })

  t.test('an adapter that was never opened publishes nothing and closes at once', async (t) => {
    const adapter = redisAdapter({ url: redis.url })
    adapter.publish({ topic: undefined, payload: Buffer.from('x'), binary: false })
    await adapter.close()
    t.pass('nothing happened')
  })

  t.test('redisAdapter needs one of a url, a client or a cluster', async (t) => {
    const mine = await client(t, redis)
    for (const options of [{}, undefined, { url: redis.url, client: mine }, { url: redis.url, cluster: [{ port: redis.port }] }]) {
      t.throws(() => redisAdapter(options as never), {
        code: 'FST_WSS_INVALID_OPTION',
        message: 'fastify-wss: option "redisAdapter" needs one of "url", "client" or "cluster"'
      })
    }
  })
}

/** An ioredis client of the test, quit at its end. */
async function client (test: Test, server: RedisServer, options: Record<string, unknown> = {}): Promise<Redis> {
  const redis = new Redis({ host: '127.0.0.1', port: server.port, ...options })
  // the tests stop servers under their clients on purpose
  redis.on('error', () => {})
  test.teardown(async () => { redis.disconnect() })
  await redis.ping()
  return redis
}

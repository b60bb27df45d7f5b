import { createRequire } from 'node:module'
import t from 'tap'
import { Cluster, Redis } from 'ioredis'
import Fastify from 'fastify'
import type WebSocket from 'ws'
import wssPlugin, { type WebSocketConnection, type WebSocketServer, type WssErrorEntry } from '../lib/index.js'
import { connect, listen, messages } from './helpers/index.js'
import { until, turns } from './helpers/until.js'
import { eventually, startNode, withRedisServer, type TestNode } from './helpers/redis.js'
import { RedisCluster } from './helpers/redis-cluster.js'

type Test = typeof t

await withRedisServer('the Redis Cluster adapter tests', suite)

async function suite (bin: string): Promise<void> {
  // Loaded only here, so that a skipped suite leaves the modules out of the coverage report.
  const { redisAdapter } = await import('../lib/adapters/redis.js')
  const { slotOf } = await import('../lib/adapters/redis-cluster.js')

  const cluster = await RedisCluster.start(bin)
  t.teardown(() => cluster.stop())
  const [admin] = cluster.nodes.map((node) => node.admin)

  let prefixes = 0
  /** A channel prefix of its own for each test, so that tests cannot see each other's messages. */
  const prefix = (): string => `test${++prefixes}:`

  type Node = TestNode
  const node = startNode

  /** `count` nodes on the cluster (from its startup nodes) under one channel prefix. */
  async function nodes (test: Test, count: number, channelPrefix: string): Promise<Node[]> {
    const list: Node[] = []
    for (let i = 0; i < count; i++) list.push(await node(test, redisAdapter({ cluster: cluster.startupNodes, channelPrefix })))
    return list
  }

  /** Every message a client receives, as strings, from now on. */
  function record (ws: WebSocket): string[] {
    const received: string[] = []
    ws.on('message', (data: Buffer) => received.push(data.toString()))
    return received
  }

  /** How many nodes are subscribed to the shard channel, on the master of its slot. */
  async function shardSubscribers (channel: string): Promise<number> {
    const master = await cluster.masterOf(slotOf(channel))
    const reply = await master.admin.call('PUBSUB', 'SHARDNUMSUB', channel) as [string, number]
    return Number(reply[1])
  }

  async function subscribed (channel: string, count: number): Promise<void> {
    await eventually(async () => await shardSubscribers(channel) === count, `${count} node(s) subscribed to ${channel}`)
  }

  /** Topics of `channelPrefix` on /ws, `perShard` for each master, each master's in the order of `cluster.nodes`. */
  async function topicsOnEveryShard (channelPrefix: string, perShard: number): Promise<string[][]> {
    const masters = await Promise.all(cluster.nodes.slice(0, 3).map(async (master) => master.address))
    const found: string[][] = masters.map(() => [])
    for (let i = 0; found.some((list) => list.length < perShard); i++) {
      const topic = `topic-${i}`
      const owner = await cluster.masterOf(slotOf(`${channelPrefix}/ws#topic:${topic}`))
      const list = found[masters.indexOf(owner.address)]
      if (list.length < perShard) list.push(topic)
    }
    return found
  }

  t.test('the slot of a channel is the one Redis computes, hash tags included', async (t) => {
    const names = ['fastify-wss:/ws#broadcast', 'fastify-wss:/ws#topic:room', 'x{tag}y', '{tag}', 'a{}b{c}', '{unclosed', 'a}b{c', 'héllo ✓ 😀', '', '{}', '{{a}}']
    for (const name of names) {
      t.equal(slotOf(name), await admin.cluster('KEYSLOT', name), name)
    }
  })

  t.test('a publish on one node reaches the subscribers of every node exactly once and in order, each topic through its own shard', async (t) => {
    const channelPrefix = prefix()
    const cluster3 = await nodes(t, 3, channelPrefix)
    const byShard = await topicsOnEveryShard(channelPrefix, 2)
    const topics = byShard.flat()
    const subscribers: string[][] = []
    for (const n of cluster3) {
      subscribers.push(record(await connect(t, n.url)))
      for (const topic of topics) n.opened.at(-1)?.subscribe(topic)
    }
    for (const topic of topics) await subscribed(`${channelPrefix}/ws#topic:${topic}`, 3)

    const count = 100
    for (let i = 0; i < count; i++) {
      for (const [n, from] of cluster3.entries()) {
        for (const topic of topics) from.app.wss.publish(topic, `${n} ${topic} ${i}`)
        from.app.wss.broadcast(`${n} broadcast ${i}`)
      }
    }
    const expected = cluster3.length * count * (topics.length + 1)
    await until(() => subscribers.every((received) => received.length >= expected), 'every subscriber got every message', 4000)
    for (const received of subscribers) {
      t.equal(received.length, expected, 'exactly once')
      for (const n of cluster3.keys()) {
        for (const channel of [...topics, 'broadcast']) {
          const sequence = received.filter((text) => text.startsWith(`${n} ${channel} `))
          t.same(sequence, Array.from({ length: count }, (_, i) => `${n} ${channel} ${i}`), `in the order of node ${n} on ${channel}`)
        }
      }
    }
    for (const n of cluster3) t.same(n.errors, [])

    // each master holds the subscriptions of its own topics only (and the broadcast channel of its slot)
    for (const [i, master] of cluster.nodes.slice(0, 3).entries()) {
      const held = (await master.admin.call('PUBSUB', 'SHARDCHANNELS', `${channelPrefix}*`) as string[]).sort()
      const broadcast = `${channelPrefix}/ws#broadcast`
      const own = byShard[i].map((topic) => `${channelPrefix}/ws#topic:${topic}`)
      if ((await cluster.masterOf(slotOf(broadcast))) === master) own.push(broadcast)
      t.same(held, own.sort(), `master ${master.address} holds its own channels`)
    }
  })

  t.test('two servers of one app never receive each other\'s broadcasts or topics with the default prefix; the same server on three nodes shares them', async (t) => {
    const apps: Array<{ base: string, servers: Array<{ wss: WebSocketServer<any>, opened: Array<WebSocketConnection<any>>, errors: WssErrorEntry[] }> }> = []
    for (let i = 0; i < 3; i++) {
      const app = Fastify()
      t.teardown(() => app.close())
      const servers: Array<{ wss: WebSocketServer<any>, opened: Array<WebSocketConnection<any>>, errors: WssErrorEntry[] }> = []
      for (const path of ['/a', '/b']) {
        const server = { wss: undefined as unknown as WebSocketServer<any>, opened: [] as Array<WebSocketConnection<any>>, errors: [] as WssErrorEntry[] }
        servers.push(server)
        await app.register(async (child) => {
          await child.register(wssPlugin, {
            path,
            adapter: redisAdapter({ cluster: cluster.startupNodes }),
            handler: {
              onConnection: () => ({ onOpen (ws: WebSocketConnection<any>) { server.opened.push(ws) }, onMessage () {} }),
              onError (_wss, event) { server.errors.push(...event.errors) }
            }
          })
          server.wss = child.wss
        })
      }
      apps.push({ base: await listen(app), servers })
    }
    const onA: string[][] = []
    const onB: string[][] = []
    for (const { base, servers: [a, b] } of apps) {
      onA.push(record(await connect(t, `${base}/a`)))
      onB.push(record(await connect(t, `${base}/b`)))
      a.opened[0].subscribe('room')
      b.opened[0].subscribe('room')
    }
    await subscribed('fastify-wss:/a#topic:room', 3)
    await subscribed('fastify-wss:/b#topic:room', 3)
    t.equal(await shardSubscribers('fastify-wss:/a#broadcast'), 3)
    t.equal(await shardSubscribers('fastify-wss:/b#broadcast'), 3)

    const [first, second] = apps
    first.servers[0].wss.broadcast('a: broadcast')
    first.servers[0].wss.publish('room', 'a: room')
    second.servers[1].wss.broadcast('b: broadcast')
    second.servers[1].wss.publish('room', 'b: room')
    await until(() => onA.concat(onB).every((received) => received.length === 2), 'every client got two messages')
    // then the last messages on each channel: had the other server's reached a client, they would be there by now
    first.servers[0].wss.broadcast('a: end')
    first.servers[0].wss.publish('room', 'a: room end')
    second.servers[1].wss.broadcast('b: end')
    second.servers[1].wss.publish('room', 'b: room end')
    await until(() => onA.concat(onB).every((received) => received.length === 4), 'every client got the ends')
    // no order between channels of different shards
    t.same(onA.map((received) => received.sort()), Array(3).fill(['a: broadcast', 'a: end', 'a: room', 'a: room end']))
    t.same(onB.map((received) => received.sort()), Array(3).fill(['b: broadcast', 'b: end', 'b: room', 'b: room end']))
    t.same(apps.flatMap(({ servers }) => servers.flatMap((server) => server.errors)), [])
    const channels: string[] = []
    for (const master of cluster.nodes.slice(0, 3)) channels.push(...await master.admin.call('PUBSUB', 'SHARDCHANNELS', 'fastify-wss:*') as string[])
    t.same(channels.sort(), ['fastify-wss:/a#broadcast', 'fastify-wss:/a#topic:room', 'fastify-wss:/b#broadcast', 'fastify-wss:/b#topic:room'], 'one channel of each kind per server')
  })

  t.test('a Cluster passed in is left open and usable; the connections of an adapter made from startup nodes are all closed', async (t) => {
    const count = async (): Promise<number[]> => await Promise.all(cluster.nodes.map(async (server) => (await server.admin.client('LIST') as string).trim().split('\n').length))
    const mine = new Cluster(cluster.startupNodes)
    t.teardown(() => mine.disconnect())
    await mine.ping()
    const baseline = await count()

    const a = await node(t, redisAdapter({ cluster: mine, channelPrefix: prefix() }))
    const b = await node(t, redisAdapter({ cluster: cluster.startupNodes, channelPrefix: prefix() }))
    const during = await count()
    for (const i of [0, 1, 2]) t.ok(during[i] >= baseline[i] + 4, `two connections of each adapter to master ${i}`)
    await a.app.close()
    await b.app.close()
    await eventually(async () => (await count()).every((clients, i) => clients === baseline[i]), 'every connection of the adapters is closed')
    t.equal(mine.status, 'ready')
    t.equal(await mine.ping(), 'PONG')
  })

  t.test('a subscription or a publish that the cluster refuses is a coded server error; the adapter uses the redisOptions of the Cluster', async (t) => {
    const channelPrefix = prefix()
    // this user may only use the broadcast channel
    for (const server of cluster.nodes) {
      await server.admin.call('ACL', 'SETUSER', 'limited', 'on', '>secret', '~*', '+@all', 'resetchannels', `&${channelPrefix}/ws#broadcast`)
    }
    t.teardown(async () => { for (const server of cluster.nodes) await server.admin.call('ACL', 'DELUSER', 'limited') })
    const limited = new Cluster(cluster.startupNodes, { redisOptions: { username: 'limited', password: 'secret' } })
    t.teardown(() => limited.disconnect())
    const a = await node(t, redisAdapter({ cluster: limited, channelPrefix }))
    await connect(t, a.url)
    a.opened[0].subscribe('forbidden')
    const refused = await a.error(/^The cluster adapter failed: subscribe to "test\d+:\/ws#topic:forbidden": NOPERM/)
    t.equal(refused.errCode, 500)
    t.equal(a.app.wss.publish('forbidden', 'x'), 1, 'delivered locally')
    const failed = await a.error(/^The cluster adapter failed: publish to "test\d+:\/ws#topic:forbidden": NOPERM/)
    t.equal(failed.errCode, 500)
    t.equal((failed.error as Error & { code: string }).code, 'FST_WSS_ADAPTER_ERROR')
    t.ok((failed.error as Error).cause instanceof Error, 'the Redis error is the cause')
    t.equal(a.errors.length, 2)
  })

  /**
   * A slot that moves to another master (no failover), seen by nodes whose
   * Clusters are of `Major` (ioredis 5 or 6): the publishing node's first
   * message refused is one outage, which ends once it has read the slot map
   * again; a subscribing node follows the channel (Redis drops its
   * subscription, ioredis says so), another one that subscribes a channel of
   * that slot with a stale slot map finds where it now lives.
   */
  async function slotMove (t: Test, Major: typeof Cluster): Promise<void> {
    const channelPrefix = prefix()
    const clusters: Cluster[] = []
    for (let i = 0; i < 3; i++) {
      const mine = new Major(cluster.startupNodes)
      mine.on('error', () => {})
      t.teardown(() => mine.disconnect())
      clusters.push(mine)
    }
    const a = await node(t, redisAdapter({ cluster: clusters[0], channelPrefix }))
    const b = await node(t, redisAdapter({ cluster: clusters[1], channelPrefix }))
    const c = await node(t, redisAdapter({ cluster: clusters[2], channelPrefix }))
    const onB = record(await connect(t, b.url))
    const onC = record(await connect(t, c.url))
    // two topics of one slot, that of the hash tag {moving}
    const [first, second] = ['{moving}1', '{moving}2'].map((topic) => ({ topic, channel: `${channelPrefix}/ws#topic:${topic}` }))
    b.opened[0].subscribe(first.topic)
    await subscribed(first.channel, 1)

    const slot = slotOf(first.channel)
    const from = await cluster.masterOf(slot)
    const to = cluster.nodes.slice(0, 3).find((master) => master !== from) as typeof from
    const [fromId, toId] = [await from.id(), await to.id()]
    const move = async (source: typeof from, target: typeof from, sourceId: string, targetId: string): Promise<void> => {
      await target.admin.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId)
      await source.admin.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId)
      await target.admin.call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId)
      await source.admin.call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId)
    }
    await move(from, to, fromId, toId)
    t.teardown(async () => {
      // back where it was, for the tests that follow
      await move(to, from, toId, fromId)
      await cluster.settled()
    })

    // a still sends to the old master, which refuses it
    a.app.wss.publish(first.topic, 'refused')
    const refused = await a.error(/the publishing connection to Redis Cluster node/)
    t.equal(refused.errCode, 500)
    t.equal(refused.message, `The cluster adapter failed: the publishing connection to Redis Cluster node ${from.address} is down: MOVED ${slot} ${to.address}`)
    const followed = await a.error(/follows the new slot map/)
    t.equal(followed.errCode, 501)
    t.equal(followed.message, `The cluster adapter failed: the publishing connection to Redis Cluster node ${from.address} follows the new slot map; 1 message(s) could not be sent to the other nodes while it was down`)

    c.opened[0].subscribe(second.topic)
    for (const { channel } of [first, second]) {
      await eventually(async () => (await to.admin.call('PUBSUB', 'SHARDNUMSUB', channel) as [string, number])[1] === 1, `subscribed to ${channel} on the new master`)
    }
    a.app.wss.publish(first.topic, 'one')
    a.app.wss.publish(second.topic, 'two')
    await until(() => onB.length === 1 && onC.length === 1, 'b and c got a message')
    t.same([onB, onC], [['one'], ['two']], 'the messages published after the move, through the new master')
    t.equal(a.errors.length, 2)
    t.same(b.errors.concat(c.errors), [], 'the subscribing nodes just follow')
  }

  t.test('a slot that moves to another master: the first message refused is one outage, the subscribers follow the channel', async (t) => {
    await slotMove(t, Cluster)
  })

  t.test('ioredis 6: the same, with Clusters (and so connections) of the other major', async (t) => {
    const { Cluster: Cluster6 } = await import('ioredis6')
    await slotMove(t, Cluster6 as unknown as typeof Cluster)
  })

  t.test('connections to a master lost and back: one report of each, the end with the count, the subscriptions restored', async (t) => {
    const channelPrefix = prefix()
    const [a, b] = await nodes(t, 2, channelPrefix)
    const [topic] = (await topicsOnEveryShard(channelPrefix, 1))[1]
    const channel = `${channelPrefix}/ws#topic:${topic}`
    const master = await cluster.masterOf(slotOf(channel))
    const received = record(await connect(t, b.url))
    b.opened[0].subscribe(topic)
    await subscribed(channel, 1)

    // the master drops every connection but the test's own
    await master.admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    await master.admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
    for (const n of [a, b]) {
      for (const role of ['publishing', 'subscribing']) {
        const down = await n.error(new RegExp(`the ${role} connection to Redis Cluster node ${master.address} is down`))
        t.equal(down.message, `The cluster adapter failed: the ${role} connection to Redis Cluster node ${master.address} is down: connection lost`)
      }
    }
    a.app.wss.publish(topic, 'during')
    const up = await a.error(/is up; \d+ message/)
    t.equal(up.errCode, 501)
    const unsent = Number(/; (\d+) message/.exec(up.message)?.[1])
    t.equal(up.message, `The cluster adapter failed: the publishing connection to Redis Cluster node ${master.address} is up; ${unsent} message(s) could not be sent to the other nodes while it was down`)
    t.match((await b.error(/is up; \d+ message/)).message, /is up; 0 message\(s\)/)

    await subscribed(channel, 1)
    a.app.wss.publish(topic, 'after')
    await until(() => received.includes('after'), 'b got the message published after the outage')
    t.same(received, unsent === 1 ? ['after'] : ['during', 'after'], 'a message is either delivered or counted as not sent')
    for (const n of [a, b]) t.same(n.errors.map((entry) => entry.errCode).sort(), [500, 500, 501])
  })

  t.test('a node started while the cluster cannot be reached starts, reports it once, and joins once it can', async (t) => {
    // its only startup node: a replica, down for a while
    const replica = await cluster.replicaOf(await cluster.masterOf(0))
    await replica.kill()
    t.teardown(async () => {
      if (!replica.running) await replica.start()
    })
    const channelPrefix = prefix()
    const late = await node(t, redisAdapter({ cluster: [{ host: '127.0.0.1', port: replica.port }], channelPrefix }))
    const entry = await late.error(/the Redis Cluster cannot be reached/)
    t.equal(entry.errCode, 500)
    t.match(entry.message, /^The cluster adapter failed: the Redis Cluster cannot be reached: /)
    const received = record(await connect(t, late.url))
    late.opened[0].subscribe('room')
    late.opened[0].subscribe('gone')
    late.opened[0].unsubscribe('gone')
    t.equal(late.app.wss.publish('room', 'unsent'), 1, 'delivered locally')
    late.app.wss.broadcast('unsent too')
    // ioredis tries again every 100 ms or so, and fails each time
    await new Promise((resolve) => setTimeout(resolve, 500))
    t.equal(late.errors.length, 1, 'reported once, not on every retry')

    await replica.start()
    const read = await late.error(/the slot map of the Redis Cluster is read/)
    t.equal(read.errCode, 501)
    t.equal(read.message, 'The cluster adapter failed: the slot map of the Redis Cluster is read; 2 message(s) could not be sent to the other nodes before')
    const [other] = await nodes(t, 1, channelPrefix)
    await subscribed(`${channelPrefix}/ws#topic:room`, 1)
    await subscribed(`${channelPrefix}/ws#broadcast`, 2)
    t.equal(await shardSubscribers(`${channelPrefix}/ws#topic:gone`), 0)
    other.app.wss.broadcast('hello')
    other.app.wss.publish('room', 'room')
    await until(() => received.length === 4, 'the messages of the other node')
    t.same(received.slice(0, 2), ['unsent', 'unsent too'])
    // no order between channels of different shards
    t.same(received.slice(2).sort(), ['hello', 'room'])
    await cluster.settled()
  })

  t.test('a message published before the slot map is read is reported as not sent once it is', async (t) => {
    const adapter = redisAdapter({ cluster: cluster.startupNodes, channelPrefix: prefix() })
    const reports: Array<{ error: Error, errCode: number | undefined }> = []
    const opening = adapter.open({ route: '/ws', deliver () {}, fail (error, errCode) { reports.push({ error: error as Error, errCode }) } })
    t.teardown(() => adapter.close())
    adapter.publish({ topic: undefined, payload: Buffer.from('too early'), binary: false })
    await opening
    t.same(reports.map(({ error, errCode }) => [errCode, error.message]), [
      [501, 'The cluster adapter failed: the slot map of the Redis Cluster is read; 1 message(s) could not be sent to the other nodes before']
    ])
  })

  t.test('one redisAdapter() given to two servers: the second one reports it and stays local', async (t) => {
    const adapter = redisAdapter({ cluster: cluster.startupNodes, channelPrefix: prefix() })
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

  t.test('after the app closed, a broadcast reports nothing and throws nothing; an adapter never opened publishes nothing and closes at once', async (t) => {
    const a = await node(t, redisAdapter({ cluster: cluster.startupNodes, channelPrefix: prefix() }))
    await a.app.close()
    t.equal(a.app.wss.broadcast('late'), 0)
    await turns(5)
    t.same(a.errors, [])

    const adapter = redisAdapter({ cluster: cluster.startupNodes })
    adapter.publish({ topic: undefined, payload: Buffer.from('x'), binary: false })
    await adapter.close()
  })

  t.test('redisAdapter({ cluster }) needs an ioredis Cluster or a non-empty array of its startup nodes', async (t) => {
    const plain = new Redis({ lazyConnect: true })
    t.teardown(() => plain.disconnect())
    for (const value of [[], {}, 'redis://127.0.0.1:7000', null, plain]) {
      t.throws(() => redisAdapter({ cluster: value as never }), {
        code: 'FST_WSS_INVALID_OPTION',
        message: 'fastify-wss: option "redisAdapter" needs "cluster" to be an ioredis Cluster or a non-empty array of its startup nodes'
      })
    }
  })

  t.test('ioredis 6: a Cluster of the other major carries broadcasts and topics across nodes', async (t) => {
    const { Cluster: Cluster6 } = await import('ioredis6')
    t.match(createRequire(import.meta.url)('ioredis6/package.json').version, /^6\./, 'ioredis6 is ioredis 6')
    const channelPrefix = prefix()
    const pair: Node[] = []
    for (let i = 0; i < 2; i++) {
      const mine = new Cluster6(cluster.startupNodes)
      mine.on('error', () => {})
      t.teardown(() => mine.disconnect())
      pair.push(await node(t, redisAdapter({ cluster: mine as unknown as Cluster, channelPrefix })))
    }
    const [a, b] = pair
    const topics = (await topicsOnEveryShard(channelPrefix, 1)).flat()
    const ws = await connect(t, b.url)
    for (const topic of topics) b.opened[0].subscribe(topic)
    for (const topic of topics) await subscribed(`${channelPrefix}/ws#topic:${topic}`, 1)
    const got = messages(ws, topics.length + 1)
    a.app.wss.broadcast('broadcast')
    for (const topic of topics) a.app.wss.publish(topic, topic)
    // no order between channels of different shards
    t.same((await got).sort(), ['broadcast', ...topics].sort())
    t.same(a.errors.concat(b.errors), [])
  })

  // Last: the cluster is not the same afterwards.
  t.test('a master dies mid-stream: its replica is promoted, the subscriptions are restored, later messages reach every node, each outage is reported once per connection', async (t) => {
    const channelPrefix = prefix()
    const [a, b, c] = await nodes(t, 3, channelPrefix)
    const byShard = await topicsOnEveryShard(channelPrefix, 1)
    const topics = byShard.flat()
    const victim = await cluster.masterOf(slotOf(`${channelPrefix}/ws#topic:${byShard[0][0]}`))
    const broadcast = `${channelPrefix}/ws#broadcast`
    const channelOf = (name: string): string => name === 'broadcast' ? broadcast : `${channelPrefix}/ws#topic:${name}`
    const names = [...topics, 'broadcast']
    const onVictim = new Set<string>()
    for (const name of names) if ((await cluster.masterOf(slotOf(channelOf(name)))) === victim) onVictim.add(name)
    t.ok(onVictim.has(byShard[0][0]))

    const received: string[][] = []
    for (const n of [a, b, c]) {
      received.push(record(await connect(t, n.url)))
      for (const topic of topics) n.opened.at(-1)?.subscribe(topic)
    }
    for (const name of names) await subscribed(channelOf(name), 3)

    // a publishes a numbered round on every channel every few milliseconds
    let sent = 0
    const round = (): void => {
      for (const topic of topics) a.app.wss.publish(topic, `${topic} ${sent}`)
      a.app.wss.broadcast(`broadcast ${sent}`)
      sent++
    }
    const timer = setInterval(round, 5)
    t.teardown(() => clearInterval(timer))
    await until(() => sent >= 20, 'a few rounds sent')
    // the master dies with messages on their way to it (frozen, it reads none of them)
    const victimReplica = await cluster.replicaOf(victim)
    victim.pause()
    for (let i = 0; i < 50; i++) round()
    await victim.kill()

    for (const n of [a, b, c]) {
      for (const role of ['publishing', 'subscribing']) {
        const down = await n.error(new RegExp(`the ${role} connection to Redis Cluster node ${victim.address} is down`))
        t.equal(down.errCode, 500)
      }
    }
    // a node started now still finds the dead master in the slot map: it starts, reports it, and follows the failover
    const d = await node(t, redisAdapter({ cluster: cluster.startupNodes, channelPrefix }))
    t.equal((await d.error(new RegExp(`connection to Redis Cluster node ${victim.address} is down`))).errCode, 500)
    received.push(record(await connect(t, d.url)))
    for (const topic of topics) d.opened[0].subscribe(topic)
    // and a node that closes meanwhile closes at once, reporting nothing more
    const e = await node(t, redisAdapter({ cluster: cluster.startupNodes, channelPrefix }))
    await e.error(new RegExp(`the subscribing connection to Redis Cluster node ${victim.address} is down`))
    const reported = e.errors.length
    await e.app.close()
    t.equal(e.errors.length, reported)

    await eventually(async () => (await cluster.masterOf(slotOf(channelOf(byShard[0][0])))) !== victim, 'the replica is promoted', 1000)
    await cluster.settled()
    const heir = await cluster.masterOf(slotOf(channelOf(byShard[0][0])))
    t.equal(heir, victimReplica, 'the replica of the dead master serves its slots')
    const closed: number[] = []
    for (const n of [a, b, c, d]) {
      const entry = await n.error(new RegExp(`node ${victim.address} is closed: the node is no longer a master; \\d+ message`))
      t.equal(entry.errCode, 501)
      closed.push(Number(/; (\d+) message/.exec(entry.message)?.[1]))
    }
    for (const name of names) await subscribed(channelOf(name), 4)
    const resumed = sent
    await until(() => sent >= resumed + 20, 'more rounds sent after the failover')
    clearInterval(timer)
    const last = sent - 1
    await until(() => received.every((list) => names.every((name) => list.includes(`${name} ${last}`))), 'every node got the last round', 2000)

    const numbers = (list: string[], name: string): number[] => list.filter((text) => text.startsWith(`${name} `)).map((text) => Number(text.slice(name.length + 1)))
    const all = (from: number): number[] => Array.from({ length: last + 1 - from }, (_, i) => from + i)
    for (const [i, list] of received.entries()) {
      for (const name of names) {
        const got = numbers(list, name)
        t.ok(got.every((number, k) => k === 0 || number > got[k - 1]), `node ${i}, ${name}: in order, never twice`)
        t.ok(all(resumed).every((number) => got.includes(number)), `node ${i}, ${name}: every message since the failover`)
        if (i === 0) t.same(got, all(0), 'the publishing node delivers every message locally')
        else if (i < 3 && !onVictim.has(name)) t.same(got, all(0), `node ${i}, ${name}: a channel of another shard lost nothing`)
      }
    }
    // a counted the messages it could not send to the dead master; some others may have been on their way
    const missing = names.filter((name) => onVictim.has(name)).reduce((sum, name) => sum + last + 1 - numbers(received[1], name).length, 0)
    t.ok(closed[0] >= 1 && closed[0] <= missing, `a reports ${closed[0]} message(s) not sent, of ${missing} missing`)
    t.same(closed.slice(1), [0, 0, 0], 'the other nodes published nothing')
    for (const [i, n] of [a, b, c, d].entries()) {
      const aboutVictim = n.errors.filter((entry) => entry.message.includes(victim.address))
      t.same(aboutVictim.map((entry) => entry.errCode).sort(), [500, 500, 501], `node ${i}: one outage of each connection to the dead master, one end`)
      const others = n.errors.filter((entry) => !aboutVictim.includes(entry))
      for (const entry of others) {
        t.match(entry.message, new RegExp(`the publishing connection to Redis Cluster node ${heir.address} is up; \\d+ message`), 'besides: messages not sent while connecting to the new master')
      }
    }
  })
}

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Redis, type RedisOptions } from 'ioredis'
import type WebSocket from 'ws'
import type { WssAdapter } from '../lib/index.js'
import { connect } from './helpers/index.js'
import { until, turns } from './helpers/until.js'
import { RedisServer, eventually, startNode, withRedisServer, type TestNode } from './helpers/redis.js'
import { TcpProxy } from './helpers/proxy.js'

type Test = typeof t

await withRedisServer('the durable Redis adapter tests', suite)

async function suite (bin: string): Promise<void> {
  // Loaded only here, so that a skipped suite leaves the module out of the coverage report.
  const { redisAdapter } = await import('../lib/adapters/redis.js')

  const redis = await RedisServer.start(bin)
  t.teardown(() => redis.stop())
  const admin = await client(t, redis)

  let prefixes = 0
  /** A channel prefix of its own for each test, so that tests cannot see each other's streams. */
  const prefix = (): string => `durable${++prefixes}:`

  interface Node extends TestNode {
    /** What starts the numbered messages it publishes: `a:1`, `a:2`, ... */
    name: string
  }

  async function node (test: Test, adapter: WssAdapter, name = ''): Promise<Node> {
    return { ...await startNode(test, adapter), name }
  }

  /** A durable adapter on `url` (a Redis server or a proxy in front of it). */
  function durable (url: string, channelPrefix: string, options: { maxLen?: number, maxBuffered?: number } = {}): WssAdapter {
    return redisAdapter({ url, channelPrefix, durable: { maxLen: 10_000, ...options } })
  }

  /** A durable adapter from a client of the test named `name`, so that `kill` finds its connections (the adapter's duplicates keep the name). */
  async function named (test: Test, name: string, channelPrefix: string, server = redis): Promise<WssAdapter> {
    return redisAdapter({ client: await client(test, server, { connectionName: name }), channelPrefix, durable: { maxLen: 10_000 } })
  }

  /** Kills (`CLIENT KILL`) the connections named `name` whose last command was `command` (any, if omitted); how many. */
  async function kill (name: string, command?: string): Promise<number> {
    const list = await admin.client('LIST') as string
    const ids = list.trim().split('\n')
      .filter((line) => line.includes(` name=${name} `) && (command === undefined || line.includes(` cmd=${command} `)))
      .map((line) => (/^id=(\d+)/.exec(line) as RegExpExecArray)[1])
    for (const id of ids) await admin.client('KILL', 'ID', id)
    return ids.length
  }

  /** Every message a client receives, as strings, from now on. */
  function record (ws: WebSocket): string[] {
    const received: string[] = []
    ws.on('message', (data: Buffer) => received.push(data.toString()))
    return received
  }

  interface Clients {
    /** On each node, what a client subscribed to "room" received. */
    subscribed: string[][]
    /** On each node, what a client subscribed to nothing received. */
    plain: string[][]
  }

  /** Two clients on each node, one subscribed to "room", once every node reads the topic's stream. */
  async function clients (test: Test, cluster: Node[]): Promise<Clients> {
    const subscribed: string[][] = []
    const plain: string[][] = []
    for (const n of cluster) {
      subscribed.push(record(await connect(test, n.url)))
      n.opened.at(-1)?.subscribe('room')
      plain.push(record(await connect(test, n.url)))
    }
    await joined(cluster, 'room', subscribed)
    return { subscribed, plain }
  }

  /**
   * A node reads a topic's stream from its end when its reading connection
   * gets to it: each node publishes probes to the topic until every one of
   * `lists` (its subscribers) got a probe of every node.
   */
  async function joined (cluster: Node[], topic: string, lists: string[][]): Promise<void> {
    for (let round = 0; round < 300; round++) {
      for (const [i, n] of cluster.entries()) n.app.wss.publish(topic, `probe ${i}`)
      await new Promise((resolve) => setTimeout(resolve, 10))
      if (lists.every((list) => cluster.every((_, i) => list.includes(`probe ${i}`)))) return
    }
    throw new Error(`the nodes never read the stream of ${topic}`)
  }

  interface Run {
    /** How many numbered messages each publishing node has published so far. */
    sent: number
  }

  /**
   * Each of `publishers` publishes the messages `<name>:1` to `<name>:<count>`
   * (odd ones to "room", even ones broadcast), ten per millisecond, then
   * broadcasts `<name>:end`; `during(run)` runs meanwhile (a fault).
   */
  async function numbered (publishers: Node[], count: number, during: (run: Run) => Promise<void> = async () => {}): Promise<void> {
    const run: Run = { sent: 0 }
    const sending = (async () => {
      for (let n = 1; n <= count; n++) {
        for (const p of publishers) {
          if (n % 2 === 1) p.app.wss.publish('room', `${p.name}:${n}`)
          else p.app.wss.broadcast(`${p.name}:${n}`)
        }
        run.sent = n
        if (n % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 1))
      }
      for (const p of publishers) p.app.wss.broadcast(`${p.name}:end`)
    })()
    await Promise.all([sending, during(run)])
  }

  /**
   * Waits until every client has the end of every publishing node, then
   * checks that each got each message meant for it exactly once, and each
   * node's in order: all of them for a subscriber of "room", the broadcasts
   * (even numbers) for the others.
   */
  async function delivered (test: Test, { subscribed, plain }: Clients, publishers: Node[], count: number): Promise<void> {
    const lists = [...subscribed, ...plain]
    await until(() => lists.every((list) => publishers.every((p) => list.includes(`${p.name}:end`))), 'every client got the end of every publishing node', 6000)
    for (const [i, list] of lists.entries()) {
      const all = i < subscribed.length
      for (const p of publishers) {
        const got = list.filter((text) => text.startsWith(`${p.name}:`)).map((text) => text.slice(p.name.length + 1))
        const expected = Array.from({ length: count }, (_, n) => n + 1).filter((n) => all || n % 2 === 0).map(String).concat('end')
        test.same(summary(got, expected), { count: expected.length, missing: 0, duplicates: 0, inOrder: true },
          `the ${all ? 'subscribed' : 'plain'} client of node ${i % subscribed.length} got every message of ${p.name} once, in order`)
      }
    }
  }

  function summary (got: string[], expected: string[]): { count: number, missing: number, duplicates: number, inOrder: boolean } {
    const seen = new Set(got)
    return {
      count: got.length,
      missing: expected.filter((text) => !seen.has(text)).length,
      duplicates: got.length - seen.size,
      inOrder: got.every((text, i) => text === expected[i])
    }
  }

  /** How many entries of the streams `keys` have each payload (which follows a 15-byte header). */
  async function copies (...keys: string[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>()
    for (const key of keys) {
      for (const [, fields] of await admin.xrangeBuffer(key, '-', '+')) {
        const text = fields[1].subarray(15).toString()
        counts.set(text, (counts.get(text) ?? 0) + 1)
      }
    }
    return counts
  }

  t.test('broadcast and publish reach every connection of every node once and in order per publishing node, over streams named like the channels', async (t) => {
    const channelPrefix = prefix()
    const cluster: Node[] = []
    for (const name of ['a', 'b', 'c']) cluster.push(await node(t, durable(redis.url, channelPrefix), name))
    const lists = await clients(t, cluster)
    await numbered(cluster, 1500)
    await delivered(t, lists, cluster, 1500)
    t.same((await admin.keys(`${channelPrefix}*`)).sort(), [`${channelPrefix}/ws#broadcast`, `${channelPrefix}/ws#topic:room`])
    t.same(await admin.pubsub('CHANNELS', `${channelPrefix}*`), [], 'no Pub/Sub channel')
    const counts = await copies(`${channelPrefix}/ws#broadcast`, `${channelPrefix}/ws#topic:room`)
    const numberedCounts = Array.from(counts).filter(([text]) => !text.startsWith('probe')).map(([, count]) => count)
    t.equal(numberedCounts.length, 3 * 1501)
    t.same(new Set(numberedCounts), new Set([1]), 'one entry per message')
    t.same(cluster.flatMap((n) => n.errors), [])
  })

  t.test('text and binary messages cross nodes byte for byte, with their frame type; a keyPrefix of a client passed in does not rename the streams', async (t) => {
    const channelPrefix = prefix()
    const a = await node(t, durable(redis.url, channelPrefix))
    const mine = await client(t, redis, { keyPrefix: 'mine:' })
    const b = await node(t, redisAdapter({ client: mine, channelPrefix, durable: { maxLen: 1000 } }))
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
    b.app.wss.broadcast('from b')
    await eventually(async () => await admin.xlen(`${channelPrefix}/ws#broadcast`) === 5, 'b wrote to the broadcast stream')
    t.same(await admin.keys('mine:*'), [])
  })

  t.test('a node that subscribes to a topic gets the messages published after, not those before', async (t) => {
    const channelPrefix = prefix()
    const a = await node(t, durable(redis.url, channelPrefix))
    const b = await node(t, durable(redis.url, channelPrefix))
    const ws = await connect(t, b.url)
    const got = record(ws)
    a.app.wss.publish('late', 'before')
    await eventually(async () => await admin.xlen(`${channelPrefix}/ws#topic:late`) === 1, 'the message is in the stream')
    b.opened[0].subscribe('late')
    await joined([a], 'late', [got])
    a.app.wss.publish('late', 'after')
    await until(() => got.includes('after'), 'the message published after the subscription arrived')
    t.notOk(got.includes('before'))

    b.opened[0].unsubscribe('late')
    a.app.wss.publish('late', 'unsubscribed')
    a.app.wss.broadcast('last')
    await until(() => got.includes('last'), 'the broadcast published after it arrived')
    t.notOk(got.includes('unsubscribed'), 'nothing of the topic after the last local subscriber left')
  })

  t.test('(a) a receiving node whose Redis connections are killed mid-stream resumes reading where it stopped', async (t) => {
    const channelPrefix = prefix()
    const cluster: Node[] = []
    for (const name of ['a', 'b', 'c']) cluster.push(await node(t, await named(t, `${channelPrefix}${name}`, channelPrefix), name))
    const lists = await clients(t, cluster)
    const kills: number[] = []
    await numbered(cluster, 2000, async (run) => {
      for (const [at, name, command] of [[400, 'b', 'xread'], [900, 'b', 'xread'], [1400, 'c', undefined]] as const) {
        await until(() => run.sent >= at, `${at} messages sent`)
        // the reading connection of b, both connections of c
        await eventually(async () => { kills.push(await kill(`${channelPrefix}${name}`, command)); return kills.at(-1) as number > 0 }, `a connection of ${name} killed`)
      }
    })
    await delivered(t, lists, cluster, 2000)
    t.ok(kills.filter((count) => count > 0).length === 3, 'three kills')
    const [a, b, c] = cluster
    t.same(a.errors, [])
    t.equal(b.errors.length, 2)
    for (const entry of b.errors) t.match(entry.message, /the reading Redis connection is down/)
    t.same(c.errors.map((entry) => entry.errCode).sort(), [500, 500, 501])
    t.match((await c.error(/the publishing Redis connection is up/)).message, /; 0 message\(s\) could not be sent/)
  })

  t.test('(b) a publishing node cut off from Redis keeps its messages and sends them in order once back; what Redis took without answering is not delivered twice', async (t) => {
    const channelPrefix = prefix()
    const proxy = await TcpProxy.start(redis.port)
    t.teardown(() => proxy.close())
    const a = await node(t, durable(proxy.url, channelPrefix), 'a')
    const b = await node(t, durable(redis.url, channelPrefix), 'b')
    const c = await node(t, durable(redis.url, channelPrefix), 'c')
    const cluster = [a, b, c]
    const lists = await clients(t, cluster)
    await numbered(cluster, 2000, async (run) => {
      await until(() => run.sent >= 300, '300 messages sent')
      proxy.mute() // Redis still takes what a writes, a hears nothing back
      await until(() => run.sent >= 600, '600 messages sent')
      proxy.cut()
      await a.error(/the publishing Redis connection is down/)
      await until(() => run.sent >= 1200, '1200 messages sent')
      proxy.restore()
    })
    await delivered(t, lists, cluster, 2000)
    const counts = await copies(`${channelPrefix}/ws#broadcast`, `${channelPrefix}/ws#topic:room`)
    const twice = Array.from({ length: 300 }, (_, i) => `a:${i + 301}`).filter((text) => counts.get(text) === 2)
    t.ok(twice.length > 0, 'messages written while the answers were lost are in their stream twice')
    t.equal(Math.max(...Array.from(counts).filter(([text]) => !text.startsWith('probe')).map(([, count]) => count)), 2, 'twice at most')
    t.same(a.errors.map((entry) => entry.errCode).sort(), [500, 500, 501])
    t.match((await a.error(/the publishing Redis connection is up/)).message, /; 0 message\(s\) could not be sent/)
    t.same(b.errors.concat(c.errors), [])
  })

  t.test('(c) a Redis with an append-only file killed by PID and restarted on its port mid-stream loses and repeats nothing', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'fastify-wss-aof-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const own = await RedisServer.start(bin, ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir])
    t.teardown(() => own.stop())
    const channelPrefix = prefix()
    const cluster: Node[] = []
    for (const name of ['a', 'b', 'c']) cluster.push(await node(t, durable(own.url, channelPrefix), name))
    const lists = await clients(t, cluster)
    await numbered(cluster, 2000, async (run) => {
      await until(() => run.sent >= 500, '500 messages sent')
      await own.stop()
      await until(() => run.sent >= 1000, '1000 messages sent')
      await own.restart()
    })
    await delivered(t, lists, cluster, 2000)
    for (const n of cluster) {
      t.same(n.errors.map((entry) => entry.errCode).sort(), [500, 500, 501], 'each connection down once, the outage ended')
      t.match((await n.error(/the publishing Redis connection is up/)).message, /; 0 message\(s\) could not be sent/)
    }
  })

  t.test('a node that fell behind by maxLen gets every message; one that fell further behind reports the gap and goes on from the newest', async (t) => {
    const channelPrefix = prefix()
    const toB = await TcpProxy.start(redis.port)
    t.teardown(() => toB.close())
    const toC = await TcpProxy.start(redis.port)
    t.teardown(() => toC.close())
    const maxLen = 100
    const a = await node(t, durable(redis.url, channelPrefix, { maxLen }))
    const b = await node(t, durable(toB.url, channelPrefix, { maxLen }))
    const c = await node(t, durable(toC.url, channelPrefix, { maxLen }))
    const onB = record(await connect(t, b.url))
    const onC = record(await connect(t, c.url))
    // a topic nobody writes to: its stream does not exist
    c.opened[0].subscribe('quiet')
    a.app.wss.broadcast('first')
    await until(() => onB.includes('first') && onC.includes('first'), 'both nodes read the stream')

    toB.cut()
    await b.error(/the reading Redis connection is down/)
    for (let i = 0; i < maxLen; i++) a.app.wss.broadcast(`behind ${i}`)
    toB.restore()
    await until(() => onB.length === maxLen + 1, 'b got the messages written while it was away')
    t.same(onB.slice(1), Array.from({ length: maxLen }, (_, i) => `behind ${i}`), 'all of them, in order')
    await b.error(/the publishing Redis connection is up/)
    t.same(b.errors.map((entry) => entry.errCode).sort(), [500, 500, 501], 'no gap reported')
    // b would fall behind too: the burst below is longer than maxLen
    await b.app.close()

    toC.cut()
    await c.error(/the reading Redis connection is down/)
    for (let i = 0; i < 1000; i++) a.app.wss.broadcast(`gone ${i}`)
    toC.restore()
    const gap = await c.error(/were not delivered/)
    t.equal(gap.errCode, 502)
    t.equal((gap.error as Error & { code: string }).code, 'FST_WSS_ADAPTER_ERROR')
    t.equal(gap.message, `The cluster adapter failed: 1000 message(s) written to "${channelPrefix}/ws#broadcast" were not delivered: ` +
      'more than maxLen (100) were written while this node could not read them; it goes on from the newest')
    a.app.wss.broadcast('after')
    await until(() => onC.includes('after'), 'c reads new messages again')
    t.notOk(onC.some((text) => text.startsWith('gone')), 'none of the messages it missed')
    t.same([onC.length, onC.at(-1)], [maxLen + 2, 'after'], 'the newest on')
    t.ok(await admin.xlen(`${channelPrefix}/ws#broadcast`) < 1000, 'the stream was trimmed')
  })

  t.test('past maxBuffered the oldest messages are dropped and reported; the others are sent in order once Redis is back', async (t) => {
    const channelPrefix = prefix()
    const proxy = await TcpProxy.start(redis.port)
    t.teardown(() => proxy.close())
    const a = await node(t, durable(proxy.url, channelPrefix, { maxBuffered: 100 }))
    const b = await node(t, durable(redis.url, channelPrefix))
    const got = record(await connect(t, b.url))
    proxy.cut()
    await a.error(/the publishing Redis connection is down/)
    for (let i = 0; i < 250; i++) a.app.wss.broadcast(`m${i}`)
    const overflow = await a.error(/maxBuffered/)
    t.equal(overflow.errCode, 503)
    t.equal(overflow.message, 'The cluster adapter failed: more than maxBuffered (100) messages are waiting for the publishing Redis connection: the oldest are dropped')
    t.equal(a.errors.filter((entry) => entry.errCode === 503).length, 1, 'reported once, not per message')
    proxy.restore()
    const ended = await a.error(/the publishing Redis connection is up/)
    t.equal(ended.errCode, 501)
    t.match(ended.message, /; 150 message\(s\) could not be sent to the other nodes while it was down$/)
    await until(() => got.length === 100, 'b got the messages kept')
    t.same(got, Array.from({ length: 100 }, (_, i) => `m${i + 150}`), 'the newest 100, in order')
  })

  t.test('an app closed while messages wait for Redis reports how many it dropped', async (t) => {
    const proxy = await TcpProxy.start(redis.port)
    t.teardown(() => proxy.close())
    const a = await node(t, durable(proxy.url, prefix()))
    proxy.cut()
    await a.error(/the publishing Redis connection is down/)
    await a.error(/the reading Redis connection is down/)
    for (let i = 0; i < 5; i++) a.app.wss.broadcast(`m${i}`)
    await a.app.close()
    const dropped = await a.error(/closed while/)
    t.equal(dropped.errCode, 503)
    t.equal(dropped.message, 'The cluster adapter failed: closed while the publishing Redis connection was down: 5 message(s) waiting for it were dropped')
    t.equal(a.app.wss.broadcast('late'), 0)
    await turns(5)
    t.equal(a.errors.length, 3, 'the outage of each connection, and the drop: nothing after the close')
  })

  t.test('an app closed while Redis takes its writes without answering closes once the connection ends, reporting nothing', async (t) => {
    const proxy = await TcpProxy.start(redis.port)
    t.teardown(() => proxy.close())
    const a = await node(t, durable(proxy.url, prefix()))
    proxy.mute()
    for (let i = 0; i < 5; i++) a.app.wss.broadcast(`m${i}`)
    const closing = a.app.close()
    await turns(5)
    proxy.cut()
    await closing
    t.same(a.errors, [], 'the writes on their way were neither waiting nor refused')
  })

  t.test('a node started while Redis is down starts, keeps what it publishes, and sends it once Redis is up', async (t) => {
    const own = await RedisServer.start(bin)
    t.teardown(() => own.stop())
    await own.stop()
    const channelPrefix = prefix()
    const late = await node(t, durable(own.url, channelPrefix))
    const entry = await late.error(/^The cluster adapter failed: the (publishing|reading) Redis connection is down: /)
    t.equal(entry.errCode, 500)
    const got = record(await connect(t, late.url))
    for (let i = 0; i < 3; i++) late.app.wss.broadcast(`early ${i}`)
    await own.restart()
    const ended = await late.error(/the publishing Redis connection is up/)
    t.match(ended.message, /; 0 message\(s\) could not be sent/)
    const ownAdmin = await client(t, own)
    await eventually(async () => await ownAdmin.xlen(`${channelPrefix}/ws#broadcast`) === 3, 'the messages kept are in the stream')
    const other = await node(t, durable(own.url, channelPrefix))
    other.app.wss.broadcast('hello')
    await until(() => got.length === 4, 'the late node reads the stream')
    t.same(got, ['early 0', 'early 1', 'early 2', 'hello'])
  })

  t.test('an entry in the streams that no fastify-wss node wrote is reported and not delivered', async (t) => {
    const channelPrefix = prefix()
    const key = `${channelPrefix}/ws#broadcast`
    const a = await node(t, durable(redis.url, channelPrefix))
    const b = await node(t, durable(redis.url, channelPrefix))
    const got = record(await connect(t, b.url))
    await admin.xadd(key, '*', 'other', 'field')
    await admin.xadd(key, '*', 'm', 'short')
    await admin.xadd(key, '*', 'm', 'x'.repeat(20), 'n', 'two fields')
    await admin.xadd(key, '*', 'm', Buffer.concat([Buffer.from([7]), Buffer.alloc(20)]))
    await until(() => b.errors.length === 4, 'four entries reported')
    for (const entry of b.errors) {
      t.equal(entry.errCode, 500)
      t.equal(entry.message, `The cluster adapter failed: ignored an entry of "${key}" that no fastify-wss node wrote`)
    }
    a.app.wss.broadcast('real')
    await until(() => got.length === 1, 'the real message arrived')
    t.same(got, ['real'])
  })

  t.test('streams Redis refuses are reported: to read (each once), to write (each message); the others work', async (t) => {
    const channelPrefix = prefix()
    // this user may only use the stream of the topic "open", and no CLIENT command
    await admin.call('ACL', 'SETUSER', 'durable-limited', 'on', '>secret', 'resetkeys', `~${channelPrefix}/ws#topic:open`, '+@all', '-client')
    t.teardown(() => admin.call('ACL', 'DELUSER', 'durable-limited'))
    const limited = await client(t, redis, { username: 'durable-limited', password: 'secret' })
    const a = await node(t, redisAdapter({ client: limited, channelPrefix, durable: { maxLen: 1000 } }))
    const b = await node(t, durable(redis.url, channelPrefix))
    const refused = await a.error(/subscribe to "durable\d+:\/ws#broadcast"/)
    t.equal(refused.errCode, 500)
    t.match(refused.message, /NOPERM/)
    const ws = await connect(t, a.url)
    const got = record(ws)
    a.opened[0].subscribe('forbidden')
    t.match((await a.error(/subscribe to "durable\d+:\/ws#topic:forbidden"/)).message, /NOPERM/)
    t.equal(a.app.wss.publish('forbidden', 'x'), 1, 'delivered locally')
    const failed = await a.error(/^The cluster adapter failed: publish to "durable\d+:\/ws#topic:forbidden": NOPERM/)
    t.equal(failed.errCode, 500)
    t.ok((failed.error as Error).cause instanceof Error, 'the Redis error is the cause')

    a.opened[0].subscribe('open')
    await joined([b], 'open', [got])
    b.app.wss.publish('open', 'from b')
    a.app.wss.publish('open', 'from a')
    await until(() => got.includes('from b'), 'a reads the topic it may read')
    const onB = record(await connect(t, b.url))
    b.opened[0].subscribe('open')
    await joined([a], 'open', [onB])
    a.app.wss.publish('open', 'to b')
    await until(() => onB.includes('to b'), 'b reads what a writes')
    t.equal(a.errors.length, 3, 'each refusal once')
  })

  t.test('a read that Redis refuses is reported, and reading goes on once Redis allows it again', async (t) => {
    const channelPrefix = prefix()
    const key = `${channelPrefix}/ws#topic:room`
    const a = await node(t, durable(redis.url, channelPrefix))
    const b = await node(t, durable(redis.url, channelPrefix))
    const got = record(await connect(t, b.url))
    b.opened[0].subscribe('room')
    await joined([a], 'room', [got])
    await admin.del(key)
    await admin.set(key, 'not a stream')
    const refused = await b.error(/^The cluster adapter failed: read the streams: WRONGTYPE/)
    t.equal(refused.errCode, 500)
    a.app.wss.publish('room', 'refused')
    t.match((await a.error(/publish to/)).message, /WRONGTYPE/)
    await admin.del(key)
    a.app.wss.publish('room', 'again')
    await until(() => got.includes('again'), 'b reads the stream again')
    t.notOk(got.includes('refused'))
  })

  t.test('ioredis 6: a client of the other major carries durable broadcasts and topics, through a killed connection', async (t) => {
    const { Redis: Redis6 } = await import('ioredis6')
    const channelPrefix = prefix()
    const cluster: Node[] = []
    for (const name of ['a', 'b']) {
      const mine = new Redis6({ host: '127.0.0.1', port: redis.port, connectionName: `${channelPrefix}${name}` })
      mine.on('error', () => {})
      t.teardown(() => mine.disconnect())
      cluster.push(await node(t, redisAdapter({ client: mine as unknown as Redis, channelPrefix, durable: { maxLen: 1000 } }), name))
    }
    const lists = await clients(t, cluster)
    await numbered(cluster, 300, async (run) => {
      await until(() => run.sent >= 100, '100 messages sent')
      await eventually(async () => await kill(`${channelPrefix}b`) > 0, 'the connections of b killed')
    })
    await delivered(t, lists, cluster, 300)
  })

  t.test('used directly: ignored before open, one server only, a drop before the first connection, closed at once when never opened', async (t) => {
    const unopened = durable(redis.url, prefix())
    unopened.publish({ topic: undefined, payload: Buffer.from('x'), binary: false })
    unopened.subscribe('x')
    await unopened.close()

    const adapter = durable(redis.url, prefix(), { maxBuffered: 0 })
    const reports: Array<{ error: Error, errCode: number | undefined }> = []
    const node = { route: '/ws', deliver () {}, fail (error: unknown, errCode?: number) { reports.push({ error: error as Error, errCode }) } }
    const opening = adapter.open(node)
    t.teardown(() => adapter.close())
    adapter.publish({ topic: undefined, payload: Buffer.from('too early'), binary: false })
    await t.rejects(adapter.open(node), { code: 'FST_WSS_ADAPTER_ERROR', message: 'The cluster adapter failed: a redisAdapter() serves one server: create one for each server' })
    await opening
    await until(() => reports.length === 2, 'the drop and the end of the wait')
    t.same(reports.map((report) => report.errCode), [503, 501])
    t.equal(reports[1].error.message, 'The cluster adapter failed: the publishing Redis connection is up; 1 message(s) could not be sent to the other nodes while it was down')
  })

  t.test('durable options are checked at redisAdapter()', async (t) => {
    const url = redis.url
    const cases: Array<[unknown, string]> = [
      [null, 'option "durable" must be an object { maxLen, maxBuffered? }, got null'],
      [true, 'option "durable" must be an object { maxLen, maxBuffered? }, got true'],
      [{}, 'option "durable.maxLen" must be a positive integer, got undefined'],
      [{ maxLen: 0 }, 'option "durable.maxLen" must be a positive integer, got 0'],
      [{ maxLen: 1.5 }, 'option "durable.maxLen" must be a positive integer, got 1.5'],
      [{ maxLen: '10' }, 'option "durable.maxLen" must be a positive integer, got "10"'],
      [{ maxLen: 10, maxBuffered: -1 }, 'option "durable.maxBuffered" must be an integer of 0 or more, got -1'],
      [{ maxLen: 10, maxBuffered: Infinity }, 'option "durable.maxBuffered" must be an integer of 0 or more, got Infinity'],
      [{ maxLen: 10, maxBuffered: {} }, 'option "durable.maxBuffered" must be an integer of 0 or more, got an object']
    ]
    for (const [durable, message] of cases) {
      t.throws(() => redisAdapter({ url, durable } as never), { code: 'FST_WSS_INVALID_OPTION', message: `fastify-wss: ${message}` })
    }
    t.throws(() => redisAdapter({ durable: { maxLen: 10 }, cluster: [{ host: '127.0.0.1', port: 7000 }] }), {
      code: 'FST_WSS_INVALID_OPTION',
      message: 'fastify-wss: option "durable" cannot be combined with "cluster" (Redis Cluster): use a single Redis server or a primary with replicas'
    })
    t.doesNotThrow(() => redisAdapter({ url, durable: { maxLen: 1, maxBuffered: 0 } }))
    t.doesNotThrow(() => redisAdapter({ url, durable: { maxLen: 1, maxBuffered: 10_000 } }), 'the default of maxBuffered')
  })
}

/** An ioredis client of the test, quit at its end. */
async function client (test: Test, server: RedisServer, options: RedisOptions = {}): Promise<Redis> {
  const redis = new Redis({ host: '127.0.0.1', port: server.port, ...options })
  // the tests stop servers under their clients on purpose
  redis.on('error', () => {})
  test.teardown(async () => { redis.disconnect() })
  await redis.ping()
  return redis
}

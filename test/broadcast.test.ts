import { once } from 'node:events'
import t from 'tap'
import type WebSocket from 'ws'
import type { WebSocketConnection, WssPluginOptions } from '../lib/index.js'
import { start, connect, messages, closed, deferred } from './helpers/index.js'

/** A server whose connection handler only records its connections, in order. */
function recorder (extra: Partial<WssPluginOptions<any>> = {}): { options: WssPluginOptions<any>, opened: Array<WebSocketConnection<any>> } {
  const opened: Array<WebSocketConnection<any>> = []
  return {
    opened,
    options: {
      path: '/ws',
      ...extra,
      handler: {
        onConnection: () => ({
          onOpen (ws) { opened.push(ws) },
          onMessage () {}
        })
      }
    }
  }
}

function thrown (fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
}

async function clients (test: typeof t, url: string, count: number): Promise<WebSocket[]> {
  const list: WebSocket[] = []
  for (let i = 0; i < count; i++) list.push(await connect(test, url))
  return list
}

/** The next message of a client: its bytes and whether it was binary. */
async function frameOf (ws: WebSocket): Promise<{ data: Buffer, binary: boolean }> {
  const [data, binary] = await once(ws, 'message') as [Buffer, boolean]
  return { data, binary }
}

t.test('broadcast sends the same bytes to every connection and returns how many it reached', async (t) => {
  const { options } = recorder()
  const { app, base } = await start(t, options)
  const all = await clients(t, `${base}/ws`, 3)
  for (const text of ['', 'hi', 'é'.repeat(100), 'x'.repeat(70_000)]) {
    const received = Promise.all(all.map(frameOf))
    t.equal(app.wss.broadcast(text), 3)
    for (const { data, binary } of await received) {
      t.equal(binary, false)
      t.equal(data.toString(), text)
    }
  }
  const bytes = Buffer.from([0, 1, 2, 255])
  for (const value of [bytes, new Uint8Array(bytes), bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + 4), new Uint16Array([1, 2]).subarray(1)]) {
    const received = Promise.all(all.map(frameOf))
    t.equal(app.wss.broadcast(value), 3)
    const expected = ArrayBuffer.isView(value) ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : Buffer.from(value)
    for (const { data, binary } of await received) {
      t.equal(binary, true)
      t.same(data, expected)
    }
  }
})

t.test('broadcast skips the connection or id given as except', async (t) => {
  const { options, opened } = recorder()
  const { app, base } = await start(t, options)
  const [a, b, c] = await clients(t, `${base}/ws`, 3)
  let fromA = false
  a.on('message', () => { fromA = true })
  const toB = messages(b, 2)
  const toC = messages(c, 2)
  t.equal(app.wss.broadcast('one', { except: opened[0] }), 2)
  t.equal(app.wss.broadcast('two', { except: opened[0].id }), 2)
  t.same(await toB, ['one', 'two'])
  t.same(await toC, ['one', 'two'])
  t.equal(fromA, false)
})

t.test('broadcast skips connections that are closing or closed', async (t) => {
  const terminated = deferred()
  const opened: Array<WebSocketConnection<any>> = []
  const { app, base } = await start(t, {
    path: '/ws',
    handler: {
      onConnection: () => ({
        onOpen (ws) { opened.push(ws) },
        onMessage () {},
        onTerminate () { terminated.resolve() }
      })
    }
  })
  const [a, b] = await clients(t, `${base}/ws`, 2)
  opened[0].terminate()
  t.equal(opened[0].status, 'Closing')
  const toB = messages(b, 1)
  t.equal(app.wss.broadcast('while closing'), 1)
  t.same(await toB, ['while closing'])
  await closed(a)
  await terminated.promise
  t.equal(app.wss.broadcast('after'), 1)
})

t.test('broadcast encodes objects as JSON once, and strings as JSON under dataType object', async (t) => {
  const { options } = recorder({ dataType: 'object' })
  const { app, base } = await start(t, options)
  const all = await clients(t, `${base}/ws`, 2)
  const received = Promise.all(all.map((ws) => messages(ws, 2)))
  app.wss.broadcast({ a: [1, 'two'] })
  app.wss.broadcast('text')
  for (const list of await received) t.same(list, ['{"a":[1,"two"]}', '"text"'])
  t.throws(() => app.wss.broadcast(10n), { code: 'FST_WSS_NOT_SERIALIZABLE' })
})

t.test('broadcast keeps the order of messages behind a send that is still being compressed', async (t) => {
  const opened: Array<WebSocketConnection<any>> = []
  const { app, base } = await start(t, {
    path: '/ws',
    perMessageDeflate: { threshold: 0 },
    handler: { onConnection: () => ({ onOpen (ws) { opened.push(ws) }, onMessage () {} }) }
  })
  const ws = await connect(t, `${base}/ws`, { perMessageDeflate: true })
  const received = messages(ws, 3)
  const big = 'compress me '.repeat(10_000)
  opened[0].send(big) // deflated asynchronously: ws's sender is busy meanwhile
  t.equal(app.wss.broadcast('second'), 1)
  opened[0].send('third')
  t.same(await received, [big, 'second', 'third'])
})

t.test('subscribe, unsubscribe and topics track the topics of a connection', async (t) => {
  const { options, opened } = recorder()
  const { base } = await start(t, options)
  await connect(t, `${base}/ws`)
  const ws = opened[0]
  t.same(ws.topics, [])
  t.equal(ws.subscribe('news'), true)
  t.equal(ws.subscribe('news'), false)
  t.equal(ws.subscribe('sport'), true)
  t.same(ws.topics, ['news', 'sport'])
  ws.topics.pop()
  t.same(ws.topics, ['news', 'sport'], 'topics is a copy')
  t.equal(ws.unsubscribe('news'), true)
  t.equal(ws.unsubscribe('news'), false)
  t.equal(ws.unsubscribe('never'), false)
  t.same(ws.topics, ['sport'])
  for (const bad of ['', 3, undefined]) {
    t.throws(() => ws.subscribe(bad as string), { code: 'FST_WSS_INVALID_TOPIC' })
    t.ok(thrown(() => ws.subscribe(bad as string)) instanceof TypeError)
    t.throws(() => ws.unsubscribe(bad as string), { code: 'FST_WSS_INVALID_TOPIC' })
  }
})

t.test('publish reaches the subscribers of a topic only, but except, and returns the count', async (t) => {
  const { options, opened } = recorder()
  const { app, base } = await start(t, options)
  const [a, b, c] = await clients(t, `${base}/ws`, 3)
  opened[0].subscribe('room')
  opened[1].subscribe('room')
  let toC = false
  c.on('message', () => { toC = true })
  const toA = messages(a, 1)
  const toB = messages(b, 2)
  t.equal(app.wss.publish('room', 'for the room'), 2)
  t.equal(app.wss.publish('room', 'not for a', { except: opened[0] }), 1)
  t.equal(app.wss.publish('nobody', 'lost'), 0)
  t.same(await toA, ['for the room'])
  t.same(await toB, ['for the room', 'not for a'])
  t.equal(toC, false)
  opened[1].unsubscribe('room')
  t.equal(app.wss.publish('room', 'only a'), 1)
  t.throws(() => app.wss.publish('', 'x'), { code: 'FST_WSS_INVALID_TOPIC' })
  t.throws(() => app.wss.publish('nobody', Symbol('x')), { code: 'FST_WSS_NOT_SERIALIZABLE' }, 'encoding errors do not depend on subscribers')
})

t.test('a connection leaves all its topics when it closes, and cannot subscribe once closed', async (t) => {
  const terminated = deferred<WebSocketConnection<any>>()
  const { app, base } = await start(t, {
    path: '/ws',
    handler: {
      onConnection: () => ({
        onOpen (ws) { ws.subscribe('a'); ws.subscribe('b') },
        onMessage () {},
        onTerminate (ws) { terminated.resolve(ws) }
      })
    }
  })
  const client = await connect(t, `${base}/ws`)
  client.send('sync') // onOpen has run once a message round trip would be possible
  t.equal(app.wss.connections[0].topics.length, 2)
  client.close()
  const ws = await terminated.promise
  t.same(ws.topics, [])
  t.equal(app.wss.publish('a', 'x'), 0)
  t.equal(app.wss.publish('b', 'x'), 0)
  t.equal(ws.subscribe('a'), false)
})

t.test('a burst of broadcasts in one tick larger than maxBackpressure does not drop a client that reads', async (t) => {
  const { options, opened } = recorder({ maxBackpressure: 64 * 1024 })
  const { app, base } = await start(t, options)
  const ws = await connect(t, `${base}/ws`)
  const chunk = 'x'.repeat(16 * 1024)
  const received = messages(ws, 20)
  const counts: number[] = []
  for (let i = 0; i < 20; i++) counts.push(app.wss.broadcast(chunk)) // 320 KiB, five times the limit
  t.same(counts, Array(20).fill(1), 'every broadcast reached the client')
  t.equal((await received).length, 20)
  t.equal(opened[0].status, 'Connected')
})

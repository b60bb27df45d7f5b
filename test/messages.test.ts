import { once } from 'node:events'
import t, { type Test } from 'tap'
import type WebSocket from 'ws'
import { WebSocketConnection, type ErrorEvent, type WssErrorEntry } from '../lib/index.js'
import { start, connect, deferred } from './helpers/index.js'
import { until, turns } from './helpers/until.js'

type Connection = WebSocketConnection<any>

/** A server whose connections push every `event.data` into `received`, resolving `done` after `count`. */
async function collecting (t: Test, dataType: 'text' | 'blob' | 'object', count: number) {
  const received: unknown[] = []
  const errors: WssErrorEntry[] = []
  const done = deferred()
  const opened = deferred<Connection>()
  const { base } = await start(t, {
    path: '/m',
    dataType,
    handler: {
      onConnection () {
        return {
          onOpen (ws: Connection) { opened.resolve(ws) },
          onMessage (_ws: Connection, event: { data: unknown }) {
            received.push(event.data)
            if (received.length === count) done.resolve()
          },
          onError (_ws: Connection, event: ErrorEvent) { errors.push(...event.errors) }
        }
      }
    }
  })
  const client = await connect(t, `${base}/m`)
  return { client, received, errors, done: done.promise, connection: await opened.promise }
}

t.test('under dataType text, a text frame and a binary frame both arrive as strings, binary decoded as UTF-8', async (t) => {
  const { client, received, done } = await collecting(t, 'text', 2)
  client.send('héllo ✓')
  client.send(Buffer.from('wörld ✓', 'utf8'))
  await done
  t.same(received, ['héllo ✓', 'wörld ✓'])
  t.equal(typeof received[0], 'string')
  t.equal(typeof received[1], 'string')
})

t.test('under dataType blob, a binary frame and a text frame both arrive as Buffers, text as its UTF-8 bytes', async (t) => {
  const { client, received, done } = await collecting(t, 'blob', 2)
  client.send(Buffer.from([0, 1, 254, 255]))
  client.send('é✓')
  await done
  t.ok(Buffer.isBuffer(received[0]), 'the binary frame is a Buffer')
  t.ok(Buffer.isBuffer(received[1]), 'the text frame is a Buffer')
  t.same([...(received[0] as Buffer)], [0, 1, 254, 255])
  t.same([...(received[1] as Buffer)], [...Buffer.from('é✓', 'utf8')])
})

t.test('under dataType object, JSON in a text frame and JSON in a binary frame both arrive parsed', async (t) => {
  const { client, received, done } = await collecting(t, 'object', 4)
  client.send('{"a":1,"b":["x",null]}')
  client.send(Buffer.from('[1,"é",true]', 'utf8'))
  client.send('"just a string"')
  client.send('42')
  await done
  t.same(received, [{ a: 1, b: ['x', null] }, [1, 'é', true], 'just a string', 42])
})

t.test('under dataType object, invalid JSON goes to onError with errCode 300, is not delivered, and later messages flow', async (t) => {
  const { client, received, errors, done, connection } = await collecting(t, 'object', 2)
  client.send('{"first":true}')
  client.send('{not json')
  client.send(Buffer.from([0xff, 0xfe]))
  client.send('{"last":true}')
  await done
  t.same(received, [{ first: true }, { last: true }], 'only the valid messages are delivered')
  t.equal(errors.length, 2, 'one error per invalid message')
  for (const entry of errors) {
    t.equal(entry.errCode, 300)
    t.equal(entry.componentSignature, 'fastify-wss')
    t.type(entry.message, 'string')
    t.ok(entry.error instanceof Error, 'the entry carries the error')
    t.equal((entry.error as Error & { code?: string }).code, 'FST_WSS_INVALID_JSON')
    t.equal(entry.message, (entry.error as Error).message)
  }
  t.equal(connection.status, 'Connected', 'the connection stays open')
  t.equal(client.readyState, client.OPEN)
})

t.test('under dataType object, invalid JSON on a connection handler without onError reaches the server onError with the connection', async (t) => {
  const reported = deferred<{ errors: WssErrorEntry[], connection: unknown }>()
  const delivered = deferred<unknown>()
  let connection: Connection | undefined
  const { base } = await start(t, {
    path: '/m',
    dataType: 'object',
    handler: {
      onConnection () {
        return {
          onOpen (ws: Connection) { connection = ws },
          onMessage (_ws: Connection, event: { data: unknown }) { delivered.resolve(event.data) }
        }
      },
      onError (_wss: unknown, event: { errors: WssErrorEntry[], connection?: unknown }) {
        reported.resolve({ errors: event.errors, connection: event.connection })
      }
    }
  })
  const client = await connect(t, `${base}/m`)
  client.send('nope')
  client.send('{"ok":1}')
  const { errors, connection: from } = await reported.promise
  t.equal(errors[0].errCode, 300)
  t.equal(from, connection, 'the event names the connection')
  t.same(await delivered.promise, { ok: 1 }, 'the next message is delivered')
})

t.test('onMessage is called as a method of the connection handler with (ws, { type: message, data })', async (t) => {
  const done = deferred()
  const calls: Array<{ self: unknown, ws: unknown, event: unknown }> = []
  class Room {
    readonly seen: string[] = []
    remember (text: string): void { this.seen.push(text) }
    onMessage (ws: Connection, event: { type: string, data: unknown }): void {
      calls.push({ self: this, ws, event })
      this.remember(String(event.data))
      if (this.seen.length === 2) done.resolve()
    }
  }
  const room = new Room()
  const { base } = await start(t, {
    path: '/m',
    handler: {
      onConnection () { return room }
    }
  })
  const client = await connect(t, `${base}/m`)
  client.send('one')
  client.send('two')
  await done.promise
  const opened = calls[0].ws as Connection
  t.same(room.seen, ['one', 'two'], 'the helper method was reached through this')
  for (const call of calls) {
    t.equal(call.self, room, 'this is the connection handler')
    t.ok(call.ws instanceof WebSocketConnection, 'the first argument is the connection')
    t.equal(call.ws, opened, 'the same connection for every message')
  }
  t.same(calls.map((call) => call.event), [{ type: 'message', data: 'one', binary: false }, { type: 'message', data: 'two', binary: false }])
  t.equal(opened.handler, room)
})

t.test('messages of one connection reach an async onMessage in send order, one at a time', async (t) => {
  const count = 200
  const order: number[] = []
  let inFlight = 0
  let maxInFlight = 0
  const done = deferred()
  const finish = (i: number): void => {
    order.push(i)
    inFlight--
    if (order.length === count) done.resolve()
  }
  const { base } = await start(t, {
    path: '/m',
    handler: {
      onConnection () {
        return {
          onMessage (_ws: Connection, event: { data: unknown }) {
            const i = Number(event.data)
            inFlight++
            maxInFlight = Math.max(maxInFlight, inFlight)
            if (i % 5 === 0) { finish(i); return } // some finish synchronously
            return (async () => {
              if (i % 5 === 1) {
                for (let k = 0; k < 3; k++) await Promise.resolve()
              } else if (i % 5 === 2) {
                await new Promise((resolve) => setImmediate(resolve))
              } else {
                await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 3)))
              }
              finish(i)
            })()
          }
        }
      }
    }
  })
  const client = await connect(t, `${base}/m`)
  for (let i = 0; i < count; i++) client.send(String(i))
  await done.promise
  t.same(order, Array.from({ length: count }, (_, i) => i), 'every message, in send order')
  t.equal(maxInFlight, 1, 'never two onMessage calls of one connection at once')
})

t.test('a stalled onMessage on one connection does not hold up the messages of another connection', async (t) => {
  const gate = deferred()
  const received: Record<string, string[]> = { a: [], b: [] }
  const connections: Record<string, Connection> = {}
  const bDone = deferred()
  const aDone = deferred()
  const { base } = await start(t, {
    path: '/m',
    handler: {
      onConnection (_wss: unknown, event: { request: { query: Record<string, string | string[]> } }) {
        const name = String(event.request.query.name)
        return {
          onOpen (ws: Connection) { connections[name] = ws },
          async onMessage (_ws: Connection, e: { data: unknown }) {
            received[name].push(String(e.data))
            if (name === 'a') {
              await gate.promise
              if (received.a.length === 3) aDone.resolve()
            } else if (received.b.length === 3) {
              bDone.resolve()
            }
          }
        }
      }
    }
  })
  const a = await connect(t, `${base}/m?name=a`)
  a.send('a0')
  a.send('a1')
  a.send('a2')
  await until(() => connections.a?._inbound.length === 2, 'a1 and a2 wait behind the stalled a0')
  const b = await connect(t, `${base}/m?name=b`)
  b.send('b0')
  b.send('b1')
  b.send('b2')
  await bDone.promise
  t.same(received.b, ['b0', 'b1', 'b2'], 'the other connection got all its messages')
  t.same(received.a, ['a0'], 'the stalled connection is still on its first message')
  gate.resolve()
  await aDone.promise
  t.same(received.a, ['a0', 'a1', 'a2'], 'the stalled connection resumes in order')
})

t.test('no message is lost or delivered while an async onOpen is still running', async (t) => {
  const log: string[] = []
  const openGate = deferred()
  const done = deferred()
  let connection: Connection | undefined
  const { base } = await start(t, {
    path: '/m',
    handler: {
      onConnection () {
        return {
          async onOpen (ws: Connection) {
            connection = ws
            log.push('open:start')
            await openGate.promise
            log.push('open:end')
          },
          onMessage (_ws: Connection, e: { data: unknown }) {
            log.push(String(e.data))
            if (log.length === 12) done.resolve()
          }
        }
      }
    }
  })
  const client = await connect(t, `${base}/m`)
  for (let i = 0; i < 10; i++) client.send(`m${i}`)
  await until(() => connection?._inbound.length === 10, 'the server has received the 10 messages')
  t.same(log, ['open:start'], 'no onMessage while onOpen has not settled')
  openGate.resolve()
  await done.promise
  t.same(log, ['open:start', 'open:end', ...Array.from({ length: 10 }, (_, i) => `m${i}`)])
})

t.test('past maxPendingMessages reading pauses, and every message is delivered once, in order, after the queue drains', async (t) => {
  const max = 10
  const count = 300
  const gate = deferred()
  const order: number[] = []
  const done = deferred()
  let connection: Connection | undefined
  const { base } = await start(t, {
    path: '/m',
    maxPendingMessages: max,
    handler: {
      onConnection () {
        return {
          onOpen (ws: Connection) { connection = ws },
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
  const client: WebSocket = await connect(t, `${base}/m`)
  const padding = 'x'.repeat(16 * 1024)
  for (let i = 0; i < count; i++) client.send(`${i}:${padding}`)
  await until(() => connection?._inbound.paused === true, 'reading is paused')
  const conn = connection as Connection
  let largest = conn._inbound.length
  // Let the loopback deliver whatever it still can while the gate stays closed.
  for (let i = 0; i < 20; i++) {
    await turns(5)
    largest = Math.max(largest, conn._inbound.length)
  }
  t.ok(largest >= max, `the queue reached the bound (${largest})`)
  t.ok(largest <= max + 8, `the queue stays within the bound plus one read (${largest} <= ${max + 8})`)
  t.equal(conn._inbound.paused, true, 'still paused while nothing is delivered')
  gate.resolve()
  await done.promise
  t.same(order, Array.from({ length: count }, (_, i) => i), 'all messages, exactly once, in order')
  t.equal(conn._inbound.paused, false, 'reading resumed')
  t.equal(conn._inbound.length, 0, 'nothing left in the queue')
})

t.test('messages received before a close are still delivered, then onTerminate runs last and once', async (t) => {
  const calls: string[] = []
  const statuses: string[] = []
  const sendResults: boolean[] = []
  const terminated = deferred()
  let terminates = 0
  const { base } = await start(t, {
    path: '/m',
    handler: {
      onConnection () {
        return {
          async onMessage (ws: Connection, e: { data: unknown }) {
            calls.push(`message:${String(e.data)}`)
            if (e.data === 'm0') {
              // Slow: hold the first message until the close has been received.
              await until(() => ws.status !== 'Connected', 'the close frame has been received')
              return
            }
            statuses.push(ws.status)
            sendResults.push(ws.send('echo'))
            await new Promise((resolve) => setImmediate(resolve))
          },
          async onTerminate (_ws: Connection, event: unknown) {
            terminates++
            calls.push(`terminate:${JSON.stringify(event)}`)
            await Promise.resolve()
            terminated.resolve()
          }
        }
      }
    }
  })
  const client = await connect(t, `${base}/m`)
  const echoes: string[] = []
  client.on('message', (data: Buffer) => echoes.push(data.toString()))
  for (let i = 0; i < 5; i++) client.send(`m${i}`)
  client.close(4001, 'done')
  await once(client, 'close')
  await terminated.promise
  t.same(calls, [
    'message:m0', 'message:m1', 'message:m2', 'message:m3', 'message:m4',
    'terminate:{"type":"terminate","code":4001,"reason":"done"}'
  ], 'all five messages, then onTerminate')
  for (const status of statuses) t.ok(status === 'Closing' || status === 'Closed', `status is ${status}`)
  t.same(sendResults, [false, false, false, false], 'send returns false on a closing connection')
  t.same(echoes, [], 'nothing was sent')
  t.equal(terminates, 1, 'onTerminate ran once')
})

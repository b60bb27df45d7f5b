import { once } from 'node:events'
import net from 'node:net'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { WebSocketConnection, type ErrorEvent, type TerminateEvent, type WssErrorEntry, type WssPluginOptions } from '../lib/index.js'
import { start, connect, closed, deferred } from './helpers/index.js'
import { until } from './helpers/until.js'

type Connection = WebSocketConnection<any>

/** The connection handler each accepted connection gets: it records what happens to it. */
interface Recorded {
  messages: unknown[]
  errors: WssErrorEntry[]
  terminates: TerminateEvent[]
  /** Calls in order: 'open', 'message', 'terminate'. */
  calls: string[]
  /** `status` and `wss.connections` membership seen inside onTerminate. */
  inTerminate: { status: string, listed: boolean } | undefined
  terminated: Promise<TerminateEvent>
  onOpen (ws: Connection): void
  onMessage (ws: Connection, event: { data: unknown }): void
  onTerminate (ws: Connection, event: TerminateEvent): void
  onError (ws: Connection, event: ErrorEvent): void
}

function recorder (opened: (ws: Connection) => void): Recorded {
  const terminated = deferred<TerminateEvent>()
  return {
    messages: [],
    errors: [],
    terminates: [],
    calls: [],
    inTerminate: undefined,
    terminated: terminated.promise,
    onOpen (ws) {
      this.calls.push('open')
      opened(ws)
    },
    onMessage (_ws, event) {
      this.calls.push('message')
      this.messages.push(event.data)
    },
    onTerminate (ws, event) {
      this.calls.push('terminate')
      this.terminates.push(event)
      this.inTerminate = { status: ws.status, listed: ws.wss.connections.includes(ws) }
      terminated.resolve(event)
    },
    onError (_ws, event) {
      this.errors.push(...event.errors)
    }
  }
}

/**
 * A server whose connections are recorded. `open()` connects a client and
 * gives it with its server-side connection and that connection's handler.
 */
async function serve (t: Test, options: Partial<WssPluginOptions<any>> = {}) {
  let next = deferred<Connection>()
  const onOpened = (ws: Connection): void => {
    const current = next
    next = deferred<Connection>()
    current.resolve(ws)
  }
  const { app, base } = await start(t, {
    path: '/c',
    ...options,
    handler: {
      onConnection () { return recorder(onOpened) }
    }
  })
  async function open (query = ''): Promise<{ client: WebSocket, conn: Connection, handler: Recorded }> {
    const opened = next.promise
    const client = await connect(t, `${base}/c${query}`)
    const conn = await opened
    return { client, conn, handler: conn.handler as unknown as Recorded }
  }
  return { app, base, open }
}

/** The next `count` frames a client receives, with whether each was binary. */
async function frames (ws: WebSocket, count: number): Promise<Array<{ binary: boolean, bytes: number[], text: string }>> {
  const received: Array<{ binary: boolean, bytes: number[], text: string }> = []
  return await new Promise((resolve) => {
    const onMessage = (data: Buffer, binary: boolean): void => {
      received.push({ binary, bytes: [...data], text: data.toString() })
      if (received.length === count) {
        ws.off('message', onMessage)
        resolve(received)
      }
    }
    ws.on('message', onMessage)
  })
}

/** What `fn` throws (it must throw), for checking its class and code. */
function thrown (fn: () => unknown): Error & { code?: unknown } {
  try {
    fn()
  } catch (err) {
    return err as Error & { code?: unknown }
  }
  throw new Error('expected a throw')
}

/** Asserts that `fn` throws an instance of `Class` with the error code `code`. */
function throwsCoded (t: Test, fn: () => unknown, Class: ErrorConstructor, code: string, what: string): void {
  const err = thrown(fn)
  t.ok(err instanceof Class, `${what}: a ${Class.name}`)
  t.equal(err.code, code, `${what}: ${code}`)
}

t.test('send() sends a string as a text frame, bytes as binary frames and any other value as JSON text', async (t) => {
  const { open } = await serve(t)
  const { client, conn } = await open()
  const values: unknown[] = [
    'héllo ✓',
    Buffer.from([1, 2, 3]),
    new Uint8Array([4, 5, 6]),
    new Uint8Array([7, 8, 9]).buffer,
    new Uint8Array([0, 10, 11, 12, 0]).subarray(1, 4),
    { a: 1, b: 'é' },
    [1, 'x', null],
    42,
    true,
    false,
    null
  ]
  const received = frames(client, values.length)
  const results = values.map((value) => conn.send(value))
  t.same(results, values.map(() => true), 'send returns true on a Connected connection')
  const got = await received
  t.same(got.map(({ binary }) => binary), [false, true, true, true, true, false, false, false, false, false, false])
  t.equal(got[0].text, 'héllo ✓')
  t.same(got[1].bytes, [1, 2, 3])
  t.same(got[2].bytes, [4, 5, 6])
  t.same(got[3].bytes, [7, 8, 9])
  t.same(got[4].bytes, [10, 11, 12], 'a view sends only the bytes it covers')
  t.same(got.slice(5).map(({ text }) => text), ['{"a":1,"b":"é"}', '[1,"x",null]', '42', 'true', 'false', 'null'])
})

t.test('under dataType object, send() JSON-encodes a string too', async (t) => {
  const { open } = await serve(t, { dataType: 'object' })
  const { client, conn } = await open()
  const received = frames(client, 3)
  t.equal(conn.send('hi'), true)
  t.equal(conn.send({ hi: 'there' }), true)
  t.equal(conn.send(Buffer.from('raw')), true)
  const got = await received
  t.same(got.map(({ binary, text }) => ({ binary, text })), [
    { binary: false, text: '"hi"' },
    { binary: false, text: '{"hi":"there"}' },
    { binary: true, text: 'raw' }
  ])
})

t.test('the messages sent to a connection in one tick wait until its end, then leave together, in order', async (t) => {
  const { open } = await serve(t)
  const { client, conn } = await open()
  const received = frames(client, 3)
  t.equal(conn.bufferedAmount, 0)
  conn.send('one')
  conn.send('two')
  conn.send('three')
  t.equal(conn.bufferedAmount, 5 + 5 + 7, 'the three frames are held for one write')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(conn.bufferedAmount, 0, 'written once the tick has ended')
  t.same((await received).map(({ text }) => text), ['one', 'two', 'three'])
})

t.test('send() of a value JSON cannot encode throws a TypeError FST_WSS_NOT_SERIALIZABLE and sends nothing', async (t) => {
  const { open } = await serve(t)
  const { client, conn } = await open()
  const cycle: Record<string, unknown> = { name: 'loop' }
  cycle.self = cycle
  const values: Array<[string, unknown]> = [
    ['a cycle', cycle],
    ['a BigInt', 10n],
    ['a BigInt inside an object', { n: 1n }],
    ['undefined', undefined],
    ['a function', () => {}],
    ['a symbol', Symbol('s')]
  ]
  const received = frames(client, 1)
  for (const [name, value] of values) {
    throwsCoded(t, () => conn.send(value), TypeError, 'FST_WSS_NOT_SERIALIZABLE', name)
  }
  t.equal(conn.status, 'Connected', 'the connection is unaffected')
  t.equal(conn.send('after'), true)
  t.same((await received).map(({ text }) => text), ['after'], 'nothing was sent for the failed calls')
})

t.test('send() returns false, sending and throwing nothing, on a Closing or a Closed connection', async (t) => {
  const { open } = await serve(t)
  const { client, conn, handler } = await open()
  const received: string[] = []
  client.on('message', (data: Buffer) => received.push(data.toString()))
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  const whenClosed = closed(client)
  conn.terminate()
  t.equal(conn.status, 'Closing')
  t.equal(conn.send('late'), false, 'false on Closing')
  t.equal(conn.send(cycle), false, 'false, not a throw, even for a value JSON cannot encode')
  t.equal(conn.send(Buffer.from('late')), false)
  await handler.terminated
  t.equal(conn.status, 'Closed')
  t.equal(conn.send('later'), false, 'false on Closed')
  t.equal(conn.send({ later: true }), false)
  await whenClosed
  t.same(received, [], 'the client got nothing')
})

t.test('terminate() without arguments closes with code 1000', async (t) => {
  const { open } = await serve(t)
  const { client, conn, handler } = await open()
  const whenClosed = closed(client)
  conn.terminate()
  t.same(await whenClosed, { code: 1000, reason: '' })
  t.same(await handler.terminated, { type: 'terminate', code: 1000, reason: undefined })
})

t.test('terminate({ code: 4000, message: bye }) reaches the client', async (t) => {
  const { open } = await serve(t)
  const { client, conn } = await open()
  const whenClosed = closed(client)
  conn.terminate({ code: 4000, message: 'bye' })
  t.same(await whenClosed, { code: 4000, reason: 'bye' })
})

t.test('terminate() with an invalid code throws a RangeError FST_WSS_INVALID_CLOSE_CODE and closes nothing', async (t) => {
  const { open } = await serve(t)
  const { client, conn } = await open()
  for (const code of [999, 1001, 2999, 5000, 3000.5, NaN, '4000'] as unknown[]) {
    throwsCoded(t, () => conn.terminate({ code: code as number }), RangeError, 'FST_WSS_INVALID_CLOSE_CODE', JSON.stringify(code) ?? String(code))
    t.equal(conn.status, 'Connected', `${String(code)} leaves the connection Connected`)
  }
  const received = frames(client, 1)
  t.equal(conn.send('still open'), true)
  t.same((await received).map(({ text }) => text), ['still open'])
  const whenClosed = closed(client)
  conn.terminate({ code: 3000 })
  t.equal((await whenClosed).code, 3000, '3000 is valid')
})

t.test('terminate() with a message over 123 UTF-8 bytes throws a RangeError FST_WSS_CLOSE_MESSAGE_TOO_LONG', async (t) => {
  const { open } = await serve(t)
  const { client, conn } = await open()
  const tooLong = 'é'.repeat(62) // 62 characters, 124 bytes
  throwsCoded(t, () => conn.terminate({ message: tooLong }), RangeError, 'FST_WSS_CLOSE_MESSAGE_TOO_LONG', '124 bytes')
  throwsCoded(t, () => conn.terminate({ code: 4000, message: tooLong }), RangeError, 'FST_WSS_CLOSE_MESSAGE_TOO_LONG', '124 bytes with a code')
  throwsCoded(t, () => conn.terminate({ message: 42 as unknown as string }), RangeError, 'FST_WSS_CLOSE_MESSAGE_TOO_LONG', 'not a string')
  t.equal(conn.status, 'Connected')
  const longest = 'é'.repeat(61) + 'a' // 123 bytes
  const whenClosed = closed(client)
  conn.terminate({ code: 4000, message: longest })
  t.same(await whenClosed, { code: 4000, reason: longest }, 'a message of exactly 123 bytes is accepted')
})

t.test('after terminate() the status is Closing at once, then Closed in onTerminate', async (t) => {
  const { open } = await serve(t)
  const { conn, handler } = await open()
  t.equal(conn.status, 'Connected')
  conn.terminate()
  t.equal(conn.status, 'Closing')
  await handler.terminated
  t.equal(handler.inTerminate?.status, 'Closed')
  t.equal(conn.status, 'Closed')
})

t.test('terminate() on a Closing or Closed connection does nothing with valid arguments and still throws on invalid ones', async (t) => {
  const { open } = await serve(t)
  const { client, conn, handler } = await open()
  const whenClosed = closed(client)
  conn.terminate({ code: 4000, message: 'first' })
  t.equal(conn.status, 'Closing')
  t.doesNotThrow(() => conn.terminate(), 'no arguments, Closing')
  t.doesNotThrow(() => conn.terminate({ code: 4001, message: 'second' }), 'valid arguments, Closing')
  throwsCoded(t, () => conn.terminate({ code: 1001 }), RangeError, 'FST_WSS_INVALID_CLOSE_CODE', 'invalid code, Closing')
  throwsCoded(t, () => conn.terminate({ message: 'é'.repeat(62) }), RangeError, 'FST_WSS_CLOSE_MESSAGE_TOO_LONG', 'long message, Closing')
  t.same(await whenClosed, { code: 4000, reason: 'first' }, 'the first terminate() wins')
  await handler.terminated
  t.equal(conn.status, 'Closed')
  t.doesNotThrow(() => conn.terminate({ code: 4002 }), 'valid arguments, Closed')
  throwsCoded(t, () => conn.terminate({ code: 5000 }), RangeError, 'FST_WSS_INVALID_CLOSE_CODE', 'invalid code, Closed')
  throwsCoded(t, () => conn.terminate({ message: 'é'.repeat(62) }), RangeError, 'FST_WSS_CLOSE_MESSAGE_TOO_LONG', 'long message, Closed')
  t.same(handler.terminates, [{ type: 'terminate', code: 4000, reason: 'first' }], 'one onTerminate, from the first terminate()')
})

/** Opens a WebSocket with a raw TCP socket that then never writes again; resolves after the 101. */
async function silentPeer (t: Test, base: string, path: string): Promise<{ socket: net.Socket, received: () => Buffer }> {
  const socket = net.connect(Number(new URL(base).port), '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  const chunks: Buffer[] = []
  const headers = deferred()
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk)
    if (Buffer.concat(chunks).includes('\r\n\r\n')) headers.resolve()
  })
  await once(socket, 'connect')
  socket.write([
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${new URL(base).port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    '', ''
  ].join('\r\n'))
  await headers.promise
  t.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 101 /, 'the handshake completed')
  return { socket, received: () => Buffer.concat(chunks) }
}

t.test('a peer that never answers the close frame is destroyed after closeTimeout, and onTerminate gets 1006', async (t) => {
  const opened = deferred<Connection>()
  const terminated = deferred<TerminateEvent>()
  const { base } = await start(t, {
    path: '/c',
    closeTimeout: 100,
    handler: {
      onConnection () {
        return {
          onOpen (ws: Connection) { opened.resolve(ws) },
          onMessage () {},
          onTerminate (_ws: Connection, event: TerminateEvent) { terminated.resolve(event) }
        }
      }
    }
  })
  const { socket, received } = await silentPeer(t, base, '/c')
  const conn = await opened.promise
  const socketClosed = once(socket, 'close')
  conn.terminate()
  t.equal(conn.status, 'Closing')
  t.same(await terminated.promise, { type: 'terminate', code: 1006, reason: undefined })
  await socketClosed
  const all = received()
  const frame = all.subarray(all.indexOf('\r\n\r\n') + 4)
  t.same([...frame], [0x88, 0x02, 0x03, 0xe8], 'the server had sent its close frame (1000)')
})

t.test('onTerminate gets the code and reason of a client close frame, once', async (t) => {
  const { app, open } = await serve(t)
  const { client, handler } = await open()
  client.close(4001, 'bye')
  t.same(await handler.terminated, { type: 'terminate', code: 4001, reason: 'bye' })
  await app.close()
  t.equal(handler.terminates.length, 1, 'exactly once')
})

t.test('onTerminate gets 1005 and no reason for a client close frame without a code', async (t) => {
  const { app, open } = await serve(t)
  const { client, handler } = await open()
  client.close()
  t.same(await handler.terminated, { type: 'terminate', code: 1005, reason: undefined })
  await app.close()
  t.equal(handler.terminates.length, 1, 'exactly once')
})

t.test('onTerminate gets 1006 when the client socket is destroyed without a close frame', async (t) => {
  const { app, open } = await serve(t)
  const { client, handler } = await open()
  client.terminate()
  t.same(await handler.terminated, { type: 'terminate', code: 1006, reason: undefined })
  await app.close()
  t.equal(handler.terminates.length, 1, 'exactly once')
})

t.test('onTerminate of a server-initiated close gets the code the peer echoed', async (t) => {
  const { app, open } = await serve(t)
  const { conn, handler } = await open()
  conn.terminate({ code: 4000 })
  t.same(await handler.terminated, { type: 'terminate', code: 4000, reason: undefined })
  await app.close()
  t.equal(handler.terminates.length, 1, 'exactly once')
  t.same(handler.calls, ['open', 'terminate'])
})

t.test('a connection has a positive integer id, unique and increasing, and exposes wss, handler and request', async (t) => {
  const returned: unknown[] = []
  const requests: unknown[] = []
  const opened: Connection[] = []
  let next = deferred()
  const { app, base } = await start(t, {
    path: '/c',
    handler: {
      onConnection (_wss: unknown, event: { request: unknown }) {
        requests.push(event.request)
        const handler = {
          onOpen (ws: Connection) {
            opened.push(ws)
            next.resolve()
          },
          onMessage () {}
        }
        returned.push(handler)
        return handler
      }
    }
  })
  for (let i = 0; i < 3; i++) {
    next = deferred()
    await connect(t, `${base}/c?n=${i}`)
    await next.promise
  }
  const ids = opened.map((ws) => ws.id)
  for (const id of ids) t.ok(Number.isInteger(id) && id > 0, `${id} is a positive integer`)
  t.equal(new Set(ids).size, 3, 'ids are unique')
  t.ok(ids[0] < ids[1] && ids[1] < ids[2], 'ids increase')
  opened.forEach((ws, i) => {
    t.ok(ws instanceof WebSocketConnection)
    t.equal(ws.wss, app.wss, 'wss is the server')
    t.equal(ws.handler, returned[i], 'handler is what onConnection returned')
    t.equal(ws.request, requests[i], 'request is what onConnection received')
    t.same(ws.request.query, { n: String(i) })
  })
})

t.test('a connection is in wss.connections while Connected and has left it once Closed, already in onTerminate', async (t) => {
  const { app, open } = await serve(t)
  const { client, conn, handler } = await open()
  const other = await open()
  t.ok(app.wss.connections.includes(conn), 'listed while Connected')
  t.ok(app.wss.connections.includes(other.conn))
  client.close()
  await handler.terminated
  t.same(handler.inTerminate, { status: 'Closed', listed: false }, 'not listed inside onTerminate')
  t.notOk(app.wss.connections.includes(conn), 'not listed once Closed')
  t.same(app.wss.connections, [other.conn], 'the other connection stays')
})

t.test('onOpen is called as a method of the connection handler with (ws, { type: open })', async (t) => {
  const called = deferred<{ self: unknown, ws: unknown, event: unknown }>()
  class Session {
    greeting = 'welcome'
    greet (ws: Connection): void { ws.send(this.greeting) }
    onOpen (ws: Connection, event: unknown): void {
      this.greet(ws)
      called.resolve({ self: this, ws, event })
    }

    onMessage (): void {}
  }
  const session = new Session()
  const { base } = await start(t, { path: '/c', handler: { onConnection () { return session } } })
  const client = new WebSocket(`${base}/c`)
  t.teardown(() => client.terminate())
  const greeting = frames(client, 1) // listening before the greeting can arrive
  const { self, ws, event } = await called.promise
  t.equal(self, session, 'this is the connection handler')
  t.ok(ws instanceof WebSocketConnection)
  t.equal((ws as Connection).handler, session)
  t.same(event, { type: 'open' })
  t.same((await greeting).map(({ text }) => text), ['welcome'], 'the helper reached through this ran')
})

t.test('a throw in onOpen goes to onError with errCode 200 and does not close the connection', async (t) => {
  const failure = new Error('onOpen failed')
  const errors: WssErrorEntry[] = []
  const reported = deferred()
  const message = deferred<unknown>()
  let connection: Connection | undefined
  const { base } = await start(t, {
    path: '/c',
    handler: {
      onConnection () {
        return {
          onOpen (ws: Connection) {
            connection = ws
            throw failure
          },
          onMessage (_ws: Connection, event: { data: unknown }) { message.resolve(event.data) },
          onError (_ws: Connection, event: ErrorEvent) {
            errors.push(...event.errors)
            reported.resolve()
          }
        }
      }
    }
  })
  const client = await connect(t, `${base}/c`)
  await reported.promise
  t.same(errors, [{ errCode: 200, message: 'onOpen failed', componentSignature: 'fastify-wss', error: failure }])
  t.equal(errors[0].error, failure, 'the entry carries the thrown error')
  t.equal(connection?.status, 'Connected', 'still Connected')
  client.send('still flowing')
  t.equal(await message.promise, 'still flowing', 'messages are delivered')
})

t.test('a rejection in an async onOpen goes to onError with errCode 200 and messages flow after it', async (t) => {
  const errors: WssErrorEntry[] = []
  const log: string[] = []
  const { base } = await start(t, {
    path: '/c',
    handler: {
      onConnection () {
        return {
          async onOpen () {
            await Promise.resolve()
            throw new Error('async onOpen failed')
          },
          onMessage (_ws: Connection, event: { data: unknown }) {
            log.push(String(event.data))
          },
          onError (_ws: Connection, event: ErrorEvent) {
            log.push('error')
            errors.push(...event.errors)
          }
        }
      }
    }
  })
  const client = await connect(t, `${base}/c`)
  client.send('a')
  client.send('b')
  await until(() => log.length === 3, 'the error and both messages arrived')
  t.same(log, ['error', 'a', 'b'], 'the error is reported before any message is delivered')
  t.equal(errors[0].errCode, 200)
  t.equal(errors[0].message, 'async onOpen failed')
  t.equal(errors[0].componentSignature, 'fastify-wss')
})

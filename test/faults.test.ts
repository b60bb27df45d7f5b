import { once } from 'node:events'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import type { WebSocketConnection, WssErrorEntry } from '../lib/index.js'
import { connect, deferred, messages, start } from './helpers/index.js'
import { Opcode, closeCode, closePayload, frame, rawConnect, type FrameOptions, type RawClient } from './helpers/frames.js'
import { portOf } from './helpers/http.js'

type Test = typeof t
type Connection = WebSocketConnection<any>

/** What the server saw of one connection. */
interface Seen {
  errors: WssErrorEntry[]
  terminates: Array<{ code: number, reason: string | undefined }>
  /** Resolves with the first onTerminate event. */
  terminated: Promise<{ code: number, reason: string | undefined }>
}

/**
 * An echo server (maxPayload 1024, closeTimeout 200) that records, per
 * connection id, the errors its onError got and every onTerminate call.
 */
async function faultServer (t: Test) {
  const seen = new Map<number, Seen>()
  const opened: Array<(ws: Connection) => void> = []
  let connectionCalls = 0
  const { app, base } = await start(t, {
    maxPayload: 1024,
    closeTimeout: 200,
    heartbeat: false,
    handler: {
      onConnection () {
        connectionCalls++
        const terminated = deferred<{ code: number, reason: string | undefined }>()
        let record: Seen | undefined
        return {
          onOpen (ws: Connection) {
            record = { errors: [], terminates: [], terminated: terminated.promise }
            seen.set(ws.id, record)
            opened.shift()?.(ws)
          },
          onMessage (ws: Connection, event: { data: unknown }) { ws.send(event.data) },
          onError (_ws: Connection, event: { errors: WssErrorEntry[] }) { record?.errors.push(...event.errors) },
          onTerminate (_ws: Connection, event: { code: number, reason: string | undefined }) {
            record?.terminates.push({ code: event.code, reason: event.reason })
            terminated.resolve({ code: event.code, reason: event.reason })
          }
        }
      }
    }
  })

  /** A raw client past the handshake, and the server's connection for it. */
  async function raw (): Promise<{ client: RawClient, connection: Connection, seen: Seen }> {
    const open = deferred<Connection>()
    opened.push(open.resolve)
    const client = await rawConnect(t, base)
    const connection = await open.promise
    return { client, connection, seen: seen.get(connection.id) as Seen }
  }

  /** A normal `ws` client still gets its echo. */
  async function echoWorks (): Promise<void> {
    const open = deferred<Connection>()
    opened.push(open.resolve)
    const ws = await connect(t, base)
    await open.promise
    ws.send('still alive')
    t.same(await messages(ws, 1), ['still alive'], 'a normal client still gets its echo')
    ws.close()
    await once(ws, 'close')
  }

  return { app, base, raw, echoWorks, connectionCalls: () => connectionCalls }
}

/**
 * Sends one bad frame from a raw client and checks the server's answer: a
 * close frame with `expectedClose`, then, once the client has answered it and
 * ended its socket, one onError entry with `errCode`, one onTerminate (1006:
 * ws stops reading the peer once it has found a protocol error, so the
 * peer's close frame is never seen), the connection gone, and the server
 * still serving a normal client.
 */
async function badFrame (t: Test, bad: FrameOptions | Buffer, expectedClose: number, errCode: number): Promise<void> {
  const server = await faultServer(t)
  const { client, connection, seen } = await server.raw()
  t.equal(server.app.wss.connections.length, 1)
  client.send(bad)

  const reply = await client.nextFrame()
  t.ok(reply !== undefined, 'the server answers with a frame before closing')
  t.equal(reply?.opcode, Opcode.Close, 'a close frame')
  t.equal(reply !== undefined ? closeCode(reply) : undefined, expectedClose, `close code ${expectedClose}`)
  client.send({ opcode: Opcode.Close, payload: closePayload(expectedClose) })
  client.socket.end()
  await client.closed

  const end = await seen.terminated
  t.equal(end.code, 1006, 'onTerminate gets 1006')
  t.equal(seen.terminates.length, 1, 'onTerminate ran once')
  t.equal(seen.errors.length, 1, 'onError got one error')
  t.equal(seen.errors[0].errCode, errCode, `errCode ${errCode}`)
  t.equal(seen.errors[0].componentSignature, 'fastify-wss')
  t.type(seen.errors[0].error, Error)
  t.equal(connection.status, 'Closed')
  t.notOk(server.app.wss.connections.includes(connection), 'the connection left wss.connections')
  await server.echoWorks()
}

t.test('an unmasked client frame closes the connection with 1002 and reaches onError with errCode 400', async (t) => {
  await badFrame(t, { opcode: Opcode.Text, payload: 'hello', mask: false }, 1002, 400)
})

t.test('a frame with a reserved opcode (0x3) closes the connection with 1002 and reaches onError with errCode 400', async (t) => {
  await badFrame(t, { opcode: 0x3, payload: 'hello' }, 1002, 400)
})

t.test('a frame with a reserved control opcode (0xb) closes the connection with 1002 and reaches onError with errCode 400', async (t) => {
  await badFrame(t, { opcode: 0xb, payload: 'hello' }, 1002, 400)
})

for (const bit of ['rsv1', 'rsv2', 'rsv3'] as const) {
  t.test(`a frame with ${bit.toUpperCase()} set and no extension negotiated closes the connection with 1002 and reaches onError with errCode 400`, async (t) => {
    await badFrame(t, { opcode: Opcode.Text, payload: 'hello', [bit]: true }, 1002, 400)
  })
}

t.test('a text frame with invalid UTF-8 closes the connection with 1007 and reaches onError with errCode 400', async (t) => {
  await badFrame(t, { opcode: Opcode.Text, payload: Buffer.from([0x68, 0x69, 0xc3, 0x28]) }, 1007, 400)
})

t.test('a fragmented control frame (a ping with FIN=0) closes the connection with 1002 and reaches onError with errCode 400', async (t) => {
  await badFrame(t, { opcode: Opcode.Ping, payload: 'ping', fin: false }, 1002, 400)
})

t.test('a control frame with a payload over 125 bytes closes the connection with 1002 and reaches onError with errCode 400', async (t) => {
  await badFrame(t, { opcode: Opcode.Ping, payload: Buffer.alloc(126, 0x61) }, 1002, 400)
})

t.test('a continuation frame with no message started closes the connection with 1002 and reaches onError with errCode 400', async (t) => {
  await badFrame(t, { opcode: Opcode.Continuation, payload: 'orphan' }, 1002, 400)
})

t.test('a frame larger than maxPayload (1024) closes the connection with 1009 and reaches onError with errCode 401', async (t) => {
  await badFrame(t, { opcode: Opcode.Binary, payload: Buffer.alloc(2000, 0x61) }, 1009, 401)
})

t.test('a frame announcing 2^63-1 bytes closes the connection with 1009 and reaches onError with errCode 401', async (t) => {
  const header = Buffer.from([0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4])
  await badFrame(t, header, 1009, 401)
})

t.test('a message over maxPayload in small fragments closes the connection with 1009 and reaches onError with errCode 401', async (t) => {
  const chunk = Buffer.alloc(400, 0x61)
  const fragments = Buffer.concat([
    frame({ opcode: Opcode.Text, payload: chunk, fin: false }),
    frame({ opcode: Opcode.Continuation, payload: chunk, fin: false }),
    frame({ opcode: Opcode.Continuation, payload: chunk, fin: true })
  ])
  await badFrame(t, fragments, 1009, 401)
})

t.test('a truncated frame followed by a disconnect ends the connection with onTerminate 1006 and no error', async (t) => {
  const server = await faultServer(t)
  const { client, connection, seen } = await server.raw()
  // announces 100 bytes, sends 10 of them, then ends the TCP connection
  const whole = frame({ opcode: Opcode.Text, payload: Buffer.alloc(100, 0x61) })
  client.socket.write(whole.subarray(0, whole.length - 90))
  client.socket.end()

  t.same(await seen.terminated, { code: 1006, reason: undefined }, 'onTerminate gets 1006')
  await client.closed
  t.equal(seen.terminates.length, 1, 'onTerminate ran once')
  t.same(seen.errors, [], 'a peer that leaves is not an error')
  t.notOk(server.app.wss.connections.includes(connection), 'the connection left wss.connections')
  await server.echoWorks()
})

t.test('a header cut after its first byte, then a disconnect, ends the connection with onTerminate 1006', async (t) => {
  const server = await faultServer(t)
  const { client, connection, seen } = await server.raw()
  client.socket.end(Buffer.from([0x81]))

  t.same(await seen.terminated, { code: 1006, reason: undefined })
  t.equal(seen.terminates.length, 1, 'onTerminate ran once')
  t.notOk(server.app.wss.connections.includes(connection), 'the connection left wss.connections')
  await server.echoWorks()
})

t.test('an abrupt disconnect in the middle of a fragmented message delivers nothing and ends with onTerminate 1006', async (t) => {
  const server = await faultServer(t)
  const { client, connection, seen } = await server.raw()
  client.send({ opcode: Opcode.Text, payload: 'first fragment', fin: false })
  client.socket.destroy()

  t.same(await seen.terminated, { code: 1006, reason: undefined }, 'onTerminate gets 1006')
  t.equal(seen.terminates.length, 1, 'onTerminate ran once')
  t.same(seen.errors, [], 'a peer that leaves is not an error')
  t.notOk(server.app.wss.connections.includes(connection), 'the connection left wss.connections')
  await server.echoWorks()
})

t.test('a connection reset (RST) in the middle of a message is a socket error (410), then onTerminate 1006', async (t) => {
  const server = await faultServer(t)
  const { client, connection, seen } = await server.raw()
  client.send({ opcode: Opcode.Binary, payload: Buffer.alloc(512), fin: false })
  // A ping between fragments is allowed: its pong shows the server has read the fragment.
  client.send({ opcode: Opcode.Ping, payload: Buffer.from('sync') })
  t.equal((await client.nextFrame())?.opcode, Opcode.Pong)
  client.socket.resetAndDestroy()

  t.same(await seen.terminated, { code: 1006, reason: undefined }, 'onTerminate gets 1006')
  t.equal(seen.terminates.length, 1, 'onTerminate ran once')
  t.same(seen.errors.map((entry) => entry.errCode), [410], 'the reset is reported once, as a socket error')
  t.match(seen.errors[0].message, /ECONNRESET/)
  t.notOk(server.app.wss.connections.includes(connection), 'the connection left wss.connections')
  await server.echoWorks()
})

/** Writes `bytes` on a new TCP connection and resolves with all the server answered once it closed. */
async function sendRaw (base: string, bytes: Buffer | string, end = false): Promise<string> {
  const socket = net.connect(portOf(base), '127.0.0.1')
  let text = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { text += chunk })
  socket.on('error', () => {})
  await once(socket, 'connect')
  if (end) socket.end(bytes)
  else socket.write(bytes)
  await once(socket, 'close')
  return text
}

t.test('random bytes instead of a handshake get an HTTP 400 or a closed socket, and no connection', async (t) => {
  const server = await faultServer(t)
  for (let i = 0; i < 20; i++) {
    // a first byte that cannot start an HTTP method, so the parser refuses at once
    const bytes = Buffer.concat([Buffer.from([0x00]), randomBytes(64 + i * 16)])
    const answer = await sendRaw(server.base, bytes)
    t.ok(answer === '' || answer.startsWith('HTTP/1.1 400 '), `answered ${JSON.stringify(answer.slice(0, 20))}`)
  }
  t.equal(server.connectionCalls(), 0, 'onConnection was never called')
  t.same(server.app.wss.connections, [])
  await server.echoWorks()
})

t.test('"HELLO\\r\\n\\r\\n" instead of a handshake gets an HTTP 400 and no connection', async (t) => {
  const server = await faultServer(t)
  const answer = await sendRaw(server.base, 'HELLO\r\n\r\n')
  t.match(answer, /^HTTP\/1\.1 400 /, 'a 400 answer')
  t.equal(server.connectionCalls(), 0, 'onConnection was never called')
  t.same(server.app.wss.connections, [])
  await server.echoWorks()
})

t.test('a handshake cut in the middle of its headers, then a disconnect, creates no connection', async (t) => {
  const server = await faultServer(t)
  const answer = await sendRaw(server.base, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upg', true)
  t.ok(answer === '' || answer.startsWith('HTTP/1.1 400 '), 'nothing, or a 400')
  t.equal(server.connectionCalls(), 0, 'onConnection was never called')
  t.same(server.app.wss.connections, [])
  await server.echoWorks()
})

t.test('an upgrade without Sec-WebSocket-Key is refused with 400 and leaves nothing behind', async (t) => {
  const server = await faultServer(t)
  const answer = await sendRaw(server.base,
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n')
  t.match(answer, /^HTTP\/1\.1 400 /, 'a 400 answer')
  t.same(server.app.wss.connections, [])
  await server.echoWorks()
})

import { once } from 'node:events'
import http from 'node:http'
import { PassThrough } from 'node:stream'
import t, { type Test } from 'tap'
import WebSocket, { WebSocketServer as WsServer } from 'ws'
import type { FastifyServerOptions } from 'fastify'
import type { WebSocketConnection, WssErrorEntry } from '../lib/index.js'
import { frame as serverFrame } from '../lib/codec.js'
import { Inbound, Pause, gateSupported } from '../lib/inbound.js'
import { Outbound, senderSupported } from '../lib/outbound.js'
import { closed, connect, deferred, messages, start } from './helpers/index.js'
import { captureLog, type LogLine } from './helpers/log.js'
import { until } from './helpers/until.js'
import { rawConnect } from './helpers/frames.js'
import { textFrames } from './helpers/flood.js'

type Connection = WebSocketConnection<any>

function range (count: number): number[] {
  return Array.from({ length: count }, (_, i) => i)
}

/**
 * An object server that records what it delivers and the errors it
 * reports, and answers `'end'` to `{ "end": true }`, so a client knows every
 * message before it was handled; with a connected client.
 */
async function objectServer (t: Test, options: Record<string, unknown> = {}, fastifyOptions: FastifyServerOptions = {}): Promise<{ client: WebSocket, received: any[], errors: WssErrorEntry[] }> {
  const received: any[] = []
  const errors: WssErrorEntry[] = []
  const { base } = await start(t, {
    ...options,
    dataType: 'object',
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onMessage (ws: Connection, e: { data: any }) {
            received.push(e.data)
            if (e.data?.end === true) ws.send('end')
          },
          onError (_ws: unknown, e: { errors: WssErrorEntry[] }) { errors.push(...e.errors) }
        }
      }
    }
  }, fastifyOptions)
  return { client: await connect(t, base), received, errors }
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** A plain `ws` server socket and its client, on a loopback HTTP server: for checks of `ws` itself. */
async function wsPair (t: Test): Promise<{ serverSocket: WebSocket, client: WebSocket }> {
  const wss = new WsServer({ noServer: true })
  const server = http.createServer()
  const accepted = deferred<WebSocket>()
  server.on('upgrade', (request, socket, head) => {
    wss.handleUpgrade(request, socket, head, (ws) => accepted.resolve(ws))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { wss.close(); server.close() })
  const { port } = server.address() as { port: number }
  const client = new WebSocket(`ws://127.0.0.1:${port}`)
  t.teardown(() => client.terminate())
  await once(client, 'open')
  const serverSocket = await accepted.promise
  return { serverSocket, client }
}

t.test('rateLimit { max: 5, timeWindow: 300 } (pause): 20 messages sent at once are all delivered in order, reading was paused for the rate, nothing is closed', async (t) => {
  const received: number[] = []
  const reasonsSeen: number[] = []
  const errors: unknown[] = []
  let terminated = false
  const { app, base } = await start(t, {
    rateLimit: { max: 5, timeWindow: 300 },
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onMessage (ws: Connection, e: { data: any }) {
            received.push(Number(e.data))
            reasonsSeen.push(ws._inbound.reasons)
          },
          onError (_ws: unknown, e: any) { errors.push(...e.errors) },
          onTerminate () { terminated = true }
        }
      }
    }
  })
  const client = await connect(t, base)
  for (let i = 0; i < 20; i++) client.send(String(i))

  await until(() => received.length === 20, 'all 20 are delivered', 1000)
  t.same(received, range(20), 'every message, once, in order')
  t.ok(reasonsSeen.some((reasons) => (reasons & Pause.Rate) !== 0), 'reading was paused for the rate at some point')
  t.same(reasonsSeen.slice(0, 5).map((reasons) => (reasons & Pause.Rate) !== 0), [false, false, false, false, true],
    'reading pauses at the 5th message of the first window')
  t.same(errors, [], 'no error')
  t.equal(terminated, false)
  t.equal(client.readyState, WebSocket.OPEN, 'the client is still connected')
  t.equal(app.wss.connections[0].status, 'Connected')
})

t.test("rateLimit { action: 'close' }: the 6th message in the window closes the connection with 1008, onError gets errCode 420, and the 6th message is not delivered", async (t) => {
  const received: number[] = []
  const errors: any[] = []
  const terminated = deferred<any>()
  const { base } = await start(t, {
    rateLimit: { max: 5, timeWindow: 10_000, action: 'close' },
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onMessage (_ws: Connection, e: { data: any }) { received.push(Number(e.data)) },
          onError (_ws: unknown, e: any) { errors.push(...e.errors) },
          onTerminate (_ws: unknown, e: any) { terminated.resolve(e) }
        }
      }
    }
  })
  const client = await connect(t, base)
  const clientClosed = closed(client)
  for (let i = 0; i < 10; i++) client.send(String(i))

  t.equal((await clientClosed).code, 1008, 'the client sees 1008')
  t.equal((await terminated.promise).code, 1008, 'onTerminate gets 1008')
  t.same(received, range(5), 'the first 5 are delivered, not the 6th nor any later')
  t.equal(errors.length, 1, 'one error')
  t.equal(errors[0].errCode, 420)
  t.equal(errors[0].componentSignature, 'fastify-wss')
})

t.test('logging (no onError): 50 invalid JSON messages give one warn line (errCode 300, no stack); the next one a second later logs suppressed: 49; a throw in onMessage is logged at error with its stack', async (t) => {
  const log = captureLog()
  const { base } = await start(t, {
    dataType: 'object',
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onMessage (ws: Connection, e: { data: any }) {
            if (e.data?.throw === true) throw new Error('handler failed')
            ws.send(e.data)
          }
        }
      }
    }
  }, { logger: { level: 'info', stream: log.stream } })
  const client = await connect(t, base)
  const invalid = (): LogLine[] => log.lines.filter((line) => line.errCode === 300)

  for (let i = 0; i < 50; i++) client.send(`{"bad":${i}`)
  client.send('{"marker":1}')
  t.same(await messages(client, 1), ['{"marker":1}'], 'the 50 were read before the marker')
  t.equal(invalid().length, 1, 'exactly one line for the 50')
  const [first] = invalid()
  t.equal(first.level, 40, 'at warn')
  t.equal(first.err, undefined, 'no err (and so no err.stack)')
  t.equal(first.stack, undefined, 'no stack')
  t.equal(first.suppressed, 0)

  await sleep(1100) // past the one-second window: waited for, not measured
  client.send('{"bad":')
  const next = await log.next((line) => line.errCode === 300 && line !== first)
  t.equal(next.level, 40)
  t.equal(next.suppressed, 49, 'it counts the 49 not logged')
  t.equal(next.err, undefined)
  t.equal(invalid().length, 2)

  client.send('{"throw":true}')
  const thrown = await log.next((line) => line.errCode === 201)
  t.equal(thrown.level, 50, 'a throw in onMessage is logged at error')
  t.match(thrown.err?.stack, /handler failed/, 'with its stack')
})

t.test('JSON under dataType object: __proto__ and constructor.prototype keys are refused by default (errCode 300), the connection stays open', async (t) => {
  const { client, received, errors } = await objectServer(t)
  client.send('{"__proto__":{"x":1}}')
  client.send('{"constructor":{"prototype":{"x":1}}}')
  client.send('{"end":true}')
  await messages(client, 1)
  t.same(errors.map((entry) => entry.errCode), [300, 300], 'each is invalid JSON')
  t.same(received, [{ end: true }], 'neither is delivered; the next message is')
  t.equal(({} as any).x, undefined, 'Object.prototype untouched')
})

t.test("JSON under dataType object: with Fastify's onProtoPoisoning 'remove' the message is delivered without the __proto__ key", async (t) => {
  const { client, received, errors } = await objectServer(t, {}, { onProtoPoisoning: 'remove' })
  client.send('{"a":1,"__proto__":{"x":1}}')
  client.send('{"end":true}')
  await messages(client, 1)
  t.same(errors, [])
  t.equal(received.length, 2)
  const [data] = received
  t.same(Object.keys(data), ['a'], 'only the other key is left')
  t.equal(Object.prototype.hasOwnProperty.call(data, '__proto__'), false)
  t.equal(Object.getPrototypeOf(data), Object.prototype, 'a plain object')
  t.equal(data.x, undefined, 'nothing inherited from the message')
})

t.test('JSON under dataType object: maxDepth 8 refuses 9 levels (errCode 300 naming maxDepth) and keeps the connection open; 8 levels pass; brackets inside strings do not count', async (t) => {
  const { client, received, errors } = await objectServer(t, { maxDepth: 8 })
  const nine = '['.repeat(9) + ']'.repeat(9)
  const eight = '['.repeat(8) + ']'.repeat(8)
  const mixed = '{"a":'.repeat(4) + '[[[[1]]]]' + '}'.repeat(4) // 4 objects and 4 arrays: 8 levels
  const inString = JSON.stringify({ a: '['.repeat(40) + '{'.repeat(40) })
  const escaped = JSON.stringify({ a: '"' + '['.repeat(40) }) // an escaped quote does not end the string
  client.send(nine)
  client.send(eight)
  client.send(mixed)
  client.send(inString)
  client.send(escaped)
  client.send('{"end":true}')
  await messages(client, 1)

  t.equal(errors.length, 1, 'only the 9-level message is refused')
  t.equal(errors[0].errCode, 300)
  t.match(errors[0].message, /maxDepth \(8\)/, 'the message names maxDepth')
  t.same(received, [JSON.parse(eight), JSON.parse(mixed), JSON.parse(inString), JSON.parse(escaped), { end: true }],
    'the others are delivered, in order')
  t.equal(client.readyState, WebSocket.OPEN, 'the connection stays open')
})

t.test('JSON under dataType object: 64 levels pass at the default maxDepth, 65 do not', async (t) => {
  const depths: number[] = []
  const errors: number[] = []
  const { base } = await start(t, {
    dataType: 'object',
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onMessage (ws: Connection, e: { data: any }) {
            if (e.data?.end === true) {
              ws.send('end')
              return
            }
            let depth = 0
            for (let value = e.data; Array.isArray(value); value = value[0]) depth++
            depths.push(depth)
          },
          onError (_ws: unknown, e: any) { errors.push(...e.errors.map((entry: any) => entry.errCode)) }
        }
      }
    }
  })
  const client = await connect(t, base)
  client.send('['.repeat(64) + ']'.repeat(64))
  client.send('['.repeat(65) + ']'.repeat(65))
  client.send('{"end":true}')
  await messages(client, 1)
  t.same(depths, [64], '64 levels are delivered')
  t.same(errors, [300], '65 levels are invalid JSON')
})

t.test("the binary flag under dataType 'blob': an echo answering in kind returns text as text and bytes as bytes, empty and UTF-8-valid bytes included", async (t) => {
  const { base } = await start(t, {
    dataType: 'blob',
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onMessage (ws: Connection, event: { data: any, binary: boolean }) {
            ws.send(event.binary ? event.data : event.data.toString())
          }
        }
      }
    }
  })
  const client = await connect(t, base)
  const sent: Array<{ data: string | Buffer, binary: boolean }> = [
    { data: 'text', binary: false },
    { data: Buffer.from([0, 1, 2, 255]), binary: true },
    { data: Buffer.alloc(0), binary: true },
    { data: Buffer.from('hello'), binary: true },
    { data: '', binary: false },
    { data: 'héllo ✓', binary: false }
  ]
  const received: Array<{ data: Buffer, binary: boolean }> = []
  const done = deferred()
  client.on('message', (data: Buffer, isBinary: boolean) => {
    received.push({ data, binary: isBinary })
    if (received.length === sent.length) done.resolve()
  })
  for (const message of sent) client.send(message.data, { binary: message.binary })
  await done.promise

  for (let i = 0; i < sent.length; i++) {
    const { data, binary } = sent[i]
    t.equal(received[i].binary, binary, `message ${i} (${binary ? 'binary' : 'text'}, ${Buffer.byteLength(data)} bytes) comes back ${binary ? 'binary' : 'text'}`)
    t.same(received[i].data, Buffer.from(data), `message ${i} comes back with the same bytes`)
  }
})

t.test("the binary flag under dataType 'text' and 'object': true for binary frames, false for text frames", async (t) => {
  for (const dataType of ['text', 'object'] as const) {
    const seen: Array<{ data: unknown, binary: boolean }> = []
    const { base } = await start(t, {
      dataType,
      heartbeat: false,
      handler: {
        onConnection () {
          return {
            onMessage (ws: Connection, event: { data: any, binary: boolean }) {
              seen.push({ data: event.data, binary: event.binary })
              if (seen.length === 2) ws.send('done')
            }
          }
        }
      }
    })
    const client = await connect(t, base)
    client.send('{"a":1}')
    client.send(Buffer.from('{"a":2}'), { binary: true })
    await messages(client, 1)
    const decoded = dataType === 'text' ? ['{"a":1}', '{"a":2}'] : [{ a: 1 }, { a: 2 }]
    t.same(seen, [{ data: decoded[0], binary: false }, { data: decoded[1], binary: true }], `under '${dataType}'`)
  }
})

t.test("ws's internals the read gate and the frame writer rely on are there, on server and client sockets", async (t) => {
  const { serverSocket, client } = await wsPair(t)

  t.equal(gateSupported(serverSocket), true, "gateSupported: a server socket's Receiver has startLoop and _loop")
  t.equal(senderSupported(serverSocket), true, "senderSupported: a server socket's Sender has sendFrame and an idle _state")
  t.equal(gateSupported(client), true, 'the same on a client socket')
  t.equal(senderSupported(client), true)

  // and the plugin's connections get the gate: reading stops at the bound, with ws's own parser
  const gate = deferred()
  const opened = deferred<Connection>()
  const { base } = await start(t, {
    maxPendingMessages: 2,
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onOpen (ws: Connection) { opened.resolve(ws) },
          async onMessage () { await gate.promise }
        }
      }
    }
  })
  const other = await connect(t, base)
  const connection = await opened.promise
  for (let i = 0; i < 10; i++) other.send(`m${i}`)
  await until(() => connection._inbound.paused, 'reading pauses')
  await sleep(20)
  t.equal(connection._inbound.length, 2, 'the gate held the rest of the read unparsed')
  gate.resolve()
})

t.test('Inbound without a ws Receiver (no gate): pauses and resumes the socket alone, once per change of state, reasons kept apart', async (t) => {
  const calls: string[] = []
  const stub = { pause () { calls.push('pause') }, resume () { calls.push('resume') } }
  t.equal(gateSupported(stub as unknown as WebSocket), false)
  const inbound = new Inbound(stub as unknown as WebSocket, 2, 100)
  // shift() takes a message; relieve(), once the messages taken are delivered, clears the queue reason at half
  const taken = (): Buffer => {
    const data = inbound.shift()
    inbound.relieve()
    return data
  }

  inbound.push(Buffer.from('a'), false)
  t.same(calls, [], 'under both bounds')
  inbound.push(Buffer.from('bc'), true)
  t.same(calls, ['pause'], 'paused at maxMessages')
  t.same({ length: inbound.length, bytes: inbound.bytes, reasons: inbound.reasons }, { length: 2, bytes: 3, reasons: Pause.Queue })

  inbound.pause(Pause.Rate)
  t.same(calls, ['pause'], 'a second reason does not pause again')
  t.equal(inbound.nextBinary, false)
  t.same(taken(), Buffer.from('a'))
  t.equal(inbound.reasons, Pause.Rate, 'the queue reason is cleared at half')
  t.same(calls, ['pause'], 'still paused for the rate')
  inbound.resume(Pause.Rate)
  t.same(calls, ['pause', 'resume'], 'resumed once no reason is left')
  inbound.resume(Pause.Rate)
  t.same(calls, ['pause', 'resume'], 'resuming a reason not set does nothing')

  t.equal(inbound.nextBinary, true)
  t.same(taken(), Buffer.from('bc'))
  t.same({ length: inbound.length, bytes: inbound.bytes }, { length: 0, bytes: 0 })

  inbound.push(Buffer.alloc(100), true)
  t.same(calls, ['pause', 'resume', 'pause'], 'paused at maxBytes')
  t.equal(inbound.clear(), 1)
  t.same({ length: inbound.length, bytes: inbound.bytes }, { length: 0, bytes: 0 })
})

t.test('Inbound: shift() does not resume reading (a message parsed then would overtake the one taken); relieve() does, once both bounds are back under half', async (t) => {
  const calls: string[] = []
  const stub = { pause () { calls.push('pause') }, resume () { calls.push('resume') } }
  const inbound = new Inbound(stub as unknown as WebSocket, 4, 1000)
  for (const text of ['a', 'b', 'c', 'd']) inbound.push(Buffer.from(text), false)
  t.same(calls, ['pause'])
  inbound.shift()
  inbound.shift()
  t.same(calls, ['pause'], 'at half, shift() alone leaves reading paused')
  t.equal(inbound.reasons, Pause.Queue)
  inbound.relieve()
  t.same(calls, ['pause', 'resume'], 'relieve() resumes')
  t.equal(inbound.reasons, 0)

  inbound.push(Buffer.alloc(998), true)
  t.same({ length: inbound.length, bytes: inbound.bytes }, { length: 3, bytes: 1000 })
  t.same(calls, ['pause', 'resume', 'pause'], 'paused at maxBytes')
  inbound.shift()
  inbound.shift()
  inbound.relieve()
  t.same(calls, ['pause', 'resume', 'pause'], 'bytes over half: still paused')
  inbound.shift()
  inbound.relieve()
  t.same(calls, ['pause', 'resume', 'pause', 'resume'], 'both under half: resumed')
})

t.test('Outbound without a ws Sender: sendFrame falls back to socket.send with the payload, { binary, compress: false }', async (t) => {
  const sent: Array<{ data: unknown, options: unknown }> = []
  const stub = {
    bufferedAmount: 0,
    send (data: unknown, options: unknown) { sent.push({ data, options }) }
  }
  t.equal(senderSupported(stub as unknown as WebSocket), false)
  const tcp = new PassThrough()
  const outbound = new Outbound(stub as unknown as WebSocket, tcp)

  const binary = serverFrame(Buffer.from([1, 2, 3]))
  const text = serverFrame('hi')
  outbound.sendFrame(binary)
  outbound.sendFrame(text)
  t.same(sent, [
    { data: Buffer.from([1, 2, 3]), options: { binary: true, compress: false } },
    { data: Buffer.from('hi'), options: { binary: false, compress: false } }
  ])
  t.equal(sent[0].data, binary.payload, 'the payload itself, not a copy')
  t.equal(tcp.writableCorked, 1, 'the TCP socket is corked for the tick')
  await new Promise((resolve) => process.nextTick(resolve))
  t.equal(tcp.writableCorked, 0, 'and uncorked at its end')
})

t.test('Outbound with a ws Sender that is busy: sendFrame queues the payload through socket.send instead of writing the frame', async (t) => {
  const sent: unknown[] = []
  const frames: unknown[] = []
  const sender = { _state: 0, sendFrame (list: Buffer[]) { frames.push(list) } }
  const stub = {
    bufferedAmount: 0,
    _sender: sender,
    send (data: unknown, options: unknown) { sent.push({ data, options }) }
  }
  t.equal(senderSupported(stub as unknown as WebSocket), true)
  const outbound = new Outbound(stub as unknown as WebSocket, new PassThrough())
  const framed = serverFrame('one')
  outbound.sendFrame(framed)
  t.same(frames, [framed.list], 'idle: the ready frame is written')
  sender._state = 1
  outbound.sendFrame(serverFrame('two'))
  t.same(frames, [framed.list])
  t.same(sent, [{ data: Buffer.from('two'), options: { binary: false, compress: false } }], 'busy: behind what the sender holds')
})

t.test('a client that sends more than its share of a turn of the event loop waits for the next turn, while another client is answered between its batches; nothing is lost or reordered', async (t) => {
  const count = 1000
  const order: string[] = []
  let turns = 0
  const opened = deferred<WebSocketConnection<any>>()
  const { base } = await start(t, {
    path: '/fair',
    handler: {
      onConnection (_wss, { request }) {
        const flooding = request.query.flood === '1'
        return {
          onOpen (ws) { if (flooding) opened.resolve(ws) },
          onMessage (ws, event) {
            if (flooding) order.push(String(event.data))
            else ws.send(`pong at ${order.length}`)
          }
        }
      }
    }
  })
  const other = await connect(t, `${base}/fair`)
  const client = await rawConnect(t, `${base}/fair?flood=1`)
  const flooder = await opened.promise
  const inbound = flooder._inbound
  const pause = inbound.pause
  inbound.pause = function (reason: number) {
    if ((reason & Pause.Turn) !== 0) turns++
    pause.call(this, reason)
  }
  const expected = Array.from({ length: count }, (_, i) => `m${i}`)
  client.socket.write(textFrames(count, (i) => expected[i]))
  other.send('ping') // answered between two batches of the flood
  const [pong] = await messages(other, 1)
  await until(() => order.length === count, 'every message delivered')
  t.ok(turns >= count / 64 - 1, `the flood was read in turns (${turns} yields)`)
  t.ok(Number(pong.split(' ')[2]) < count, `the other client was answered before the flood was all read (${pong})`)
  t.same(order, expected, 'every message once, in order')
  t.equal(inbound.reasons, 0, 'reading is no longer paused')
})

t.test('Inbound: a long queue is compacted as it is taken, and keeps its order', async (t) => {
  const socket = { pause () {}, resume () {} } as unknown as WebSocket
  const inbound = new Inbound(socket, 10_000, 1 << 30)
  for (let i = 0; i < 3000; i++) inbound.push(Buffer.from(String(i)), i % 2 === 0)
  const taken: string[] = []
  for (let i = 0; i < 2500; i++) {
    t.equal(inbound.nextBinary, i % 2 === 0)
    taken.push(String(inbound.shift()))
    if (i === 1500) inbound.push(Buffer.from('late'), false)
  }
  t.same(taken, Array.from({ length: 2500 }, (_, i) => String(i)), 'in order across compactions')
  t.equal(inbound.length, 501)
  const rest: string[] = []
  while (inbound.length !== 0) rest.push(String(inbound.shift()))
  t.equal(rest.at(-1), 'late')
  t.equal(inbound.bytes, 0)
})

t.test('Inbound on a real ws socket: while paused the parser holds what it is given; once discarded (the TCP socket closed), it takes the rest without parsing it, so ws can finish', async (t) => {
  const { serverSocket } = await wsPair(t)
  const messages: string[] = []
  serverSocket.on('message', (data) => messages.push(String(data)))
  const inbound = new Inbound(serverSocket, 10, 1 << 20)
  inbound.pause(Pause.Queue)
  const receiver = (serverSocket as any)._receiver
  const written: string[] = []
  receiver.write(textFrames(1, () => 'held'), () => written.push('first'))
  await sleep(10)
  t.same(written, [], 'paused: the parser holds the write, unparsed')
  inbound.discard()
  receiver.write(textFrames(1, () => 'dropped'), () => written.push('second'))
  await sleep(10)
  t.same(written, ['first', 'second'], 'discarded: both writes complete')
  t.same(messages, [], 'and nothing was parsed')
})

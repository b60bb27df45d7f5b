import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import type WebSocket from 'ws'
import type { WebSocketConnection } from '../lib/index.js'
import { Pause } from '../lib/inbound.js'
import { closed, connect, deferred, refusal, start } from './helpers/index.js'
import { Opcode, rawConnect } from './helpers/frames.js'
import { fragmented, preparedUpgrade, textFrames, watchQueue } from './helpers/flood.js'
import { until } from './helpers/until.js'

type Connection = WebSocketConnection<any>

/** Stops a `ws` client from reading its socket, so the server's writes pile up. */
function pauseReading (client: WebSocket): void {
  (client as any)._socket.pause()
}

function resumeReading (client: WebSocket): void {
  (client as any)._socket.resume()
}

/** A numbered message of exactly `size` bytes: `i:` then padding. */
function numbered (i: number, size: number, fill = 'x'): string {
  const head = `${i}:`
  return head + fill.repeat(size - head.length)
}

function indexOf (text: string): number {
  return Number(text.slice(0, text.indexOf(':')))
}

function range (count: number): number[] {
  return Array.from({ length: count }, (_, i) => i)
}

/**
 * A server whose connections hold each message in onMessage until `gate`
 * opens, then hand it to `take`: what arrives meanwhile queues.
 */
async function gatedServer (t: Test, gate: { promise: Promise<void> }, options: Record<string, unknown>, take: (data: any) => void): Promise<{ base: string, opened: Promise<Connection> }> {
  const opened = deferred<Connection>()
  const { base } = await start(t, {
    ...options,
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onOpen (ws: Connection) { opened.resolve(ws) },
          async onMessage (_ws: Connection, e: { data: unknown }) {
            await gate.promise
            take(e.data)
          }
        }
      }
    }
  })
  return { base, opened: opened.promise }
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

t.test('maxPendingBytes: reading pauses when the queued bytes reach the bound, the queue never holds more than maxPendingBytes plus one message, and every message then arrives once, in order', async (t) => {
  const size = 16 * 1024
  const maxPendingBytes = 64 * 1024
  const count = 100
  const gate = deferred()
  const received: number[] = []
  const { base, opened } = await gatedServer(t, gate, { maxPendingBytes }, (data) => { received.push(indexOf(data)) })
  const client = await connect(t, base)
  const connection = await opened
  const watch = watchQueue(connection._inbound)
  for (let i = 0; i < count; i++) client.send(numbered(i, size))

  await until(() => (connection._inbound.reasons & Pause.Queue) !== 0, 'reading pauses for the queue')
  t.ok(connection._inbound.bytes >= maxPendingBytes, `paused with ${connection._inbound.bytes} bytes queued`)
  t.ok(connection._inbound.length < 100, 'paused by bytes, well under maxPendingMessages (100)')
  // what the socket had already read is there to be parsed: give it every chance
  await sleep(50)
  t.ok(watch.maxBytes <= maxPendingBytes + size, `the queue never held more than maxPendingBytes + one message (${watch.maxBytes} <= ${maxPendingBytes + size})`)
  t.ok(watch.pushes < count - 1, `most messages were left unread (${watch.pushes} queued of ${count})`)
  t.equal(received.length, 0, 'nothing got past the gate')

  gate.resolve()
  await until(() => received.length === count, `all ${count} messages are delivered`)
  t.same(received, range(count), 'every message once, in order')
  t.ok(watch.maxBytes <= maxPendingBytes + size, `still bounded while draining (${watch.maxBytes})`)
  t.same({ length: connection._inbound.length, bytes: connection._inbound.bytes, reasons: connection._inbound.reasons }, { length: 0, bytes: 0, reasons: 0 })
})

t.test('5,000 one-byte frames in one TCP write: the queue never holds more than maxPendingMessages, and all 5,000 are delivered in order once released', async (t) => {
  const count = 5000
  const maxPendingMessages = 10
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
  const expected = range(count).map((i) => alphabet[i % alphabet.length])
  const gate = deferred()
  const received: string[] = []
  const { base, opened } = await gatedServer(t, gate, { maxPendingMessages }, (data) => { received.push(data) })
  const client = await rawConnect(t, base)
  const connection = await opened
  const watch = watchQueue(connection._inbound)
  const bytes = textFrames(count, (i) => expected[i])
  t.ok(bytes.length < 64 * 1024, `all frames fit in one read (${bytes.length} bytes)`)
  client.socket.write(bytes)

  await until(() => connection._inbound.paused, 'reading pauses')
  await sleep(50)
  t.equal(watch.maxLength, maxPendingMessages, 'the queue reached maxPendingMessages and never went past it')
  t.equal(watch.pushes, maxPendingMessages, "the read gate stopped ws's parser: no frame past the bound was parsed")
  t.equal(received.length, 0)

  gate.resolve()
  await until(() => received.length === count, `all ${count} messages are delivered`, 2000)
  t.equal(received.join(''), expected.join(''), 'in order, each once')
  t.ok(watch.maxLength <= maxPendingMessages, `bounded while draining too (${watch.maxLength})`)
})

t.test('a message sent as many continuation fragments counts as one message of its full size', async (t) => {
  const fragmentSize = 1024
  const parts = 48
  const size = fragmentSize * parts
  const gate = deferred()
  const received: string[] = []
  const { base, opened } = await gatedServer(t, gate, { maxPendingMessages: 3, maxPendingBytes: 64 * 1024 }, (data) => { received.push(data) })
  const client = await rawConnect(t, base)
  const connection = await opened
  const watch = watchQueue(connection._inbound)
  client.send({ opcode: Opcode.Text, payload: 'first' }) // delivered at once, held by the gate
  const one = numbered(1, size, 'y')
  const two = numbered(2, size, 'z')
  client.send(fragmented(Buffer.from(one), parts))

  await until(() => watch.pushes === 1, 'the fragmented message is queued')
  t.same({ length: connection._inbound.length, bytes: connection._inbound.bytes }, { length: 1, bytes: size },
    `${parts} fragments are one queued message of ${size} bytes`)
  t.equal(connection._inbound.paused, false, 'not paused: 1 message of 3, 48 KiB of 64 KiB')

  client.send(fragmented(Buffer.from(two), parts))
  await until(() => connection._inbound.paused, 'a second one reaches maxPendingBytes')
  t.same({ length: connection._inbound.length, bytes: connection._inbound.bytes, reasons: connection._inbound.reasons },
    { length: 2, bytes: 2 * size, reasons: Pause.Queue }, 'paused by bytes, with 2 messages queued')

  gate.resolve()
  await until(() => received.length === 3, 'the three messages are delivered')
  t.same(received.map((text) => text.length), [5, size, size])
  t.ok(received[1] === one && received[2] === two, 'each reassembled whole, in order')
})

t.test('perMessageDeflate: small compressed frames that each inflate to near maxPayload keep the queue under maxPendingBytes + maxPayload, and all are delivered after release', async (t) => {
  const maxPayload = 256 * 1024
  const maxPendingBytes = 512 * 1024
  const size = 250 * 1024
  const count = 50
  const gate = deferred()
  const received: number[] = []
  let sizes = true
  const { base, opened } = await gatedServer(t, gate, { perMessageDeflate: true, maxPayload, maxPendingBytes }, (data) => { if (data.length !== size) sizes = false; received.push(indexOf(data)) })
  const client = await connect(t, base, { perMessageDeflate: true })
  t.match(client.extensions, /permessage-deflate/)
  const connection = await opened
  const watch = watchQueue(connection._inbound)
  let wire = 0
  const raw = (client as any)._socket
  const write = raw.write
  raw.write = function (...args: any[]) {
    wire += typeof args[0] === 'string' ? Buffer.byteLength(args[0]) : args[0].length
    return write.apply(this, args)
  }
  const sent = range(count).map((i) => new Promise<void>((resolve) => client.send(numbered(i, size, 'a'), () => resolve())))
  await Promise.all(sent)
  t.ok(wire < 64 * 1024, `the client wrote ${wire} bytes for ${count * size} bytes of messages`)

  await until(() => (connection._inbound.reasons & Pause.Queue) !== 0, 'reading pauses for the queue')
  await sleep(50)
  t.ok(watch.maxBytes <= maxPendingBytes + maxPayload, `queued bytes (inflated) never exceeded maxPendingBytes + maxPayload (${watch.maxBytes} <= ${maxPendingBytes + maxPayload})`)
  t.ok(watch.pushes < count - 1, `most frames were left uninflated (${watch.pushes} queued of ${count})`)

  gate.resolve()
  await until(() => received.length === count, `all ${count} messages are delivered`)
  t.same(received, range(count), 'in order, each once')
  t.ok(sizes, `each inflated to its full ${size} bytes`)
  t.ok(watch.maxBytes <= maxPendingBytes + maxPayload, `bounded while draining too (${watch.maxBytes})`)
})

t.test('a closed connection keeps its slot of maxConnections while its queue is delivered: upgrades get 503 until it is, then succeed', async (t) => {
  const gate = deferred()
  const received: string[] = []
  const terminated = deferred<any>()
  const { app, base } = await start(t, {
    maxConnections: 1,
    heartbeat: false,
    handler: {
      onConnection (_wss: unknown, event: any) {
        if (event.request.query.later !== undefined) return { onMessage () {} }
        return {
          async onMessage (_ws: Connection, e: { data: any }) {
            await gate.promise
            received.push(e.data)
          },
          onTerminate (_ws: unknown, e: any) { terminated.resolve(e) }
        }
      }
    }
  })
  const client = await connect(t, base)
  const [connection] = app.wss.connections
  for (let i = 0; i < 10; i++) client.send(`m${i}`)
  await until(() => connection._inbound.length === 9, 'nine messages wait behind the first')
  client.close()
  await closed(client)
  await until(() => app.wss.connections.length === 0, 'the server sees the close')
  t.equal(connection.status, 'Closed')
  t.equal(connection._inbound.length, 9, 'the queue is still there')

  const refused = await refusal(`${base}/?later`)
  t.equal(refused.status, 503, 'a new upgrade gets 503 while the closed connection has a queue')
  t.match(JSON.parse(refused.body), { code: 'FST_WSS_UNAVAILABLE', message: /maxConnections/ })

  gate.resolve()
  await terminated.promise
  t.same(received, range(10).map((i) => `m${i}`), 'the queue was delivered, in order')
  const later = await connect(t, `${base}/?later`)
  t.equal(later.readyState, later.OPEN, 'a new upgrade succeeds once the queue is delivered')
})

t.test('a closed connection whose queue is not delivered within closeTimeout: the queue is dropped, reported once (errCode 421, with the count), the slot is freed, and onTerminate runs once, last', async (t) => {
  const gate = deferred()
  const received: string[] = []
  const events: string[] = []
  const errors: any[] = []
  const dropped = deferred()
  let terminations = 0
  const terminated = deferred()
  const { app, base } = await start(t, {
    maxConnections: 1,
    closeTimeout: 200,
    heartbeat: false,
    handler: {
      onConnection (_wss: unknown, event: any) {
        if (event.request.query.later !== undefined) return { onMessage () {} }
        return {
          async onMessage (_ws: Connection, e: { data: any }) {
            await gate.promise
            received.push(e.data)
          },
          onError (_ws: unknown, e: any) {
            events.push('error')
            errors.push(...e.errors)
            dropped.resolve()
          },
          onTerminate () {
            events.push('terminate')
            terminations++
            terminated.resolve()
          }
        }
      }
    }
  })
  const client = await connect(t, base)
  const [connection] = app.wss.connections
  for (let i = 0; i < 10; i++) client.send(`m${i}`)
  await until(() => connection._inbound.length === 9, 'nine messages wait behind the first')
  client.close()
  await closed(client)

  await dropped.promise
  t.equal(errors.length, 1)
  t.equal(errors[0].errCode, 421)
  t.match(errors[0].message, /\b9 messages\b/, 'the message names the count')
  t.equal(connection._inbound.length, 0, 'the queue is empty')
  t.equal(terminations, 0, 'onTerminate waits for the pending onMessage')

  const later = await connect(t, `${base}/?later`)
  t.equal(later.readyState, later.OPEN, 'the slot is free again: a new upgrade succeeds')

  gate.resolve()
  await terminated.promise
  await sleep(20)
  t.same(events, ['error', 'terminate'], 'reported once, then onTerminate once, last')
  t.same(received, ['m0'], 'only the message already in onMessage was delivered')
})

t.test('a client that stops reading: above half of maxBackpressure the server stops reading it, and reads again (onDrain runs) once the client reads', async (t) => {
  const maxBackpressure = 1024 * 1024
  const reply = 'r'.repeat(64 * 1024)
  let handled = 0
  let drains = 0
  const { app, base } = await start(t, {
    maxBackpressure,
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onMessage (ws: Connection) {
            handled++
            ws.send(reply)
          },
          onDrain () { drains++ }
        }
      }
    }
  })
  const client = await connect(t, base)
  const [connection] = app.wss.connections
  let replies = 0
  client.on('message', () => { replies++ })
  pauseReading(client)

  // The kernel absorbs some MiB of a paused socket first, and each time it takes
  // more, 'drain' resumes reading: send until the pause lasts (no drain comes).
  let sent = 0
  const outboundPaused = (): boolean => (connection._inbound.reasons & Pause.Outbound) !== 0
  while (sent < 4000) {
    if (outboundPaused()) {
      const seen = drains
      await sleep(50)
      if (outboundPaused() && drains === seen) break
      continue
    }
    for (let i = 0; i < 20; i++, sent++) client.send(`q${sent}`)
    await sleep(5)
  }
  t.ok(outboundPaused(), 'the server stops reading the client')
  t.ok(connection.bufferedAmount > maxBackpressure / 2, `bufferedAmount ${connection.bufferedAmount} > ${maxBackpressure / 2}`)
  t.equal(connection.status, 'Connected', 'not dropped: under maxBackpressure')
  const drainsBefore = drains

  const before = handled
  for (let i = 0; i < 10; i++, sent++) client.send(`q${sent}`)
  await sleep(50)
  t.equal(handled, before, 'no message is read while paused')
  t.ok(connection.bufferedAmount <= maxBackpressure, 'the server produced no more than maxBackpressure for it')

  resumeReading(client)
  await until(() => drains > drainsBefore, 'onDrain runs')
  await until(() => replies === sent, `every one of the ${sent} messages gets its reply`, 2000)
  t.equal(handled, sent)
  t.equal(connection._inbound.reasons & Pause.Outbound, 0, 'reading resumed')
  t.equal(connection.status, 'Connected')
})

t.test('maxBufferedBytes: past it a new upgrade gets 503, the connection holding the most is paused then dropped with 1008 (errCode 422), and the others keep working', async (t) => {
  const size = 16 * 1024
  const gates: Record<string, { promise: Promise<void>, resolve: () => void }> = { a: deferred(), b: deferred(), c: deferred() }
  const received: Record<string, number[]> = { a: [], b: [], c: [] }
  const errors: Record<string, number[]> = { a: [], b: [], c: [] }
  const connections: Record<string, Connection> = {}
  const { base } = await start(t, {
    maxBufferedBytes: 512 * 1024,
    closeTimeout: 200,
    heartbeat: false,
    handler: {
      onConnection (_wss: unknown, event: any) {
        const name = event.request.query.name as string
        if (gates[name] === undefined) return { onMessage () {} }
        return {
          onOpen (ws: Connection) { connections[name] = ws },
          async onMessage (_ws: Connection, e: { data: any }) {
            await gates[name].promise
            received[name].push(indexOf(e.data))
          },
          onError (_ws: unknown, e: any) { errors[name].push(...e.errors.map((entry: any) => entry.errCode)) }
        }
      }
    }
  })
  const a = await connect(t, `${base}/?name=a`)
  const b = await connect(t, `${base}/?name=b`)
  const c = await connect(t, `${base}/?name=c`)
  const upgrade = await preparedUpgrade(t, `${base}/?name=late`)
  for (let i = 0; i < 3; i++) b.send(numbered(i, size))
  for (let i = 0; i < 3; i++) c.send(numbered(i, size))
  await until(() => connections.b?._inbound.length === 2 && connections.c?._inbound.length === 2, 'b and c each queue two messages')

  const aClosed = closed(a)
  for (let i = 0; i < 64; i++) a.send(numbered(i, size))
  await until(() => ((connections.a?._inbound.reasons ?? 0) & Pause.Server) !== 0, 'the server pauses a')
  const refused = await upgrade.finish()
  t.equal(refused.status, 503, 'a new upgrade gets 503 while the server holds more than maxBufferedBytes')
  t.match(JSON.parse(refused.body), { code: 'FST_WSS_UNAVAILABLE', message: /maxBufferedBytes/ })

  const { code } = await aClosed
  t.equal(code, 1008, 'a, holding the most, is dropped with 1008')
  t.same(errors.a, [422], 'errCode 422 is reported once')
  t.same(received.a, [])
  t.same(errors.b, [])
  t.same(errors.c, [])

  gates.b.resolve()
  gates.c.resolve()
  await until(() => received.b.length === 3 && received.c.length === 3, 'b and c get their messages')
  t.same(received.b, [0, 1, 2])
  t.same(received.c, [0, 1, 2])
  b.send(numbered(3, size))
  c.send(numbered(3, size))
  await until(() => received.b.length === 4 && received.c.length === 4, 'and more after')
  t.same([connections.b.status, connections.c.status], ['Connected', 'Connected'])
  const late = await connect(t, `${base}/?name=late`)
  t.equal(late.readyState, late.OPEN, 'upgrades are accepted again')
  gates.a.resolve()
})

/**
 * Frames written in one TCP read to a gated async onMessage under `options`:
 * checks that they are delivered in order and one at a time once the gate opens.
 */
async function orderedAcrossResume (t: Test, options: Record<string, number>, frames: Buffer): Promise<void> {
  const count = 12
  const order: number[] = []
  let running = 0
  let overlapped = false
  const gate = deferred()
  const opened = deferred<Connection>()
  const { base } = await start(t, {
    ...options,
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onOpen (ws: Connection) { opened.resolve(ws) },
          async onMessage (_ws: Connection, e: { data: any }) {
            order.push(indexOf(e.data))
            if (++running > 1) overlapped = true
            await gate.promise
            running--
          }
        }
      }
    }
  })
  const client = await rawConnect(t, base)
  const connection = await opened.promise
  client.socket.write(frames)
  await until(() => connection._inbound.paused, 'reading pauses')
  gate.resolve()
  await until(() => order.length === count, 'all delivered')
  t.same(order, range(count), 'in order')
  t.equal(overlapped, false, 'one at a time')
}

t.test('messages larger than half of maxPendingBytes, read together: the message parsed when reading resumes waits for the ones queued before it (order, one at a time)', async (t) => {
  // Reading resumes only once the queue is empty (each message is over half
  // the bound); the frames of the same TCP read are then parsed at once.
  await orderedAcrossResume(t, { maxPendingBytes: 1024 }, textFrames(12, (i) => numbered(i, 600)))
})

t.test('maxPendingMessages: 1, frames read together: each message waits for the one before it (order, one at a time)', async (t) => {
  await orderedAcrossResume(t, { maxPendingMessages: 1 }, textFrames(12, (i) => `${i}:`))
})

t.test('maxBufferedBytes with a closed connection holding the most: a live connection paused for the server budget is not dropped, and reads again once the closed queue is dropped', async (t) => {
  const size = 16 * 1024
  const xGate = deferred()
  const zGate = deferred()
  const zReceived: number[] = []
  const errors: Record<string, number[]> = { x: [], z: [] }
  const connections: Record<string, Connection> = {}
  const { app, base } = await start(t, {
    maxBufferedBytes: 512 * 1024,
    closeTimeout: 300,
    heartbeat: false,
    handler: {
      onConnection (_wss: unknown, event: any) {
        const name = event.request.query.name as 'x' | 'z'
        return {
          onOpen (ws: Connection) { connections[name] = ws },
          async onMessage (_ws: Connection, e: { data: any }) {
            if (name === 'x') {
              await xGate.promise
              return
            }
            await zGate.promise
            zReceived.push(indexOf(e.data))
          },
          onError (_ws: unknown, e: any) { errors[name].push(...e.errors.map((entry: any) => entry.errCode)) }
        }
      }
    }
  })
  t.teardown(() => xGate.resolve())
  // x queues 25 messages (400 KiB, under the budget), then closes: its queue keeps its bytes
  const x = await connect(t, `${base}/?name=x`)
  const z = await connect(t, `${base}/?name=z`)
  await until(() => connections.x !== undefined && connections.z !== undefined, 'both are open')
  for (let i = 0; i < 26; i++) x.send(numbered(i, size))
  await until(() => connections.x._inbound.length === 25, 'x queues 25 messages')
  x.close()
  await closed(x)
  await until(() => app.wss.connections.length === 1, 'the server sees x close')
  t.equal(connections.x._holding, 25 * size, 'the closed x still holds its queue')

  // z's queue takes the server past maxBufferedBytes: z is paused; its handler then drains its queue
  const inbound = connections.z._inbound
  const pause = inbound.pause
  let pressed = false
  inbound.pause = function (reason: number): void {
    pause.call(this, reason)
    if ((reason & Pause.Server) !== 0) {
      pressed = true
      zGate.resolve()
    }
  }
  for (let i = 0; i < 9; i++) z.send(numbered(i, size))
  await until(() => pressed, 'the server pauses z for its budget')
  await until(() => errors.x.length !== 0, "x's queue is dropped, closeTimeout after its close")

  z.send(numbered(9, size))
  await until(() => zReceived.length === 10, 'z reads again', 200).catch((err: Error) => t.fail(err.message))
  t.same(errors.z, [], 'z, holding less than x, is not dropped')
  t.equal(connections.z.status, 'Connected')
  t.equal(inbound.reasons & Pause.Server, 0, 'z is no longer paused for the server budget')
  t.same(zReceived, range(zReceived.length), 'z gets its messages in order')
})

t.test('maxBufferedBytes: a connection paused for the server budget reads again once it holds nothing and the server is back under the bound, though slow readers keep the server above half of it', async (t) => {
  const size = 16 * 1024
  const maxBufferedBytes = 512 * 1024
  const slowTarget = 400 * 1024
  const filled = deferred<number>()
  const xGate = deferred()
  const xReceived: number[] = []
  const errors: Record<string, number[]> = { s: [], x: [] }
  const connections: Record<string, Connection> = {}
  const { base } = await start(t, {
    maxBufferedBytes,
    closeTimeout: 200,
    heartbeat: false,
    handler: {
      onConnection (_wss: unknown, event: any) {
        const name = event.request.query.name as 's' | 'x'
        return {
          onOpen (ws: Connection) { connections[name] = ws },
          async onMessage (ws: Connection, e: { data: any }) {
            if (name === 's') {
              // one message per tick: bufferedAmount grows only once the kernel's buffers are full
              const chunk = 's'.repeat(size)
              for (let i = 0; i < 4096 && ws.bufferedAmount < slowTarget; i++) {
                ws.send(chunk)
                await new Promise((resolve) => setImmediate(resolve))
              }
              filled.resolve(ws.bufferedAmount)
              return
            }
            await xGate.promise
            xReceived.push(indexOf(e.data))
          },
          onError (_ws: unknown, e: any) { errors[name].push(...e.errors.map((entry: any) => entry.errCode)) }
        }
      }
    }
  })
  // s reads nothing: the server holds its outbound bytes, more than half of maxBufferedBytes, under it
  const s = await connect(t, `${base}/?name=s`)
  const x = await connect(t, `${base}/?name=x`)
  await until(() => connections.s !== undefined && connections.x !== undefined, 'both are open')
  pauseReading(s)
  s.send('fill')
  const buffered = await filled.promise
  t.ok(buffered >= slowTarget && buffered < maxBufferedBytes, `s holds ${buffered} unread bytes`)

  // x's queue takes the server past maxBufferedBytes: x is paused; its handler then drains its queue
  const inbound = connections.x._inbound
  const pause = inbound.pause
  let pressed = false
  inbound.pause = function (reason: number): void {
    pause.call(this, reason)
    if ((reason & Pause.Server) !== 0) {
      pressed = true
      xGate.resolve()
    }
  }
  for (let i = 0; i < 10; i++) x.send(numbered(i, size))
  await until(() => pressed, 'the server pauses x for its budget')
  await until(() => connections.x._holding === 0 && xReceived.length !== 0, "x's queue is delivered: x holds nothing")
  t.ok(xReceived.length < 10, `x was paused before all its messages were read (${xReceived.length} of 10 delivered)`)
  t.ok(connections.s._holding > maxBufferedBytes / 2 && connections.s._holding <= maxBufferedBytes,
    `the server holds ${connections.s._holding} bytes for s: over half of maxBufferedBytes, under it`)

  x.send(numbered(10, size))
  await until(() => xReceived.length === 11, 'x reads again', 200).catch((err: Error) => t.fail(err.message))
  t.equal(inbound.reasons & Pause.Server, 0, 'x is no longer paused for the server budget')
  t.same(errors, { s: [], x: [] }, 'nobody is dropped: the server is under maxBufferedBytes')
  t.same(xReceived, range(xReceived.length))
  resumeReading(s)
})

t.test('perMessageDeflate: a connection dropped past maxBackpressure while ws still compresses its messages stops counting against maxBufferedBytes once closed: new upgrades are accepted, and no onDrain comes after onTerminate', async (t) => {
  const events: string[] = []
  const terminated = deferred()
  const { app, base } = await start(t, {
    perMessageDeflate: true,
    maxBackpressure: 1024 * 1024,
    maxBufferedBytes: 1024 * 1024,
    closeTimeout: 200,
    heartbeat: false,
    handler: {
      onConnection (_wss: unknown, event: any) {
        if (event.request.query.later !== undefined) return { onMessage () {} }
        return {
          onMessage (ws: Connection) {
            // sent in one tick: while ws compresses the first, the others wait in its sender, not in the TCP socket
            const results: boolean[] = []
            for (let i = 0; i < 4; i++) results.push(ws.send(randomBytes(400 * 1024)))
            events.push(`sent ${results.join(',')}`)
          },
          onDrain () { events.push('drain') },
          onTerminate (_ws: unknown, e: any) {
            events.push(`terminate ${e.code}`)
            terminated.resolve()
          }
        }
      }
    }
  })
  const client = await connect(t, base, { perMessageDeflate: true })
  t.match(client.extensions, /permessage-deflate/)
  client.send('go')
  await terminated.promise
  t.match(events[0], /^sent true,true,(true,)?false/, 'dropped past maxBackpressure (1 MiB) by the 3rd or 4th send of 400 KiB')
  t.equal(events[1], 'terminate 1006')
  t.equal(app.wss.connections.length, 0)

  await sleep(150) // several of ws's and the plugin's checks: waited for, not measured
  const later = await connect(t, `${base}/?later`).then(() => 'open', (err: Error) => err.message)
  t.equal(later, 'open', 'the closed connection holds nothing against maxBufferedBytes: a new upgrade succeeds')
  t.same(events.slice(1), ['terminate 1006'], 'onTerminate is the last callback: no onDrain after it')
})

t.test('the heartbeat destroys a client that reads nothing, though reading it is paused for its outbound buffer (the pause is its own doing)', async (t) => {
  const terminated = deferred<any>()
  const { app, base } = await start(t, {
    heartbeat: { interval: 200 },
    maxBackpressure: 1024 * 1024,
    closeTimeout: 200,
    handler: {
      onConnection () {
        return {
          onMessage (ws: Connection) { ws.send('r'.repeat(64 * 1024)) },
          onTerminate (_ws: unknown, e: any) { terminated.resolve(e) }
        }
      }
    }
  })
  const client = await connect(t, base)
  const [connection] = app.wss.connections
  pauseReading(client) // it reads nothing from now on: neither replies nor pings
  const outboundPaused = (): boolean => (connection._inbound.reasons & Pause.Outbound) !== 0
  for (let sent = 0; sent < 4000 && !outboundPaused() && connection.status === 'Connected';) {
    for (let i = 0; i < 20; i++, sent++) client.send(`q${sent}`)
    await sleep(5)
  }
  t.ok(outboundPaused(), 'the server stopped reading it for its outbound buffer')
  t.equal(connection.status, 'Connected', 'still connected when the pause began')

  const ended = await Promise.race([terminated.promise, sleep(1000).then(() => undefined)]) // five intervals: waited for, not measured
  t.equal(ended?.code, 1006, 'destroyed by the heartbeat: it never answered a ping')
})

t.test('maxBufferedBytes: the check presses the holder that did not cross the bound itself; under the bound a paused connection that holds nothing reads again while one that still holds waits; once all is delivered every one reads again, none dropped', async (t) => {
  const size = 50 * 1024
  const gates = { a: deferred(), b: deferred() }
  const connections: Record<string, Connection> = {}
  const received: Record<string, number> = { a: 0, b: 0 }
  const errors: number[] = []
  const { base } = await start(t, {
    maxBufferedBytes: 256 * 1024,
    maxPendingBytes: 1024 * 1024,
    heartbeat: false,
    handler: {
      onConnection (_wss: unknown, event: any) {
        const name = event.request.query.name as 'a' | 'b'
        return {
          onOpen (ws: Connection) { connections[name] = ws },
          async onMessage () { await gates[name].promise; received[name]++ },
          onError (_ws: unknown, e: any) { errors.push(...e.errors.map((entry: any) => entry.errCode)) }
        }
      }
    }
  })
  t.teardown(() => { gates.a.resolve(); gates.b.resolve() })
  const a = await connect(t, `${base}/?name=a`)
  const b = await connect(t, `${base}/?name=b`)
  await until(() => connections.a !== undefined && connections.b !== undefined, 'both are open')
  for (let i = 0; i < 5; i++) a.send(numbered(i, size)) // one delivered, 200 KiB queued: under the bound
  await until(() => connections.a._inbound.bytes === 4 * size, 'a queues 200 KiB')
  t.equal(connections.a._inbound.reasons & Pause.Server, 0, 'a alone is under the bound')
  for (let i = 0; i < 4; i++) b.send(numbered(i, size)) // b takes the server past it, and its next message counts again
  await until(() => (connections.b._inbound.reasons & Pause.Server) !== 0, 'b, crossing the bound, is paused')
  await until(() => (connections.a._inbound.reasons & Pause.Server) !== 0, 'the check pauses a, holding the most')
  gates.b.resolve() // b's queue is delivered: the server holds a's 200 KiB, under the bound, above half of it
  await until(() => connections.b._inbound.reasons === 0, 'b, holding nothing, reads again')
  t.not(connections.a._inbound.reasons & Pause.Server, 0, 'a, still holding its queue, waits')
  gates.a.resolve()
  await until(() => received.a === 5 && received.b === 4, 'every message delivered')
  await until(() => connections.a._inbound.reasons === 0, 'a reads again once the server is under half of the bound')
  t.same(errors, [], 'nobody was dropped')
  t.equal(connections.a.status, 'Connected')
  t.equal(connections.b.status, 'Connected')
})

t.test('maxBufferedBytes: a closed connection whose queue holds the most is dropped by the check (errCode 422), its slot freed, while the live one is only paused', async (t) => {
  const size = 50 * 1024
  const xGate = deferred()
  const zGate = deferred()
  const connections: Record<string, Connection> = {}
  const errors: Record<string, number[]> = { x: [], z: [] }
  const { base } = await start(t, {
    maxBufferedBytes: 256 * 1024,
    maxPendingBytes: 1024 * 1024,
    maxConnections: 2,
    closeTimeout: 10_000,
    heartbeat: false,
    handler: {
      onConnection (_wss: unknown, event: any) {
        const name = event.request.query.name as 'x' | 'z'
        return {
          onOpen (ws: Connection) { connections[name] = ws },
          async onMessage () { await (name === 'x' ? xGate : zGate).promise },
          onError (_ws: unknown, e: any) { errors[name].push(...e.errors.map((entry: any) => entry.errCode)) }
        }
      }
    }
  })
  t.teardown(() => { xGate.resolve(); zGate.resolve() })
  const x = await connect(t, `${base}/?name=x`)
  const z = await connect(t, `${base}/?name=z`)
  await until(() => connections.x !== undefined && connections.z !== undefined, 'both are open')
  for (let i = 0; i < 5; i++) x.send(numbered(i, size))
  await until(() => connections.x._inbound.bytes === 4 * size, 'x queues 200 KiB')
  x.close()
  await closed(x)
  t.equal((await refusal(`${base}/?name=y`)).status, 503, 'closed x still holds its slot')
  for (let i = 0; i < 3; i++) z.send(numbered(i, size))
  await until(() => errors.x.length !== 0, 'the check drops the queue of the closed x')
  t.same(errors.x, [422])
  t.equal(connections.x._holding, 0, 'x holds nothing any more')
  t.same(errors.z, [], 'z, live and holding less, is not dropped')
  t.equal(connections.z.status, 'Connected')
  const y = await connect(t, `${base}/?name=z`)
  t.equal(y.readyState, 1, 'the slot of x is free again')
})

t.test('maxBufferedBytes: a connection whose own outbound buffer holds the most is destroyed by the check (1006, errCode 422): its peer would not read a close frame', async (t) => {
  const connections: Connection[] = []
  const errors: number[] = []
  const reply = 'r'.repeat(256 * 1024)
  const { base } = await start(t, {
    maxBufferedBytes: 1024 * 1024,
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onOpen (ws: Connection) { connections.push(ws) },
          onMessage (ws: Connection) { ws.send(reply) },
          onError (_ws: unknown, e: any) { errors.push(...e.errors.map((entry: any) => entry.errCode)) }
        }
      }
    }
  })
  const client = await connect(t, base)
  pauseReading(client)
  const end = closed(client)
  for (let i = 0; i < 200; i++) client.send('more')
  await until(() => errors.length !== 0, 'the check drops the connection')
  t.same(errors, [422])
  resumeReading(client) // to read the end of the stream
  t.equal((await end).code, 1006, 'destroyed, without a close frame')
  await until(() => connections[0].status === 'Closed', 'the server sees it closed')
})

for (const who of ['the client ends its TCP connection', 'the server closes it and the client never answers'] as const) {
  t.test(`a paused connection, when ${who}: what was queued is delivered in order, onTerminate runs once, last`, async (t) => {
    const gate = deferred()
    const delivered: string[] = []
    const terminated: number[] = []
    const opened = deferred<Connection>()
    const { base } = await start(t, {
      maxPendingMessages: 10,
      closeTimeout: 300,
      heartbeat: false,
      handler: {
        onConnection () {
          return {
            onOpen (ws: Connection) { opened.resolve(ws) },
            async onMessage (_ws: Connection, e: { data: any }) { await gate.promise; delivered.push(String(e.data)) },
            onTerminate (_ws: Connection, e: { code: number }) { terminated.push(e.code) }
          }
        }
      }
    })
    t.teardown(() => gate.resolve())
    const client = await rawConnect(t, base)
    const connection = await opened.promise
    client.socket.write(textFrames(50, (i) => `m${i}`))
    await until(() => connection._inbound.paused, 'reading pauses at maxPendingMessages')
    await sleep(20)
    if (who === 'the client ends its TCP connection') {
      // nothing is lost: the server reads on, in order, once its queue drains
      client.socket.end()
      gate.resolve()
      await until(() => terminated.length === 1, 'onTerminate runs')
      t.same(delivered, Array.from({ length: 50 }, (_, i) => `m${i}`), 'all 50, in order')
    } else {
      // frames read but never parsed are dropped when the socket is destroyed
      connection.terminate()
      await until(() => connection.status === 'Closed', 'closeTimeout destroys the socket')
      gate.resolve()
      await until(() => terminated.length === 1, 'onTerminate runs')
      t.same(delivered, Array.from({ length: 11 }, (_, i) => `m${i}`), 'the message in onMessage and the 10 queued, in order')
    }
    t.same(terminated, [1006])
    t.equal(delivered.length, who === 'the client ends its TCP connection' ? 50 : 11)
  })
}

t.test('a protocol error among frames left unparsed while reading was paused is reported when reading resumes: 1002, errCode 400, after the valid messages', async (t) => {
  const gate = deferred()
  const delivered: string[] = []
  const errors: number[] = []
  const opened = deferred<Connection>()
  const { base } = await start(t, {
    maxPendingMessages: 10,
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onOpen (ws: Connection) { opened.resolve(ws) },
          async onMessage (_ws: Connection, e: { data: any }) { await gate.promise; delivered.push(String(e.data)) },
          onError (_ws: unknown, e: any) { errors.push(...e.errors.map((entry: any) => entry.errCode)) }
        }
      }
    }
  })
  t.teardown(() => gate.resolve())
  const client = await rawConnect(t, base)
  const connection = await opened.promise
  // 30 valid frames, then one with a reserved bit set (no extension negotiated): a protocol error
  const bad = Buffer.from(textFrames(1, () => 'bad'))
  bad[0] |= 0x40
  client.socket.write(Buffer.concat([textFrames(30, (i) => `m${i}`), bad]))
  await until(() => connection._inbound.paused, 'reading pauses with frames left unparsed')
  t.same(errors, [], 'the bad frame is not parsed yet')
  gate.resolve()
  await until(() => errors.length !== 0, 'the error is found when reading resumes')
  t.same(errors, [400])
  const frame = await client.nextFrame()
  t.equal(frame?.opcode, Opcode.Close)
  await until(() => delivered.length === 30, 'the 30 valid messages are delivered')
  t.same(delivered, Array.from({ length: 30 }, (_, i) => `m${i}`))
})

import t from 'tap'
import type { WebSocketConnection } from '../lib/index.js'
import { closed, connect, deferred, messages, start } from './helpers/index.js'
import { Opcode, closeCode, closePayload, rawConnect, type RawFrame } from './helpers/frames.js'
import { captureLog } from './helpers/log.js'

/** Stops a `ws` client from reading its socket, so the server's writes pile up. */
function pauseReading (client: import('ws').WebSocket): void {
  (client as any)._socket.pause()
}

function resumeReading (client: import('ws').WebSocket): void {
  (client as any)._socket.resume()
}

/** Counts the pings a client receives; `reach(n)` resolves once `n` have arrived in all. */
function pingCounter (client: import('ws').WebSocket): { count: () => number, reach: (n: number) => Promise<void> } {
  let count = 0
  const waiters: Array<{ n: number, resolve: () => void }> = []
  client.on('ping', () => {
    count++
    for (const waiter of waiters.filter((w) => w.n <= count)) {
      waiters.splice(waiters.indexOf(waiter), 1)
      waiter.resolve()
    }
  })
  return {
    count: () => count,
    reach: (n) => n <= count ? Promise.resolve() : new Promise((resolve) => { waiters.push({ n, resolve }) })
  }
}

/** Bounds the send loops below: the kernel absorbs a few MiB of a paused socket before Node buffers. */
const MAX_FLOOD_MESSAGES = 4096

t.test('a message larger than maxPayload closes the connection with 1009 and reaches onError with errCode 401', async (t) => {
  const error = deferred<any>()
  const terminated = deferred<any>()
  const { app, base } = await start(t, {
    maxPayload: 1024,
    handler: {
      onConnection (_wss: unknown, event: any) {
        const big = event.request.query.big === '1'
        return {
          onMessage (ws: any, e: any) { ws.send(`echo:${e.data}`) },
          onError: big ? (_ws: unknown, e: any) => { error.resolve(e) } : undefined,
          onTerminate: big ? (_ws: unknown, e: any) => { terminated.resolve(e) } : undefined
        }
      }
    }
  })
  const other = await connect(t, base)
  const client = await connect(t, `${base}/?big=1`)
  const clientClosed = closed(client)
  client.send('x'.repeat(2000))

  t.equal((await clientClosed).code, 1009, 'the client sees 1009')
  const event = await error.promise
  t.equal(event.errors.length, 1)
  t.equal(event.errors[0].errCode, 401)
  t.equal(event.errors[0].componentSignature, 'fastify-wss')
  t.type(event.errors[0].error, Error)
  const end = await terminated.promise
  t.equal(end.type, 'terminate')
  t.equal(app.wss.connections.length, 1, 'the connection left wss.connections')

  other.send('x'.repeat(1024))
  t.same(await messages(other, 1), [`echo:${'x'.repeat(1024)}`], 'another client still works, up to maxPayload')
})

t.test('a text frame with invalid UTF-8 from a raw client closes the connection with 1007 and reaches onError with errCode 400', async (t) => {
  const error = deferred<any>()
  const terminated = deferred<any>()
  const { app, base } = await start(t, {
    closeTimeout: 200,
    handler: {
      onConnection () {
        return {
          onMessage (ws: any, e: any) { ws.send(e.data) },
          onError (_ws: unknown, e: any) { error.resolve(e) },
          onTerminate (_ws: unknown, e: any) { terminated.resolve(e) }
        }
      }
    }
  })
  const client = await rawConnect(t, base)
  t.equal(app.wss.connections.length, 1)
  client.send({ opcode: Opcode.Text, payload: Buffer.from([0xff, 0xfe]) })

  const reply = await client.nextFrame()
  if (reply !== undefined) {
    t.equal(reply.opcode, Opcode.Close, 'the server sends a close frame')
    t.equal(closeCode(reply), 1007)
    client.send({ opcode: Opcode.Close, payload: closePayload(1007) })
    client.socket.end()
  } else {
    t.pass('the server destroyed the socket')
  }

  const event = await error.promise
  t.equal(event.errors[0].errCode, 400)
  t.equal(event.errors[0].componentSignature, 'fastify-wss')
  t.type(event.errors[0].error, Error)
  t.equal((await terminated.promise).type, 'terminate', 'onTerminate runs')
  await client.closed
  t.same(app.wss.connections, [])
})

t.test('a compressed frame that does not inflate closes the connection with 1007 and reaches onError', async (t) => {
  const error = deferred<any>()
  const terminated = deferred()
  const { base } = await start(t, {
    perMessageDeflate: true,
    closeTimeout: 200,
    handler: {
      onConnection () {
        return {
          onMessage () {},
          onError (_ws: unknown, e: any) { error.resolve(e) },
          onTerminate () { terminated.resolve() }
        }
      }
    }
  })
  const client = await rawConnect(t, base, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } })
  t.match(client.headers['sec-websocket-extensions'], /permessage-deflate/)
  // 0xff...: a final deflate block of the reserved type 3
  client.send({ opcode: Opcode.Text, rsv1: true, payload: Buffer.from([0xff, 0xff, 0xff, 0xff]) })

  const reply = await client.nextFrame()
  if (reply !== undefined) {
    t.equal(closeCode(reply), 1007)
    client.socket.end()
  }
  const event = await error.promise
  t.equal(event.errors.length, 1)
  t.equal(event.errors[0].componentSignature, 'fastify-wss')
  t.equal(event.errors[0].errCode, 400, 'a payload that does not inflate is a protocol error')
  t.type(event.errors[0].error, Error)
  await terminated.promise
})

t.test('with heartbeat { interval: 50 } a client that does not answer pings is destroyed, onTerminate gets 1006', async (t) => {
  const terminated = deferred<any>()
  const { app, base } = await start(t, {
    heartbeat: { interval: 50 },
    handler: {
      onConnection () {
        return {
          onMessage () {},
          onTerminate (_ws: unknown, e: any) { terminated.resolve(e) }
        }
      }
    }
  })
  const client = await connect(t, base, { autoPong: false })
  const pings = pingCounter(client)
  const clientClosed = closed(client)

  t.equal((await terminated.promise).code, 1006)
  t.equal((await clientClosed).code, 1006, 'no close frame reached the client')
  t.ok(pings.count() >= 1, 'it was pinged first')
  t.same(app.wss.connections, [])
})

t.test('with heartbeat { interval: 100 } a client that answers pings stays connected over several intervals', async (t) => {
  let terminated = false
  const { app, base } = await start(t, {
    heartbeat: { interval: 100 },
    handler: {
      onConnection () {
        return {
          onMessage (ws: any, e: any) { ws.send(e.data) },
          onTerminate () { terminated = true }
        }
      }
    }
  })
  const client = await connect(t, base)
  await pingCounter(client).reach(4)
  t.equal(client.readyState, client.OPEN)
  t.equal(terminated, false)
  t.equal(app.wss.connections.length, 1)
  client.send('alive')
  t.same(await messages(client, 1), ['alive'])
})

t.test('the heartbeat leaves a closing connection alone: the closing handshake ends it', async (t) => {
  const terminated = deferred<any>()
  const { app, base } = await start(t, {
    heartbeat: { interval: 100 },
    handler: {
      onConnection (_wss: unknown, event: any) {
        return {
          onMessage () {},
          onTerminate: event.request.query.raw === '1' ? (_ws: unknown, e: any) => { terminated.resolve(e) } : undefined
        }
      }
    }
  })
  // Its pings mark the heartbeat's ticks.
  const markerClient = await connect(t, base)
  const marker = pingCounter(markerClient)
  const dropped = (): void => { t.fail('the marker client was dropped') }
  markerClient.on('close', dropped)
  const raw = await rawConnect(t, `${base}/?raw=1`)
  const closeFrame = deferred<RawFrame>()
  ;(async () => {
    for (let received = await raw.nextFrame(); received !== undefined; received = await raw.nextFrame()) {
      if (received.opcode === Opcode.Ping) raw.send({ opcode: Opcode.Pong, payload: received.payload })
      if (received.opcode === Opcode.Close) closeFrame.resolve(received)
    }
  })()
  const connection = app.wss.connections.find((c) => c.request.query.raw === '1') as WebSocketConnection
  connection.terminate({ code: 4000, message: 'bye' })
  t.equal(closeCode(await closeFrame.promise), 4000)

  // The raw client does not answer the close frame (nor ping) during three ticks.
  await marker.reach(marker.count() + 3)
  t.equal(connection.status, 'Closing', 'not destroyed by the heartbeat')
  t.ok(app.wss.connections.includes(connection))

  raw.send({ opcode: Opcode.Close, payload: closePayload(4000) })
  t.equal((await terminated.promise).code, 4000, 'closed by the handshake, not destroyed (1006)')
  markerClient.off('close', dropped)
})

t.test('with heartbeat false a client is never pinged and is kept though it would not answer', async (t) => {
  // The reference: a server pinging every 50 ms, which drops its own silent client.
  const reference = deferred()
  const { base: pingingBase } = await start(t, {
    heartbeat: { interval: 50 },
    handler: { onConnection () { return { onMessage () {}, onTerminate () { reference.resolve() } } } }
  })
  let terminated = false
  const { app, base } = await start(t, {
    heartbeat: false,
    handler: {
      onConnection () {
        return {
          onMessage (ws: any, e: any) { ws.send(e.data) },
          onTerminate () { terminated = true }
        }
      }
    }
  })
  const client = await connect(t, base, { autoPong: false })
  const pings = pingCounter(client)
  // Connected after `client`: by the time it is dropped, at least one full interval has passed for both.
  await connect(t, pingingBase, { autoPong: false })
  await reference.promise

  t.equal(pings.count(), 0, 'no ping')
  t.equal(terminated, false)
  t.equal(app.wss.connections.length, 1)
  client.send('still here')
  t.same(await messages(client, 1), ['still here'])
})

t.test('a connection past maxBackpressure is dropped: send() returns false, onTerminate gets 1006, a warn is logged, other clients go on', async (t) => {
  const log = captureLog()
  const flooded = deferred<{ results: boolean[], after: boolean }>()
  const terminated = deferred<any>()
  const { app, base } = await start(t, {
    maxBackpressure: 64 * 1024,
    handler: {
      onConnection () {
        return {
          onMessage (ws: any, e: any) {
            if (e.data !== 'flood') {
              ws.send(`echo:${e.data}`)
              return
            }
            const chunk = 'x'.repeat(16 * 1024)
            const results: boolean[] = []
            while (results.length < MAX_FLOOD_MESSAGES) {
              results.push(ws.send(chunk))
              if (!results[results.length - 1]) break
            }
            flooded.resolve({ results, after: ws.send(chunk) })
          },
          onTerminate (_ws: unknown, e: any) { terminated.resolve(e) }
        }
      }
    }
  }, { logger: { level: 'warn', stream: log.stream } })
  const other = await connect(t, base)
  const slow = await connect(t, base)
  pauseReading(slow)
  slow.send('flood')

  const { results, after } = await flooded.promise
  const refused = results.indexOf(false)
  t.ok(refused !== -1, 'send() returned false')
  t.equal(refused, results.length - 1, 'the first false ends the loop')
  t.ok(results.slice(0, refused).every(Boolean), 'true until maxBackpressure was exceeded')
  t.equal(after, false, 'false again on the dropped connection')
  t.equal((await terminated.promise).code, 1006)

  const line = await log.next((line) => line.level === 40)
  t.match(line.msg, 'reads too slowly')
  t.equal(line.maxBackpressure, 64 * 1024)
  t.ok(line.bufferedAmount > 64 * 1024)
  t.equal(app.wss.connections.length, 1)

  other.send('fine')
  t.same(await messages(other, 1), ['echo:fine'], 'another client still gets its replies')
})

t.test('onDrain is called, as a method, with (ws, { type: "drain" }) once a paused client reads again', async (t) => {
  const filled = deferred<number>()
  const drained = deferred<{ self: unknown, args: any[] }>()
  let drains = 0
  const connectionHandler = {
    async onMessage (ws: any) {
      const chunk = 'x'.repeat(16 * 1024)
      // One message per tick: what a tick sends is written at its end, so
      // bufferedAmount grows only once the kernel's buffers are full.
      for (let i = 0; i < MAX_FLOOD_MESSAGES && ws.bufferedAmount <= 128 * 1024; i++) {
        ws.send(chunk)
        await new Promise((resolve) => setImmediate(resolve))
      }
      filled.resolve(ws.bufferedAmount)
    },
    onDrain (...args: any[]) {
      drains++
      drained.resolve({ self: this, args })
    }
  }
  const { app, base } = await start(t, {
    maxBackpressure: 256 * 1024,
    handler: { onConnection () { return connectionHandler } }
  })
  const client = await connect(t, base)
  const [connection] = app.wss.connections
  pauseReading(client)
  client.send('fill')

  const buffered = await filled.promise
  t.type(buffered, 'number')
  t.ok(buffered > 128 * 1024, 'bufferedAmount went above half of maxBackpressure while the client was paused')
  t.equal(connection.bufferedAmount, buffered)
  t.equal(drains, 0, 'no drain while the client does not read')
  t.equal(connection.status, 'Connected', 'not dropped under maxBackpressure')

  resumeReading(client)
  const { self, args } = await drained.promise
  t.equal(self, connectionHandler, '`this` is the connection handler')
  t.equal(args[0], connection)
  t.same(args[1], { type: 'drain' })
  t.ok(connection.bufferedAmount <= 128 * 1024)
  t.equal(drains, 1)
})

t.test('with perMessageDeflate true the client negotiates permessage-deflate and messages round-trip', async (t) => {
  const { base } = await start(t, {
    perMessageDeflate: true,
    handler: { onConnection () { return { onMessage (ws: any, e: any) { ws.send(e.data) } } } }
  })
  const client = await connect(t, base)
  t.match(client.extensions, /permessage-deflate/)
  const text = 'compress me '.repeat(1000)
  client.send(text)
  t.same(await messages(client, 1), [text])
})

t.test('perMessageDeflate is off by default: no extension is negotiated', async (t) => {
  const { base } = await start(t, {
    handler: { onConnection () { return { onMessage (ws: any, e: any) { ws.send(e.data) } } } }
  })
  const client = await connect(t, base)
  t.equal(client.extensions, '')
  client.send('plain')
  t.same(await messages(client, 1), ['plain'])
})

t.test('the heartbeat spares a live client whose reading is paused by maxPendingMessages', async (t) => {
  const gate = deferred()
  const received: string[] = []
  const terminations: number[] = []
  let slow: WebSocketConnection<any> | undefined
  const { app, base } = await start(t, {
    heartbeat: { interval: 50 },
    maxPendingMessages: 2,
    handler: {
      onConnection (_wss, event) {
        if (event.request.query.clock !== undefined) return { onMessage () {} }
        return {
          onOpen (ws: WebSocketConnection<any>) { slow = ws },
          async onMessage (_ws: unknown, e: { data: string }) {
            await gate.promise
            received.push(e.data)
          },
          onTerminate (_ws: unknown, e: { code: number }) { terminations.push(e.code) }
        }
      }
    }
  })
  const client = await connect(t, base) // answers pings by itself, but only what the server reads counts
  const sent = Array.from({ length: 10 }, (_, i) => `m${i}`)
  for (const message of sent) client.send(message)
  while (slow?._inbound.paused !== true) await new Promise((resolve) => setTimeout(resolve, 5))

  // A second client is the clock: every ping it gets is a heartbeat tick of the server.
  const clock = await connect(t, `${base}/?clock`)
  await pingCounter(clock).reach(4)
  t.equal(slow.status, 'Connected', 'not dropped while its pongs cannot be read')
  t.same(terminations, [])

  gate.resolve()
  while (received.length < sent.length) await new Promise((resolve) => setTimeout(resolve, 5))
  t.same(received, sent)
  await pingCounter(clock).reach(4) // more ticks after the reading resumed
  t.equal(slow.status, 'Connected', 'still alive after reading resumed')
  t.equal(app.wss.connections.length, 2)
})

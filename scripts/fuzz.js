// Frame fuzzer: sends random and mutated WebSocket frames over raw TCP
// connections to a live fastify-wss server in this process, then checks that
// nothing crashed and that a normal client still gets an echo.
//
//   npm run fuzz                          10,000 frames
//   FUZZ_COUNT=500 npm run fuzz           a quick run
//   FUZZ_SEED=42 npm run fuzz             replays the frames of one seed
//
// Environment: FUZZ_COUNT (frames, default 10000), FUZZ_PER_CONNECTION (frames
// per TCP connection, default 10), FUZZ_CONCURRENCY (connections at once,
// default 20), FUZZ_SEED (default random), FUZZ_SECONDS (time bound, default 120).
// Exits non-zero on any uncaughtException / unhandledRejection, on connections
// still tracked at the end, or when the final echo fails.
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'
import Fastify from 'fastify'
import WebSocket from 'ws'
import wssPlugin from 'fastify-wss'
import { positive, recordCrashes } from './common.js'

const COUNT = positive('FUZZ_COUNT', 10_000)
const PER_CONNECTION = positive('FUZZ_PER_CONNECTION', 10)
const CONCURRENCY = positive('FUZZ_CONCURRENCY', 20)
const SECONDS = positive('FUZZ_SECONDS', 120)
const SEED = process.env.FUZZ_SEED === undefined ? randomBytes(4).readUInt32BE(0) : Number(process.env.FUZZ_SEED)
const MAX_PAYLOAD = 64 * 1024

const crashes = recordCrashes()

// mulberry32: a small seeded PRNG, so that a failing run can be replayed
let state = SEED >>> 0
function random () {
  state = (state + 0x6d2b79f5) >>> 0
  let x = state
  x = Math.imul(x ^ (x >>> 15), x | 1)
  x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296
}
const int = (n) => Math.floor(random() * n)
const chance = (p) => random() < p
const pick = (list) => list[int(list.length)]
function bytes (n) {
  const buffer = Buffer.alloc(n)
  for (let i = 0; i < n; i++) buffer[i] = int(256)
  return buffer
}

/** A frame from its parts; `length` may lie about the payload, `lengthForm` forces the 7/16/64-bit encoding. */
function build ({ fin = true, rsv = 0, opcode = 1, mask = true, payload = Buffer.alloc(0), length = payload.length, lengthForm }) {
  const form = lengthForm ?? (length < 126 ? 7 : length < 0x10000 ? 16 : 64)
  const header = Buffer.alloc(form === 7 ? 2 : form === 16 ? 4 : 10)
  header[0] = (fin ? 0x80 : 0) | (rsv << 4) | (opcode & 0x0f)
  if (form === 7) header[1] = length & 0x7f
  else if (form === 16) {
    header[1] = 126
    header.writeUInt16BE(length & 0xffff, 2)
  } else {
    header[1] = 127
    header.writeBigUInt64BE(BigInt(length), 2)
  }
  if (!mask) return Buffer.concat([header, payload])
  header[1] |= 0x80
  const key = bytes(4)
  const masked = Buffer.from(payload)
  for (let i = 0; i < masked.length; i++) masked[i] ^= key[i & 3]
  return Buffer.concat([header, key, masked])
}

const texts = ['hello', 'ünïcödé ✓', '{"a":1}', '', 'x'.repeat(200)]

/** A valid frame: text, binary, ping, pong, or a close with a code. */
function validFrame () {
  switch (int(6)) {
    case 0: return build({ opcode: 1, payload: Buffer.from(pick(texts)) })
    case 1: return build({ opcode: 2, payload: bytes(int(300)) })
    case 2: return build({ opcode: 9, payload: bytes(int(126)) })
    case 3: return build({ opcode: 10, payload: bytes(int(126)) })
    case 4: return build({ opcode: 1, payload: Buffer.from('y'.repeat(126 + int(2000))) })
    default: {
      const payload = Buffer.alloc(2)
      payload.writeUInt16BE(pick([1000, 1001, 3000, 4999, 1005, 1006, 999, 2000, 5000]))
      return build({ opcode: 8, payload })
    }
  }
}

/** One frame of a random kind; names the kind for the summary. */
function fuzzFrame () {
  const kind = pick(['random', 'random', 'lengths', 'lengths', 'flipped', 'flipped', 'truncated', 'fragments', 'valid', 'garbage'])
  switch (kind) {
    case 'random':
      return {
        kind,
        data: build({
          fin: chance(0.8),
          rsv: chance(0.2) ? int(8) : 0,
          opcode: int(16),
          mask: chance(0.9),
          payload: chance(0.5) ? bytes(int(200)) : Buffer.from(pick(texts))
        })
      }
    case 'lengths': {
      // 126 / 127 encodings whose length is wrong: too short, too long, non-minimal, huge
      const payload = bytes(int(300))
      const length = pick([0, 1, 125, 126, 127, 65535, 65536, MAX_PAYLOAD + 1, 2 ** 32, 2 ** 53, payload.length + int(50), Math.max(0, payload.length - int(50))])
      const lengthForm = pick([7, 16, 64, undefined])
      if (lengthForm === 16 && length > 0xffff) return { kind, data: build({ opcode: 2, payload, length: length & 0xffff, lengthForm }) }
      if (lengthForm === 64 && length >= 2 ** 53) {
        // the highest bit set: ws refuses lengths over 2^53 - 1
        const data = build({ opcode: 2, payload, lengthForm: 64 })
        data[2] = 0x80 | int(128)
        return { kind, data }
      }
      return { kind, data: build({ opcode: pick([1, 2, 9]), payload, length: lengthForm === 7 ? length & 0x7f : length, lengthForm }) }
    }
    case 'flipped': {
      const data = validFrame()
      for (let flips = 1 + int(3); flips > 0; flips--) data[int(data.length)] ^= 1 << int(8)
      return { kind, data }
    }
    case 'truncated': {
      const data = validFrame()
      return { kind, data: data.subarray(0, int(data.length)) }
    }
    case 'fragments': {
      // a fragmented message, possibly interleaved with a control frame or missing its end
      const parts = [build({ opcode: pick([1, 2]), fin: false, payload: Buffer.from('part') })]
      if (chance(0.5)) parts.push(build({ opcode: pick([9, 10, 1, 2]), payload: Buffer.from('mid'), fin: chance(0.7) }))
      parts.push(build({ opcode: 0, fin: chance(0.7), payload: chance(0.2) ? Buffer.from([0xc3, 0x28]) : Buffer.from('end') }))
      return { kind, data: Buffer.concat(parts) }
    }
    case 'valid':
      return { kind, data: validFrame() }
    default:
      return { kind, data: bytes(1 + int(64)) }
  }
}

/** A raw TCP client past the opening handshake, or `undefined` when it was not accepted. */
async function handshake (port) {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  try {
    await once(socket, 'connect')
  } catch {
    return undefined
  }
  const key = randomBytes(16).toString('base64')
  socket.write(`GET /fuzz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
  let head = Buffer.alloc(0)
  const accepted = await new Promise((resolve) => {
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) return
      socket.off('data', onData)
      const text = head.subarray(0, end).toString('latin1')
      const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
      resolve(/^HTTP\/1\.1 101 /.test(text) && text.includes(accept))
    }
    socket.on('data', onData)
    socket.once('close', () => resolve(false))
  })
  if (!accepted) {
    socket.destroy()
    return undefined
  }
  socket.resume() // whatever the server sends back is read and dropped
  return socket
}

const kinds = {}
const errCodes = {}
const closeCodes = {}
let opened = 0
let terminated = 0
let echoed = 0
let sent = 0
let connections = 0
let refusedHandshakes = 0
let stuck = 0

const app = Fastify({ logger: { level: 'fatal' } })
await app.register(wssPlugin, {
  path: '/fuzz',
  maxPayload: MAX_PAYLOAD,
  closeTimeout: 200,
  heartbeat: false,
  handler: {
    onConnection () {
      return {
        onOpen () { opened++ },
        onMessage (ws, event) {
          echoed++
          ws.send(event.data)
        },
        onError (_ws, event) {
          for (const entry of event.errors) errCodes[entry.errCode] = (errCodes[entry.errCode] ?? 0) + 1
        },
        onTerminate (_ws, event) {
          terminated++
          closeCodes[event.code] = (closeCodes[event.code] ?? 0) + 1
        }
      }
    }
  }
})
await app.listen({ port: 0, host: '127.0.0.1' })
const port = app.server.address().port
const deadline = Date.now() + SECONDS * 1000
const started = Date.now()

/**
 * Reads what the server sends (unmasked frames) and tells when a close frame
 * came: past it, the server reads nothing more, so no frame is counted as sent.
 */
function watchClose (socket) {
  const watch = { closing: false }
  let buffered = Buffer.alloc(0)
  socket.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk])
    while (buffered.length >= 2) {
      let length = buffered[1] & 0x7f
      let offset = 2
      if (length === 126) {
        if (buffered.length < 4) return
        length = buffered.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (buffered.length < 10) return
        length = Number(buffered.readBigUInt64BE(2))
        offset = 10
      }
      if (buffered.length < offset + length) return
      if ((buffered[0] & 0x0f) === 8) watch.closing = true
      buffered = buffered.subarray(offset + length)
    }
  })
  socket.on('end', () => { watch.closing = true })
  return watch
}

/** One connection: up to PER_CONNECTION frames, each written once the server has had its turn, then the end. */
async function oneConnection () {
  const socket = await handshake(port)
  if (socket === undefined) {
    refusedHandshakes++
    return
  }
  connections++
  const closed = once(socket, 'close')
  const watch = watchClose(socket)
  for (let i = 0; i < PER_CONNECTION && sent < COUNT && !watch.closing && !socket.destroyed; i++) {
    const { kind, data } = fuzzFrame()
    kinds[kind] = (kinds[kind] ?? 0) + 1
    socket.write(data)
    sent++
    // the server reads and answers before the next frame
    for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve))
  }
  socket.end()
  // The server ends a connection it has closed or that ended; never wait forever.
  const timer = setTimeout(() => { stuck++; socket.destroy() }, 5000)
  await closed
  clearTimeout(timer)
}

async function worker () {
  while (sent < COUNT && Date.now() < deadline) await oneConnection()
}
await Promise.all(Array.from({ length: CONCURRENCY }, worker))

// Every server-side connection must be gone once the clients are.
const settle = Date.now() + 5000
while (app.wss.connections.length !== 0 && Date.now() < settle) await new Promise((resolve) => setTimeout(resolve, 20))
const tracked = app.wss.connections.length

// A normal client must still be served.
let echo = false
try {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/fuzz`)
  await once(ws, 'open')
  ws.send('still alive')
  const timer = setTimeout(() => ws.terminate(), 5000)
  const [data] = await once(ws, 'message')
  clearTimeout(timer)
  echo = data.toString() === 'still alive'
  ws.close()
  await once(ws, 'close')
} catch (err) {
  console.error('final echo failed:', err)
}
await app.close()

const timedOut = sent < COUNT
const ok = crashes.length === 0 && echo && tracked === 0 && opened === terminated
console.log(`fuzz: seed ${SEED}, ${sent} frames over ${connections} connections in ${((Date.now() - started) / 1000).toFixed(1)} s`)
console.log(`  frame kinds: ${JSON.stringify(kinds)}`)
console.log(`  server: ${opened} opened, ${terminated} onTerminate, ${echoed} messages echoed, ${tracked} still tracked`)
console.log(`  onTerminate codes: ${JSON.stringify(closeCodes)}`)
console.log(`  onError errCodes: ${JSON.stringify(errCodes)}`)
console.log(`  handshakes refused: ${refusedHandshakes}, connections the server left open after the client ended (destroyed at 5 s): ${stuck}`)
console.log(`  crashes: ${crashes.length}, final echo: ${echo ? 'ok' : 'FAILED'}${timedOut ? `, stopped by FUZZ_SECONDS before ${COUNT} frames` : ''}`)
for (const crash of crashes.slice(0, 5)) console.error(crash)
console.log(ok ? 'fuzz: OK' : 'fuzz: FAILED')
process.exit(ok ? 0 : 1)

// The attacking clients of one attack, in their own process, started by
// scripts/attack.js:
//
//   node scripts/attack-clients.js '<plan JSON>'
//
// plan: { port, seconds, clients, mode, frame, deflate, perCycle, paceMs, burst }
//   mode 'flood'      each client keeps one connection and writes its frame
//                     as fast as the socket takes it; reconnects when dropped
//   mode 'cycle'      each client connects, writes perCycle frames, sends a
//                     close frame, waits for the close, and starts again
//   mode 'never-read' each client completes the handshake, then never reads
//                     again, and writes its frame every paceMs; reconnects
//                     when dropped
// Raw TCP sockets speak the protocol by hand: every frame is built once and
// written by reference (masked with a zero key, so the bytes are the payload
// as is), and a client writes again only once its socket has drained, so
// this process holds about one frame per client whatever the server does.
// Reads are discarded without being parsed.
//
// At the end (plan.seconds, or 'stop' over IPC) every socket is destroyed, the counts go to the
// parent over IPC ({ stats }) and the process exits.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { constants, deflateRawSync } from 'node:zlib'

const plan = JSON.parse(process.argv[2])
const sockets = new Set()
const run = { over: false }
const stats = { connections: 0, refused: 0, failed: 0, dropped: 0, cycles: 0, writeMs: 0, closeMs: 0, frames: 0, bytes: 0, rss: 0 }
// this process's own peak RSS, to show that the attack does not buffer what it sends
const sampler = setInterval(() => { stats.rss = Math.max(stats.rss, process.memoryUsage.rss()) }, 100)

process.on('disconnect', () => process.exit(0))

/** A client frame (FIN set) with a zero masking key. */
function wsFrame (payload, { opcode = 2, rsv1 = false } = {}) {
  const length = payload.length
  const size = length < 126 ? 2 : length < 0x10000 ? 4 : 10
  const header = Buffer.alloc(size + 4) // the 4 zero bytes of the masking key
  header[0] = 0x80 | (rsv1 ? 0x40 : 0) | opcode
  if (size === 2) header[1] = 0x80 | length
  else if (size === 4) {
    header[1] = 0x80 | 126
    header.writeUInt16BE(length, 2)
  } else {
    header[1] = 0x80 | 127
    header.writeBigUInt64BE(BigInt(length), 2)
  }
  return Buffer.concat([header, payload])
}

/** permessage-deflate payload: raw deflate, sync-flushed, without its final 00 00 ff ff. */
function compress (payload) {
  const deflated = deflateRawSync(payload, { finishFlush: constants.Z_SYNC_FLUSH })
  return deflated.subarray(0, deflated.length - 4)
}

/** The one buffer every client of this attack writes: one or many frames. */
function buildFrame ({ kind, size = 0, count = 1 }) {
  switch (kind) {
    case 'binary':
      return wsFrame(Buffer.alloc(size, 0x61))
    case 'compressed': {
      // highly compressible text: about size / 1000 bytes on the wire
      const one = wsFrame(compress(Buffer.alloc(size, 0x61)), { opcode: 1, rsv1: true })
      return Buffer.concat(Array(count).fill(one))
    }
    case 'deep-json': {
      const depth = Math.floor(size / 2)
      return wsFrame(Buffer.from('['.repeat(depth) + ']'.repeat(depth)), { opcode: 1 })
    }
    case 'invalid-json':
      return Buffer.concat(Array.from({ length: count }, () => wsFrame(Buffer.from('{"not": json'), { opcode: 1 })))
    case 'tiny':
      // alternately 1-byte and empty binary frames
      return Buffer.concat(Array.from({ length: count }, (_, i) => wsFrame(i % 2 === 0 ? Buffer.from('x') : Buffer.alloc(0))))
    case 'requests':
      return Buffer.concat(Array.from({ length: count }, () => wsFrame(Buffer.from('x'), { opcode: 1 })))
    default:
      throw new Error(`unknown frame kind ${kind}`)
  }
}

const frame = buildFrame(plan.frame)
const closeFrame = wsFrame(Buffer.from([0x03, 0xe8]), { opcode: 8 }) // 1000

/**
 * A socket past the opening handshake, or undefined when the server refused
 * it (any answer but 101), could not be reached, or the attack is over.
 */
function connect () {
  if (run.over) return Promise.resolve(undefined)
  return new Promise((resolve) => {
    const socket = net.connect(plan.port, '127.0.0.1')
    sockets.add(socket)
    let head = Buffer.alloc(0)
    let settled = false
    const settle = (value) => {
      if (settled) return
      settled = true
      socket.off('data', onData)
      resolve(value)
    }
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) {
        if (head.length > 16 * 1024) socket.destroy()
        return
      }
      const text = head.subarray(0, end).toString('latin1')
      if (!/^HTTP\/1\.1 101 /.test(text) || (plan.deflate && !/permessage-deflate/i.test(text))) {
        stats.refused++
        socket.destroy()
        return settle(undefined)
      }
      stats.connections++
      settle(socket)
    }
    socket.on('data', onData)
    socket.on('error', () => {})
    socket.once('close', () => {
      sockets.delete(socket)
      stats.bytes += socket.bytesWritten
      if (!settled) stats.failed++
      settle(undefined)
    })
    socket.once('connect', () => {
      socket.setNoDelay(true)
      socket.write(`GET /?attack HTTP/1.1\r\nHost: 127.0.0.1:${plan.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
        (plan.deflate ? 'Sec-WebSocket-Extensions: permessage-deflate\r\n' : '') + '\r\n')
    })
  })
}

/**
 * Writes the frame `count` times (or until the end), each write once the
 * socket has taken the previous ones; `burst` writes per turn of the event
 * loop, or per `paceMs`. Resolves with 'written', 'closed' (the socket closed
 * first) or 'over' (the attack ended first).
 */
function pump (socket, { count = Infinity, burst = 16, paceMs = 0 } = {}) {
  return new Promise((resolve) => {
    let written = 0
    let done = false
    const finish = (outcome) => {
      if (done) return
      done = true
      socket.off('close', onClose)
      resolve(outcome)
    }
    const onClose = () => finish(run.over ? 'over' : 'closed')
    socket.once('close', onClose)
    const step = () => {
      if (done) return
      for (let turn = 0; turn < burst; turn++) {
        if (run.over) return finish('over')
        if (socket.destroyed) return finish('closed')
        if (written >= count) return finish('written')
        written++
        stats.frames++
        if (!socket.write(frame)) return socket.once('drain', step)
      }
      if (paceMs === 0) setImmediate(step)
      else setTimeout(step, paceMs)
    }
    step()
  })
}

const closed = (socket) => socket.destroyed ? Promise.resolve() : new Promise((resolve) => socket.once('close', resolve))

/** One client: connects again whenever it was refused or dropped, until the end. */
async function client () {
  while (!run.over) {
    const socket = await connect()
    if (socket === undefined) {
      await sleep(50)
      continue
    }
    if (plan.mode === 'never-read') socket.pause()
    else socket.on('data', () => {}) // read and drop what the server sends
    const started = Date.now()
    const outcome = await pump(socket, plan.mode === 'cycle' ? { count: plan.perCycle } : { burst: plan.burst, paceMs: plan.paceMs })
    if (outcome === 'closed') stats.dropped++
    if (outcome === 'written') {
      const written = Date.now()
      socket.end(closeFrame)
      await closed(socket)
      if (!run.over) {
        stats.cycles++
        stats.writeMs += written - started
        stats.closeMs += Date.now() - written
      }
    }
  }
}

function stop () {
  run.over = true
  for (const socket of sockets) socket.destroy()
}
const ended = setTimeout(stop, plan.seconds * 1000)
// the parent ends the attack early when the server is gone
process.on('message', (message) => { if (message === 'stop') stop() })
await Promise.all(Array.from({ length: plan.clients }, client))
clearTimeout(ended)
clearInterval(sampler)
for (const socket of sockets) socket.destroy()
await sleep(10) // the last 'close' events add their bytes
process.send({ stats }, () => process.exit(0))

// Soak test: a fastify-wss server in this process and thousands of clients
// over time that connect, send and leave — some abruptly (socket destroyed,
// no close frame), some as slow readers that never read while the server
// pushes to them (dropped by maxBackpressure), some refused at the upgrade.
// At the end every client is closed, the heap is measured after GC, and the
// run fails on a leak.
//
//   npm run soak                      60 s
//   SOAK_SECONDS=600 npm run soak     10 minutes
//
// Environment: SOAK_SECONDS (default 60), SOAK_CONCURRENCY (clients open at
// once, default 500), SOAK_HEAP_MB (allowed heap growth after GC over the
// post-warm-up baseline, default 20).
// Exits non-zero when connections are still tracked once every client has
// gone, when an onTerminate is missing or doubled, on an uncaught exception
// or unhandled rejection, or when the heap grew by more than SOAK_HEAP_MB.
import { spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { positive, recordCrashes } from './common.js'

// GC has to be forced to compare heaps: run again with --expose-gc.
if (typeof globalThis.gc !== 'function') {
  const child = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url)], { stdio: 'inherit' })
  process.exit(child.status ?? 1)
}

const { default: Fastify } = await import('fastify')
const { default: WebSocket } = await import('ws')
const { default: wssPlugin } = await import('fastify-wss')

const SECONDS = positive('SOAK_SECONDS', 60)
const CONCURRENCY = positive('SOAK_CONCURRENCY', 500)
const HEAP_MB = positive('SOAK_HEAP_MB', 20)
const MAX_BACKPRESSURE = 256 * 1024
const PUSH = Buffer.alloc(64 * 1024, 0x61)

const crashes = recordCrashes()

const count = (table, key) => { table[key] = (table[key] ?? 0) + 1 }
const server = { opened: 0, messages: 0, terminates: 0, doubled: 0, errCodes: {}, closeCodes: {}, drops: 0 }
const clients = { started: 0, normal: 0, abrupt: 0, slow: 0, refused: 0, echoes: 0, failed: 0, kinds: {} }

// warn lines: a connection dropped for maxBackpressure
const logStream = new Writable({
  write (chunk, _encoding, callback) {
    for (const line of chunk.toString().split('\n')) if (line.includes('reads too slowly')) server.drops++
    callback()
  }
})

/** The slow readers the server pushes to. */
const slow = new Set()
/**
 * A paused client never reads the end of its TCP connection, so it cannot see
 * that it was dropped: the server side tells it, by the id in its query.
 */
const droppedSlow = new Map()
let nextClientId = 0
const app = Fastify({ logger: { level: 'warn', stream: logStream } })
await app.register(wssPlugin, {
  path: '/soak',
  maxBackpressure: MAX_BACKPRESSURE,
  maxPayload: 64 * 1024,
  closeTimeout: 1000,
  heartbeat: { interval: 5000 },
  handler: {
    onConnection (_wss, event) {
      const { role, token, id } = event.request.query
      if (token !== 'ok') return null
      let ended = false
      return {
        onOpen (ws) {
          server.opened++
          if (role === 'slow') slow.add(ws)
        },
        onMessage (ws, e) {
          server.messages++
          ws.send(e.data)
        },
        onError (_ws, e) {
          for (const entry of e.errors) count(server.errCodes, entry.errCode)
        },
        onTerminate (ws, e) {
          if (ended) server.doubled++
          ended = true
          server.terminates++
          count(server.closeCodes, e.code)
          slow.delete(ws)
          if (role === 'slow') droppedSlow.get(id)?.()
        }
      }
    }
  }
})
await app.listen({ port: 0, host: '127.0.0.1' })
const url = `ws://127.0.0.1:${app.server.address().port}/soak`

// The server pushes to every slow reader until maxBackpressure drops it.
const pusher = setInterval(() => {
  for (const ws of slow) ws.send(PUSH)
}, 10)

const open = new Set()
const random = (n) => Math.floor(Math.random() * n)
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** One client's life, by kind; resolves once its socket has closed. */
async function client (kind) {
  clients.started++
  count(clients.kinds, kind)
  const id = String(++nextClientId)
  const ws = new WebSocket(`${url}?token=${kind === 'refused' ? 'bad' : 'ok'}&role=${kind}&id=${id}`)
  open.add(ws)
  const closed = new Promise((resolve) => ws.once('close', resolve))
  ws.on('error', () => {})
  try {
    if (kind === 'refused') {
      const [, res] = await once(ws, 'unexpected-response')
      if (res.statusCode === 403) clients.refused++
      else clients.failed++
      res.resume()
      ws.terminate()
      return
    }
    await once(ws, 'open')
    if (kind === 'slow') {
      // never reads: the server's pushes pile up until it drops the connection
      ws._socket.pause()
      const dropped = new Promise((resolve) => droppedSlow.set(id, resolve))
      const timer = setTimeout(() => { clients.failed++; ws.terminate() }, 30_000)
      await Promise.race([dropped, closed])
      clearTimeout(timer)
      droppedSlow.delete(id)
      ws.terminate()
      await closed
      clients.slow++
      return
    }
    const messages = 1 + random(20)
    for (let i = 0; i < messages; i++) {
      const text = `${kind}:${i}:${'z'.repeat(random(2048))}`
      ws.send(text)
      const [data] = await once(ws, 'message')
      if (data.toString() === text) clients.echoes++
      else clients.failed++
      if (random(4) === 0) await delay(random(50))
    }
    if (kind === 'abrupt') {
      // leaves without a close frame, sometimes in the middle of a message
      if (random(2) === 0) ws.send('cut'.repeat(10_000))
      ws._socket.destroy()
      clients.abrupt++
    } else {
      ws.close(1000)
      clients.normal++
    }
    await closed
  } catch {
    clients.failed++
    ws.terminate()
  } finally {
    open.delete(ws)
  }
}

function pickKind () {
  const n = random(100)
  return n < 60 ? 'normal' : n < 80 ? 'abrupt' : n < 90 ? 'slow' : 'refused'
}

const heap = () => process.memoryUsage().heapUsed
const mb = (bytes) => (bytes / 1024 / 1024).toFixed(1)
function collect () {
  for (let i = 0; i < 3; i++) globalThis.gc()
}

const started = Date.now()
const end = started + SECONDS * 1000
const warmUpAt = started + Math.min(10_000, SECONDS * 1000 * 0.2)
let baseline
let peakOpen = 0
const running = new Set()
let lastReport = started

while (Date.now() < end) {
  while (running.size < CONCURRENCY && Date.now() < end) {
    const life = client(pickKind()).finally(() => running.delete(life))
    running.add(life)
  }
  peakOpen = Math.max(peakOpen, app.wss.connections.length)
  if (baseline === undefined && Date.now() >= warmUpAt) {
    collect()
    baseline = heap()
    console.log(`soak: warm-up done, heap after GC ${mb(baseline)} MB with ${app.wss.connections.length} connections open`)
  }
  if (Date.now() - lastReport >= 10_000) {
    lastReport = Date.now()
    console.log(`soak: ${((lastReport - started) / 1000).toFixed(0)} s, ${clients.started} clients, ${app.wss.connections.length} open, heap ${mb(heap())} MB`)
  }
  await Promise.race([...running].slice(0, 50).concat(delay(20)))
}

// No new clients: let the running ones finish (slow readers wait to be dropped), then close the rest.
const finishBy = Date.now() + 35_000
while (running.size !== 0 && Date.now() < finishBy) await delay(50)
for (const ws of open) ws.terminate()
while (running.size !== 0) await delay(20)
clearInterval(pusher)
// The server side has seen every client go once its sockets have closed.
const settleBy = Date.now() + 10_000
while ((app.wss.connections.length !== 0 || server.terminates !== server.opened) && Date.now() < settleBy) await delay(20)
const tracked = app.wss.connections.length

collect()
const after = heap()
await app.close()
const growth = after - (baseline ?? after)

console.log(`soak: ${SECONDS} s, up to ${CONCURRENCY} clients at once (peak ${peakOpen} connections), maxBackpressure ${MAX_BACKPRESSURE / 1024} KiB`)
console.log(`  clients: ${clients.started} started ${JSON.stringify(clients.kinds)}; ${clients.normal} closed normally, ${clients.abrupt} left abruptly, ${clients.slow} slow readers ended, ${clients.refused} refused with 403, ${clients.failed} failed`)
console.log(`  echoes received: ${clients.echoes}; server messages: ${server.messages}`)
console.log(`  server: ${server.opened} opened, ${server.terminates} onTerminate (${server.doubled} doubled), ${server.drops} dropped for maxBackpressure`)
console.log(`  onTerminate codes: ${JSON.stringify(server.closeCodes)}`)
console.log(`  onError errCodes: ${JSON.stringify(server.errCodes)}`)
console.log(`  connections still tracked: ${tracked}`)
console.log(`  heap after GC: ${mb(baseline ?? 0)} MB after warm-up, ${mb(after)} MB at the end (${growth >= 0 ? '+' : ''}${mb(growth)} MB, limit +${HEAP_MB} MB)`)
console.log(`  crashes: ${crashes.length}`)
for (const crash of crashes.slice(0, 5)) console.error(crash)

const leak = tracked !== 0 || server.terminates !== server.opened || server.doubled !== 0 || growth > HEAP_MB * 1024 * 1024
const ok = !leak && crashes.length === 0
console.log(ok ? 'soak: OK' : 'soak: FAILED')
process.exit(ok ? 0 : 1)

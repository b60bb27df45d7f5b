// One server variant in its own process, driven by bench/run.js over IPC.
//   node --expose-gc bench/server.js <variant> <dataType>
// Replies to { id, cmd }: 'cpu' (process.cpuUsage), 'rss' (after GC),
// 'broadcast' (count messages of size bytes to every client), 'exit'.
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { Session } from 'node:inspector/promises'
import { setImmediate as tick } from 'node:timers/promises'

const [variant, dataType = 'text'] = process.argv.slice(2)
const host = '127.0.0.1'

// BENCH_SCHEMA=1: fastify-wss validates each message and serialises each reply
// with the schemas of the bench's object ({ id, user, text, tags, n }).
const item = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    user: { type: 'string', maxLength: 64 },
    text: { type: 'string', maxLength: 1000 },
    tags: { type: 'array', items: { type: 'string' }, maxItems: 16 },
    n: { type: 'number' }
  },
  required: ['id', 'user', 'text']
}
const schema = process.env.BENCH_SCHEMA === '1' ? { message: item, send: item } : undefined

/** Every variant does the same work: a message arrives as a string (or a parsed value) and is sent back. */
const variants = {
  'fastify-wss': () => fastifyWss('fastify-wss'),
  // BASELINE=<commit> in bench/run.js: the package as built from that commit
  'fastify-wss (baseline)': () => fastifyWss(new URL('baseline/dist/index.js', import.meta.url).href),

  async ws () {
    const { WebSocketServer } = await import('ws')
    const wss = new WebSocketServer({ port: 0, host })
    const reply = dataType === 'object'
      ? (data) => JSON.stringify(JSON.parse(data.toString()))
      : (data) => data.toString()
    wss.on('connection', (ws) => {
      ws.on('error', noop)
      ws.on('message', (data) => ws.send(reply(data)))
    })
    await new Promise((resolve) => wss.once('listening', resolve))
    return {
      port: wss.address().port,
      broadcast: (message) => sendLoop(wss.clients, message)
    }
  },

  async '@fastify/websocket' () {
    const { default: Fastify } = await import('fastify')
    const { default: websocket } = await import('@fastify/websocket')
    const app = Fastify()
    await app.register(websocket)
    const reply = dataType === 'object'
      ? (data) => JSON.stringify(JSON.parse(data.toString()))
      : (data) => data.toString()
    app.get('/', { websocket: true }, (socket) => {
      socket.on('error', noop)
      socket.on('message', (data) => socket.send(reply(data)))
    })
    await app.listen({ port: 0, host })
    return {
      port: app.server.address().port,
      broadcast: (message) => sendLoop(app.websocketServer.clients, message)
    }
  },

  async 'socket.io' () {
    const { Server } = await import('socket.io')
    const http = createServer()
    const io = new Server(http, { transports: ['websocket'], serveClient: false })
    io.on('connection', (socket) => {
      socket.on('message', (data) => socket.send(data))
    })
    await new Promise((resolve) => http.listen(0, host, resolve))
    return {
      port: http.address().port,
      broadcast: (message) => io.emit('message', message)
    }
  }
}

/** fastify-wss from `specifier` (the package, or a baseline build), echoing each message. */
async function fastifyWss (specifier) {
  const { default: Fastify } = await import('fastify')
  const { wssPlugin } = await import(specifier)
  class Echo {
    onMessage (ws, event) { ws.send(event.data) }
  }
  const app = Fastify()
  await app.register(wssPlugin, {
    path: '/',
    dataType,
    schema,
    handler: { onConnection: () => new Echo() }
  })
  await app.listen({ port: 0, host })
  return {
    port: app.server.address().port,
    broadcast: (message) => app.wss.broadcast(message)
  }
}

/** The broadcast a ws application writes by hand. */
function sendLoop (clients, message) {
  for (const client of clients) {
    if (client.readyState === 1) client.send(message)
  }
}

function noop () {}

async function collect () {
  for (let i = 0; i < 4; i++) {
    globalThis.gc()
    await tick()
  }
}

// With PROFILE_DIR set, each measured window (between two 'cpu' reads) is
// recorded by the V8 profiler into PROFILE_DIR, one .cpuprofile per window.
const profileDir = process.env.PROFILE_DIR
let session
let windows = 0

async function toggleProfile () {
  if (!session) {
    session = new Session()
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: 100 })
    await session.post('Profiler.start')
    return
  }
  const { profile } = await session.post('Profiler.stop')
  session.disconnect()
  session = undefined
  const name = `${variant.replace(/\W/g, '_')}-${dataType}-${process.pid}-${++windows}.cpuprofile`
  writeFileSync(`${profileDir}/${name}`, JSON.stringify(profile))
}

const server = await variants[variant]()

process.on('message', async ({ id, cmd, count, size }) => {
  switch (cmd) {
    case 'cpu':
      process.send({ id, cpu: process.cpuUsage() })
      if (profileDir) await toggleProfile()
      break
    case 'rss': {
      await collect()
      const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage()
      process.send({ id, rss, heapUsed, external: external + arrayBuffers })
      break
    }
    case 'broadcast': {
      const message = 'b'.repeat(size)
      for (let i = 0; i < count; i++) server.broadcast(message)
      process.send({ id })
      break
    }
    case 'exit':
      process.exit(0)
  }
})
process.on('disconnect', () => process.exit(0))

process.send({ ready: true, port: server.port })

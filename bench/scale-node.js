// One node of bench/scale.js in its own process: fastify-wss or socket.io on
// 127.0.0.1 with a Redis adapter, driven over IPC.
//   node bench/scale-node.js '<setup as JSON>'
// A client connects with ?topic=<topic> and is subscribed to that topic (a
// room, for socket.io). Once listening the node sends { port }, or { error }
// when the setup cannot start (say, an adapter option this build lacks).
// Commands:
//   { cmd: 'publish', kind, seq, topics }  one message per topic: "<kind><node> <seq> <µs> <pad>"
//   { id, cmd: 'cpu' }                      replies { id, cpu: process.cpuUsage() }
//   { cmd: 'exit' }
import { createServer } from 'node:http'

const setup = JSON.parse(process.argv[2])
const host = '127.0.0.1'
const pad = 'x'.repeat(setup.size)

/** process.hrtime (CLOCK_MONOTONIC, shared by the processes of a machine) in whole µs. */
function micros () {
  const [s, ns] = process.hrtime()
  return s * 1e6 + Math.floor(ns / 1e3)
}

function report (message) {
  if (process.connected) process.send({ runtimeError: message })
}

async function fastifyWss () {
  const { default: Fastify } = await import('fastify')
  const { wssPlugin } = await import('fastify-wss')
  const { redisAdapter } = await import('fastify-wss/redis')
  let own // an ioredis Cluster this process made, when the adapter takes only instances
  let adapter
  if (setup.cluster === undefined) {
    adapter = redisAdapter({ url: setup.url, ...setup.options })
  } else {
    try {
      adapter = redisAdapter({ ...setup.options, cluster: setup.cluster }) // its startup nodes
    } catch (err) {
      const { Cluster } = await import('ioredis')
      own = new Cluster(setup.cluster, { lazyConnect: true })
      try {
        adapter = redisAdapter({ ...setup.options, cluster: own })
      } catch {
        own.disconnect()
        throw err
      }
    }
  }
  const app = Fastify()
  await app.register(wssPlugin, {
    path: '/',
    adapter,
    heartbeat: false,
    handler: {
      onConnection (_wss, event) {
        const topic = String(event.request.query.topic)
        return { onOpen (ws) { ws.subscribe(topic) }, onMessage () {} }
      },
      onError (_wss, event) { report(event.errors.map((e) => e.message).join('; ')) }
    }
  })
  await app.listen({ port: 0, host })
  return {
    port: app.server.address().port,
    publish: (topic, text) => app.wss.publish(topic, text),
    async close () {
      await app.close()
      own?.disconnect()
    }
  }
}

async function socketIo () {
  const { Server } = await import('socket.io')
  const { Redis } = await import('ioredis')
  const http = createServer()
  const io = new Server(http, { transports: ['websocket'], serveClient: false })
  const connections = []
  const connect = () => {
    const redis = new Redis(setup.url)
    redis.on('error', (err) => report(`redis: ${err.message}`))
    connections.push(redis)
    return redis
  }
  if (setup.adapter === 'redis-adapter') {
    const { createAdapter } = await import('@socket.io/redis-adapter')
    const pub = connect()
    const sub = pub.duplicate()
    connections.push(sub)
    io.adapter(createAdapter(pub, sub))
  } else if (setup.adapter === 'redis-streams-adapter') {
    const { createAdapter } = await import('@socket.io/redis-streams-adapter')
    io.adapter(createAdapter(connect(), { maxLen: setup.maxLen }))
  } else {
    throw new Error(`unknown socket.io adapter ${setup.adapter}`)
  }
  io.on('connection', (socket) => { socket.join(String(socket.handshake.query.topic)) })
  await new Promise((resolve) => http.listen(0, host, resolve))
  return {
    port: http.address().port,
    publish: (topic, text) => io.to(topic).emit('m', text),
    async close () {
      await new Promise((resolve) => io.close(() => resolve()))
      for (const redis of connections) redis.disconnect()
    }
  }
}

// The parent gone (crashed, interrupted): nothing left to serve.
process.on('disconnect', () => process.exit(0))

try {
  serve(setup.server === 'socket.io' ? await socketIo() : await fastifyWss())
} catch (err) {
  process.send({ error: err.message }, () => process.exit(0))
}

function serve (node) {
  process.on('message', async (message) => {
    if (message.cmd === 'publish') {
      const { kind, seq, topics } = message
      const tag = kind + setup.index
      for (let i = 0; i < topics.length; i++) node.publish(topics[i], `${tag} ${seq + i} ${micros()} ${pad}`)
    } else if (message.cmd === 'cpu') {
      process.send({ id: message.id, cpu: process.cpuUsage() })
    } else if (message.cmd === 'exit') {
      // a Redis client blocked in XREAD may hold the loop: bounded
      const timer = setTimeout(() => process.exit(0), 2000)
      await node.close().catch(() => {})
      clearTimeout(timer)
      process.exit(0)
    }
  })
  process.send({ port: node.port })
}

// Cluster benchmark: publish latency and deliveries/s of `wss.publish`,
// three nodes over Redis (Pub/Sub, and Streams with `durable`) against one
// node in memory.
//   npm run build && node bench/cluster.js
//   CLIENTS=60 SECONDS=4 REDIS_URL=redis://... node bench/cluster.js
// (`npm run bench:cluster` runs bench/scale.js: three nodes beside socket.io.)
// Without REDIS_URL it starts its own redis-server (from the PATH) on a free port.
//
// Each node is a child process (`node bench/cluster.js node [redisUrl [durable]]`) with
// fastify-wss; every client connection subscribes to the topic 'bench'. The
// clients live in this process, spread evenly over the nodes. Node A stamps
// each message with process.hrtime (CLOCK_MONOTONIC, shared by the processes
// of one machine); a client records its arrival time. Two phases per setup:
//   latency     one message at a time: the next is published once every client has the previous
//   throughput  batches of 100 messages, the next batch once every client has the previous one
import { fork, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { cpus } from 'node:os'

const role = process.argv[2]
if (role === 'node') await runNode(process.argv[3], process.argv[4] === 'durable')
else await main()

/** A node: Fastify + fastify-wss (+ the Redis adapter), driven over IPC. */
async function runNode (redisUrl, durable) {
  const { default: Fastify } = await import('fastify')
  const { wssPlugin } = await import('fastify-wss')
  const adapter = redisUrl === undefined
    ? undefined
    : (await import('fastify-wss/redis')).redisAdapter({ url: redisUrl, durable: durable ? { maxLen: 10_000 } : undefined })
  const app = Fastify()
  await app.register(wssPlugin, {
    path: '/',
    adapter,
    heartbeat: false,
    handler: {
      onConnection: () => ({ onOpen (ws) { ws.subscribe('bench') }, onMessage () {} }),
      onError (_wss, event) { console.error('node error', event.errors[0].message) }
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const pad = 'x'.repeat(64)
  process.on('message', async (message) => {
    if (message.cmd === 'publish') {
      for (let seq = message.from; seq < message.from + message.count; seq++) {
        app.wss.publish('bench', `${seq} ${process.hrtime.bigint()} ${pad}`)
      }
    } else if (message.cmd === 'exit') {
      await app.close()
      process.disconnect()
    }
  })
  process.send({ port: app.server.address().port })
}

async function main () {
  const clientsPerNode = Math.ceil(Number(process.env.CLIENTS ?? 60) / 3)
  const seconds = Number(process.env.SECONDS ?? 4)
  const { default: WebSocket } = await import('ws')
  const { Redis } = await import('ioredis')

  let redisUrl = process.env.REDIS_URL
  let redisServer
  if (redisUrl === undefined) {
    const port = await freePort()
    redisServer = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    redisServer.on('error', (err) => {
      console.error(`cannot start redis-server (${err.message}): install it, or set REDIS_URL`)
      process.exit(1)
    })
    redisUrl = `redis://127.0.0.1:${port}`
  }
  const admin = new Redis(redisUrl, { retryStrategy: (n) => (n > 100 ? null : 20) })
  admin.on('error', () => {}) // while a fresh redis-server starts
  await admin.ping()

  console.log(`${cpus().length} × ${cpus()[0].model}, Node.js ${process.version}, ${(await admin.info('server')).match(/redis_version:(\S+)/)[1]} redis`)
  console.log(`${clientsPerNode * 3} clients, ${seconds} s per phase\n`)

  const results = []
  for (const setup of [
    { name: 'one node, in memory', nodes: 1, redis: false },
    { name: 'three nodes over Redis', nodes: 3, redis: true },
    { name: 'three nodes over Redis Streams (durable)', nodes: 3, redis: true, durable: true }
  ]) {
    results.push({ setup: setup.name, ...await measure(setup) })
  }
  await admin.quit()
  redisServer?.kill()

  console.log('| setup | clients | latency p50 | latency p99 | throughput: deliveries/s | latency p50 / p99 under throughput |')
  console.log('| --- | --- | --- | --- | --- | --- |')
  for (const r of results) {
    console.log(`| ${r.setup} | ${r.clients} | ${ms(r.latency.p50)} | ${ms(r.latency.p99)} | ${Math.round(r.rate).toLocaleString('en-US')} | ${ms(r.loaded.p50)} / ${ms(r.loaded.p99)} |`)
  }

  async function measure ({ nodes: count, redis, durable }) {
    const nodes = []
    for (let i = 0; i < count; i++) {
      const child = fork(new URL(import.meta.url), redis ? ['node', redisUrl, durable ? 'durable' : 'pubsub'] : ['node'])
      const [{ port }] = await once(child, 'message')
      nodes.push({ child, port })
    }
    const perNode = clientsPerNode * 3 / count
    const clients = []
    let arrivals = 0
    let latencies = []
    let onArrival
    const reached = new Set()
    for (const { port } of nodes) {
      for (let i = 0; i < perNode; i++) {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false })
        ws.on('message', (data) => {
          const now = process.hrtime.bigint()
          const text = data.toString()
          const space = text.indexOf(' ')
          const stamp = BigInt(text.slice(space + 1, text.indexOf(' ', space + 1)))
          latencies.push(Number(now - stamp) / 1e6)
          arrivals++
          reached.add(ws)
          onArrival?.()
        })
        await once(ws, 'open')
        clients.push(ws)
      }
    }
    const total = clients.length
    const publisher = nodes[0].child
    let seq = 0
    if (redis) {
      // every node reads the topic once a message of node A reaches all clients; then the stragglers arrive
      while (reached.size !== total) {
        publisher.send({ cmd: 'publish', from: seq++, count: 1 })
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      for (let before = -1; before !== arrivals;) {
        before = arrivals
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
    /** Publishes `batch` messages from node A and waits until every client has all of them. */
    const round = async (batch) => {
      const expected = arrivals + batch * total
      const done = new Promise((resolve) => { onArrival = () => { if (arrivals === expected) resolve() } })
      publisher.send({ cmd: 'publish', from: seq, count: batch })
      seq += batch
      await done
    }
    const phase = async (batch) => {
      for (let i = 0; i < 20; i++) await round(batch) // warm-up
      latencies = []
      const startArrivals = arrivals
      const start = process.hrtime.bigint()
      const end = start + BigInt(seconds * 1e9)
      while (process.hrtime.bigint() < end) await round(batch)
      const elapsed = Number(process.hrtime.bigint() - start) / 1e9
      return { rate: (arrivals - startArrivals) / elapsed, ...percentiles(latencies) }
    }
    const latency = await phase(1)
    const loaded = await phase(100)

    for (const ws of clients) ws.terminate()
    for (const { child } of nodes) {
      child.send({ cmd: 'exit' })
      await once(child, 'exit')
    }
    return { clients: total, latency, rate: loaded.rate, loaded }
  }
}

function percentiles (values) {
  const sorted = Float64Array.from(values).sort()
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
  return { p50: at(0.5), p99: at(0.99) }
}

function ms (value) {
  return `${value.toFixed(2)} ms`
}

async function freePort () {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  return port
}

// A live dashboard: every second the server publishes a few figures of its
// own process to the topic 'metrics'; the page subscribes with
// { "subscribe": "metrics" } and draws them. The WebSocket server's counters
// (wss.stats()) are served at /metrics in the Prometheus text format, and
// the page scrapes a few of them every second. Run: npm run build && node
// example/dashboard/server.js, then open http://127.0.0.1:3000/ (PORT, HOST).
import { readFile } from 'node:fs/promises'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import Fastify from 'fastify'
import wssPlugin from 'fastify-wss'
import client from 'prom-client'
import { metricsRoute, wssMetrics } from './metrics.js'

const TOPICS = ['metrics']
const MiB = 1024 * 1024

class DashboardConnection {
  constructor (server) {
    this.server = server
  }

  onMessage (ws, { data }) {
    if (TOPICS.includes(data?.subscribe)) {
      ws.subscribe(data.subscribe)
      if (this.server.latest !== undefined) ws.send(this.server.latest)
    } else if (TOPICS.includes(data?.unsubscribe)) {
      ws.unsubscribe(data.unsubscribe)
    } else {
      ws.send({ type: 'error', text: `Send { "subscribe": topic } with a topic of ${TOPICS.join(', ')}.` })
    }
  }
}

class DashboardServer {
  tick = 0
  latest = undefined
  delay = monitorEventLoopDelay({ resolution: 10 })

  onConnection () {
    return new DashboardConnection(this)
  }

  onOpen (wss) {
    this.delay.enable()
    this.timer = setInterval(() => this.publish(wss), 1000)
  }

  onTerminate () {
    clearInterval(this.timer)
    this.delay.disable()
  }

  publish (wss) {
    const memory = process.memoryUsage()
    this.latest = {
      type: 'metrics',
      at: new Date().toISOString(),
      tick: ++this.tick,
      clients: wss.connections.length,
      heapUsed: memory.heapUsed / MiB,
      rss: memory.rss / MiB,
      loopDelay: this.delay.percentile(99) / 1e6
    }
    this.delay.reset()
    wss.publish('metrics', this.latest)
  }
}

const page = await readFile(new URL('index.html', import.meta.url))
const app = Fastify({ logger: true })

await app.register(wssPlugin, {
  handler: new DashboardServer(),
  path: '/live',
  dataType: 'object',
  maxPayload: 1024
})
app.get('/', (request, reply) => reply.type('text/html; charset=utf-8').send(page))

const registry = new client.Registry()
client.collectDefaultMetrics({ register: registry }) // the process: CPU, memory, event loop, GC
wssMetrics(app.wss, registry)
metricsRoute(app, registry)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => app.close())
}
await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })

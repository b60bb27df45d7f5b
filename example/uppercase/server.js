// The 4D sample: every message comes back in uppercase.
// Run: npm run build && node example/uppercase/server.js
import Fastify from 'fastify'
import wssPlugin from 'fastify-wss'

class UppercaseConnection {
  onMessage (ws, event) {
    ws.send(event.data.toUpperCase())
  }
}

class UppercaseServer {
  onConnection () {
    return new UppercaseConnection()
  }
}

const app = Fastify({ logger: true })
await app.register(wssPlugin, { handler: new UppercaseServer(), path: '/upper' })
await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })

// The 4D chat sample: a welcome message, "New client connected", every message
// to the others, "Client disconnected". `npm start` runs it on 127.0.0.1:3000
// (PORT and HOST change that); open http://127.0.0.1:3000/ in two tabs.
import { readFile } from 'node:fs/promises'
import Fastify from 'fastify'
import wssPlugin from 'fastify-wss'

class ChatConnection {
  onOpen (ws) {
    ws.send('Welcome on the chat!')
    this.broadcast(ws, 'New client connected')
  }

  onMessage (ws, event) {
    this.broadcast(ws, event.data)
  }

  onTerminate (ws) {
    this.broadcast(ws, 'Client disconnected')
  }

  // Sends to every other client of the server.
  broadcast (ws, message) {
    for (const client of ws.wss.connections) {
      if (client.id !== ws.id) client.send(message)
    }
  }
}

class ChatServer {
  onConnection () {
    return new ChatConnection()
  }

  onOpen () {
    app.log.info('*** Server started')
  }

  onTerminate () {
    app.log.info('*** Server closed')
  }

  onError (wss, event) {
    app.log.error('!!! Server error: ' + event.errors[0].message)
  }
}

const page = await readFile(new URL('index.html', import.meta.url))

const app = Fastify({ logger: true })
await app.register(wssPlugin, { handler: new ChatServer(), path: '/chat' })
app.get('/', (request, reply) => reply.type('text/html').send(page))

await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => app.close())
}

// The chat example: `npm start`, then open http://127.0.0.1:3000/ in two tabs
// (PORT and HOST change the address). The protocol, in JSON objects:
//   client → server  { type: 'join', name }, then { type: 'message', text }
//   server → client  { type: 'welcome' | 'join' | 'message' | 'leave' | 'error', name, text, at }
import { readFile } from 'node:fs/promises'
import Fastify from 'fastify'
import wssPlugin from 'fastify-wss'
import { ChatServer, schema } from './handlers.js'

const page = await readFile(new URL('index.html', import.meta.url))
// requestTimeout: a client that sends its headers slowly is dropped after 10 s.
// The Ajv options apply to the chat's schema too: a failure names the branch
// of the `type` union that was meant, and a number is not taken for a string.
const app = Fastify({
  logger: true,
  requestTimeout: 10_000,
  ajv: { customOptions: { discriminator: true, coerceTypes: false } }
})

// With REDIS_URL, several chat servers share their rooms through Redis (ioredis needed then only).
const adapter = process.env.REDIS_URL
  ? (await import('fastify-wss/redis')).redisAdapter({ url: process.env.REDIS_URL })
  : undefined

await app.register(wssPlugin, {
  handler: new ChatServer(app.log),
  path: '/chat',
  dataType: 'object',
  schema,
  maxPayload: 4096,
  // a person types a few messages a second; a script that sends more is paced
  rateLimit: { max: 20, timeWindow: 1000 },
  adapter
})
app.get('/', (request, reply) => reply.type('text/html; charset=utf-8').send(page))

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => app.close())
}
await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })

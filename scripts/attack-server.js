// The server under attack, in its own process, so that its RSS is its own.
// Started by scripts/attack.js:
//
//   node --max-old-space-size=1536 scripts/attack-server.js <variant> '<setup JSON>'
//
// variant: fastify-wss | ws | fastify-websocket. setup: { handler, dataType,
// logger, options } where handler is 'echo' (send the message back), 'slow'
// (an async onMessage that answers after 1 s) or 'reply' (answer every
// message with a fresh REPLY_BYTES payload), and options holds the plugin
// options of the attack (fastify-wss only; the others keep their defaults
// but for perMessageDeflate).
//
// A connection whose URL has `canary` in its query always gets the plain
// echo, so the canary's latency is the server's, not the slow handler's.
// Over IPC it sends { ready, port, maxPayload } once listening, then
// { rss } every 50 ms. An uncaught exception or unhandled rejection is
// written to stderr and ends the process with code 70: it is a crash.
import { setTimeout as sleep } from 'node:timers/promises'

const [variant, setupJson = '{}'] = process.argv.slice(2)
const setup = JSON.parse(setupJson)
const { handler = 'echo', dataType = 'text', logger = false, options = {} } = setup
const host = '127.0.0.1'
const SLOW_MS = 1000
const REPLY_BYTES = 256 * 1024

function crash (kind, err) {
  process.stderr.write(`attack-server: ${kind}: ${err?.stack ?? err}\n`)
  process.exit(70)
}
process.on('uncaughtException', (err) => crash('uncaughtException', err))
process.on('unhandledRejection', (err) => crash('unhandledRejection', err))
// The attack script is gone: so is this server.
process.on('disconnect', () => process.exit(0))

/** A fresh payload per reply, as an application building its answers would have. */
const reply = () => 'r'.repeat(REPLY_BYTES)
const isCanary = (url) => /[?&]canary\b/.test(url ?? '')

const variants = {
  async 'fastify-wss' () {
    const { default: Fastify } = await import('fastify')
    const { default: wssPlugin, defaults } = await import('fastify-wss')
    const echo = { onMessage (ws, event) { ws.send(event.data) } }
    const attacked = {
      echo,
      slow: {
        async onMessage (ws, event) {
          await sleep(SLOW_MS)
          ws.send(event.data)
        }
      },
      reply: { onMessage (ws) { ws.send(reply()) } }
    }[handler]
    const app = Fastify({ logger })
    await app.register(wssPlugin, {
      ...options,
      dataType,
      path: '/',
      handler: {
        onConnection: (_wss, event) => isCanary(event.request.url) ? echo : attacked
      }
    })
    await app.listen({ port: 0, host })
    return { port: app.server.address().port, maxPayload: options.maxPayload ?? defaults.maxPayload }
  },

  async ws () {
    const { WebSocketServer } = await import('ws')
    const wss = new WebSocketServer({ port: 0, host, perMessageDeflate: options.perMessageDeflate ?? false })
    wss.on('connection', (socket, request) => listen(socket, isCanary(request.url) ? 'echo' : handler))
    await new Promise((resolve) => wss.once('listening', resolve))
    return { port: wss.address().port, maxPayload: wss.options.maxPayload }
  },

  async 'fastify-websocket' () {
    const { default: Fastify } = await import('fastify')
    const { default: websocket } = await import('@fastify/websocket')
    const app = Fastify({ logger })
    await app.register(websocket, { options: { perMessageDeflate: options.perMessageDeflate ?? false } })
    app.get('/', { websocket: true }, (socket, request) => {
      listen(socket, isCanary(request.url) ? 'echo' : handler, request.log)
    })
    await app.listen({ port: 0, host })
    return { port: app.server.address().port, maxPayload: app.websocketServer.options.maxPayload }
  }
}

/**
 * The handler a ws or @fastify/websocket application writes by hand: the
 * same work as fastify-wss's, with JSON parsed and encoded under 'object',
 * errors caught (and logged when there is a logger).
 */
function listen (socket, kind, log) {
  socket.on('error', () => {})
  const decode = (data) => {
    if (dataType !== 'object') return data
    try {
      return JSON.parse(data.toString())
    } catch (err) {
      log?.error({ err }, 'invalid JSON')
      return undefined
    }
  }
  const send = (value) => {
    if (socket.readyState !== 1) return
    try {
      socket.send(dataType === 'object' ? JSON.stringify(value) : value)
    } catch (err) {
      log?.error({ err }, 'cannot send')
    }
  }
  socket.on('message', async (data, isBinary) => {
    if (kind === 'reply') return send(reply())
    const value = decode(isBinary || dataType === 'object' ? data : data.toString())
    if (value === undefined) return
    if (kind === 'slow') await sleep(SLOW_MS)
    send(value)
  })
}

const make = variants[variant]
if (make === undefined) crash('setup', new Error(`unknown variant ${variant}`))
const { port, maxPayload } = await make()
process.send({ ready: true, port, maxPayload })
setInterval(() => {
  if (process.connected) process.send({ rss: process.memoryUsage.rss() })
}, 50)

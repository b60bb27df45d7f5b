/// <reference types="@fastify/websocket" preserve="true" />
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, FastifySchema } from 'fastify'
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { DataType } from './codec.js'
import { WssAlreadyRegisteredError } from './errors.js'
import { resolveOptions, type WssPluginOptions } from './options.js'
import { WebSocketServer } from './server.js'

const kSocket = Symbol('fastify-wss.socket')
const kHead = Symbol('fastify-wss.head')

interface UpgradeRequest extends IncomingMessage {
  [kSocket]?: Duplex
  [kHead]?: Buffer
}

function destroyOnTimeout (this: Socket): void {
  this.destroy()
}

/** HTTP servers on which a `@fastify/websocket` registered by this plugin already dispatches upgrades. */
const dispatching = new WeakSet<object>()

const plugin: FastifyPluginAsync<WssPluginOptions> = async function fastifyWss (fastify, opts) {
  if (fastify.hasDecorator('wss')) throw new WssAlreadyRegisteredError()
  const options = resolveOptions(opts)

  // @fastify/websocket routes every upgrade request through Fastify, so the
  // context's hooks run before onConnection. One registration per HTTP server:
  // a second one would route each upgrade twice.
  if (!fastify.hasDecorator('websocketServer') && !dispatching.has(fastify.server)) {
    dispatching.add(fastify.server)
    await fastify.register(websocket)
  }

  // Keep the upgrade's socket and first packet where the route can find them.
  // Prepended, so it runs before the listener that starts the routing.
  const onUpgrade = (req: UpgradeRequest, socket: Duplex, head: Buffer): void => {
    req[kSocket] = socket
    req[kHead] = head
    // Node no longer reads an upgrade socket, so it would never notice a
    // client that left, nor would anyone close it after an HTTP answer from a
    // context this plugin has no hooks in (a 404). The upgrade itself clears
    // this timer (ws sets the socket's timeout to 0).
    if (typeof (socket as Socket).setTimeout === 'function') {
      (socket as Socket).setTimeout(options.handshakeTimeout, destroyOnTimeout)
    }
  }
  fastify.server.prependListener('upgrade', onUpgrade)

  const server = new WebSocketServer(options, fastify.log)
  fastify.decorate('wss', server)

  fastify.route({
    method: 'GET',
    url: options.path ?? '/*',
    exposeHeadRoute: false,
    // hidden from API docs generators, as @fastify/websocket does for its routes
    schema: { hide: true } as FastifySchema,
    // Route-level, so it runs after the context's own hooks (auth, rate limit).
    async preHandler (request, reply) {
      const raw = request.raw as UpgradeRequest
      const socket = raw[kSocket]
      if (socket === undefined) return
      await server._admit(request, reply, socket, raw[kHead] as Buffer)
    },
    // An upgrade refused with an HTTP response: nothing more will be read from it.
    onResponse (request, _reply, done) {
      (request.raw as UpgradeRequest)[kSocket]?.destroy()
      done()
    },
    // A plain GET on the path is not a WebSocket: the app's 404.
    handler (_request: FastifyRequest, reply: FastifyReply) {
      reply.callNotFound()
    }
  })

  fastify.addHook('onReady', async () => server._start())
  fastify.addHook('preClose', async () => server.terminate())
  fastify.addHook('onClose', async () => {
    fastify.server.removeListener('upgrade', onUpgrade)
  })
}

/**
 * The fastify-wss plugin: the 4D WebSocketServer API on a Fastify route.
 * @example
 * await app.register(wssPlugin, { handler: new ChatServer(), path: '/chat', dataType: 'object' })
 */
export const wssPlugin = fp(plugin, { fastify: '5.x', name: 'fastify-wss' })
export default wssPlugin

export { WebSocketServer, type SendOptions } from './server.js'
export { WebSocketConnection, type ConnectionStatus, type TerminateOptions } from './connection.js'
export { defaults, type WssPluginOptions, type AllowedOrigins } from './options.js'
export type { DataType, MessageData } from './codec.js'
export type { WssAdapter, AdapterNode, ClusterMessage } from './adapter.js'
export {
  ErrCode,
  componentSignature,
  WssInvalidOptionError,
  WssAlreadyRegisteredError,
  WssConnectionRefusedError,
  WssOriginNotAllowedError,
  WssUnavailableError,
  WssNotWebSocketError,
  WssInvalidConnectionHandlerError,
  WssCallbackError,
  WssInvalidJsonError,
  WssNotSerializableError,
  WssInvalidCloseCodeError,
  WssCloseMessageTooLongError,
  WssInvalidTopicError,
  WssAdapterError,
  type WssErrorEntry
} from './errors.js'
export type {
  ConnectionHandler,
  ConnectionRequest,
  ConnectionEvent,
  DrainEvent,
  ErrorEvent,
  MessageEvent,
  OpenEvent,
  ServerErrorEvent,
  ServerTerminateEvent,
  TerminateEvent,
  WSSHandler
} from './types.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The WebSocket server of this context (fastify-wss). */
    wss: WebSocketServer<DataType>
  }
}

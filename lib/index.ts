/// <reference types="@fastify/websocket" preserve="true" />
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, FastifySchema } from 'fastify'
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { DataType } from './codec.js'
import { WssAlreadyRegisteredError } from './errors.js'
import { resolveOptions, type WssPluginOptions } from './options.js'
import { WebSocketServer } from './server.js'
import { Upgrades } from './upgrades.js'

const plugin: FastifyPluginAsync<WssPluginOptions> = async function fastifyWss (fastify, opts) {
  if (fastify.hasDecorator('wss')) throw new WssAlreadyRegisteredError()
  const options = resolveOptions(opts)

  // @fastify/websocket routes every upgrade request through Fastify, so the
  // context's hooks run before onConnection. One registration per HTTP server:
  // a second one would route each upgrade twice.
  const upgrades = Upgrades.of(fastify.server)
  if (!fastify.hasDecorator('websocketServer') && !upgrades.dispatching) {
    upgrades.dispatching = true
    await fastify.register(websocket)
  }
  // The route Fastify declares below, prefix included: it names the server's cluster channels.
  const server = new WebSocketServer(options, fastify.log, upgrades, fastify.prefix + (options.path ?? '/*'))
  fastify.decorate('wss', server)

  fastify.route({
    method: 'GET',
    url: options.path ?? '/*',
    exposeHeadRoute: false,
    // hidden from API docs generators, as @fastify/websocket does for its routes
    schema: { hide: true } as FastifySchema,
    // Route-level, so it runs after the context's own hooks (auth, rate limit).
    preHandler (request, reply, done) {
      const socket = upgrades.socket(request.raw)
      if (socket === undefined) return done()
      server._admit(request, reply, socket, upgrades.head(request.raw), done)
    },
    // An upgrade refused with an HTTP response: nothing more will be read from it.
    onResponse (request, _reply, done) {
      const socket = upgrades.socket(request.raw)
      if (socket !== undefined) {
        upgrades.taken(socket)
        socket.destroy()
      }
      done()
    },
    // A plain GET on the path is not a WebSocket: the app's 404.
    handler (_request: FastifyRequest, reply: FastifyReply) {
      reply.callNotFound()
    }
  })

  fastify.addHook('onReady', async () => server._start())
  fastify.addHook('preClose', async () => server.terminate())
  upgrades.join(options.handshakeTimeout)
  fastify.addHook('onClose', async () => {
    upgrades.leave(options.handshakeTimeout)
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

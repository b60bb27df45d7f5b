/// <reference types="@fastify/websocket" preserve="true" />
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  FastifySchema,
  FastifyTypeProvider,
  FastifyTypeProviderDefault,
  RawServerBase,
  RawServerDefault,
  RegisterOptions,
  RouteOptions
} from 'fastify'
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { DataType, PoisoningAction } from './codec.js'
import { WssAlreadyRegisteredError, WssInvalidOptionError } from './errors.js'
import { resolveOptions, type WssPluginOptions } from './options.js'
import { compileSchemas, type MessageSchemas } from './schema.js'
import { WebSocketServer } from './server.js'
import { Upgrades } from './upgrades.js'

const kDeclaredWebSocket = Symbol('fastify-wss.declared-websocket')
const kAdmission = Symbol('fastify-wss.admission')

const plugin: FastifyPluginAsync<WssPluginOptions> = async function fastifyWss (fastify, opts) {
  if (fastify.hasDecorator('wss')) throw new WssAlreadyRegisteredError()
  const options = resolveOptions(opts)
  checkDrain(options.shutdown.spread, options.closeTimeout, fastify.initialConfig.pluginTimeout)
  const upgrades = Upgrades.of(fastify.server)
  if (upgrades.dispatch === undefined) await takeUpgrades(fastify, upgrades)
  if (fastify.hasDecorator('websocketServer')) guardWebSocketRoutes(fastify)

  const { onProtoPoisoning, onConstructorPoisoning } = fastify.initialConfig
  // The route Fastify declares below, prefix included: it names the server's cluster channels.
  const url = options.path ?? '/*'
  const server = new WebSocketServer(options, fastify.log, upgrades, fastify.prefix + url, {
    protoAction: onProtoPoisoning as PoisoningAction,
    constructorAction: onConstructorPoisoning as PoisoningAction
  })
  fastify.decorate('wss', server)

  // Admission is the route's handler: after the hooks of the context and of
  // the route (auth, rate limit, validation), and inside Fastify's tracing of
  // the handler (tracing:fastify.request.handler), as on any route.
  function admission (request: FastifyRequest, reply: FastifyReply): void {
    const socket = upgrades.socket(request.raw)
    // A plain GET on the path is not a WebSocket: the app's 404.
    if (socket === undefined) {
      reply.callNotFound()
      return
    }
    server._admit(request, reply, socket, upgrades.head(request.raw), (error) => {
      if (error !== undefined) {
        reply.send(error)
      } else if (!reply.sent) {
        // the client left while onConnection ran: nobody to answer
        reply.hijack()
        socket.destroy()
      }
    })
  }
  // @fastify/websocket wraps the handler of every GET route of its scope to
  // upgrade with its own server: the route of the plugin keeps its own.
  fastify.addHook('onRoute', (routeOptions) => {
    const own = (routeOptions as { [kAdmission]?: typeof admission })[kAdmission]
    if (own !== undefined) routeOptions.handler = own
  })

  const { route } = options
  const declared: RouteOptions = {
    ...route,
    method: 'GET',
    url,
    exposeHeadRoute: false,
    // hidden from API docs generators, as @fastify/websocket does for its routes
    schema: { hide: true, ...route.schema } as FastifySchema,
    // An upgrade answered over HTTP instead of 101, whatever refused it: a hook, a schema, the server.
    onSend: [...hooks(route.onSend), function refused (request, reply, payload, done) {
      if (upgrades.socket(request.raw) !== undefined) server._refused(request, reply.statusCode)
      done(null, payload)
    }],
    handler: admission
  }
  fastify.route(Object.assign(declared, { [kAdmission]: admission }))

  upgrades.servers.add(server)
  fastify.addHook('onReady', async () => {
    if (options.schema !== undefined) {
      const { check, serialize } = compileSchemas(fastify, options.schema, fastify.prefix + url)
      server._check = check
      server._serialize = serialize
    }
    await server._start()
  })
  // Every server on the app closes at once: their shutdown deadlines do not add up.
  fastify.addHook('preClose', async () => {
    await upgrades.terminateAll()
    server._closeHandshakes()
  })
  upgrades.join(options.handshakeTimeout)
  fastify.addHook('onClose', async () => {
    upgrades.servers.delete(server)
    upgrades.leave(options.handshakeTimeout)
  })
}

/**
 * The first fastify-wss server on an HTTP server decides how upgrades are
 * routed: through `@fastify/websocket`'s dispatch (so that the app's own
 * `{ websocket: true }` routes work), called from the plugin's one
 * `upgrade` listener once the handshake was checked, never by the HTTP
 * server directly. When the app has no `@fastify/websocket`, the plugin
 * registers it, listening to a private emitter where `injectWS` sends its
 * requests too.
 */
async function takeUpgrades (fastify: FastifyInstance, upgrades: Upgrades): Promise<void> {
  if (!fastify.hasDecorator('websocketServer')) {
    await fastify.register(websocket, { options: { server: upgrades.injected } as never })
  }
  upgrades.dispatch = upgrades.adopt()
  // On the root too, so that tests reach every server from the app they hold.
  const root = rootOf(fastify)
  if (!root.hasDecorator('injectWS')) root.decorate('injectWS', fastify.injectWS)
}

/**
 * Fastify bounds the whole of `app.close()` up to the HTTP server's close,
 * preClose hooks included, by its `pluginTimeout`: a drain spread over that
 * long makes `app.close()` reject, so it is refused at register.
 */
function checkDrain (spread: number, closeTimeout: number, pluginTimeout: number | undefined): void {
  if (spread === 0 || pluginTimeout === undefined || pluginTimeout === 0 || spread + closeTimeout < pluginTimeout) return
  throw new WssInvalidOptionError('shutdown.spread',
    `plus closeTimeout (${closeTimeout} ms) must stay under Fastify's pluginTimeout (${pluginTimeout} ms), which bounds app.close(): ` +
    `create the app with Fastify({ pluginTimeout }) above spread + closeTimeout + shutdownTimeout, got ${spread}`)
}

/** A route hook option as an array: none, one, or several. */
function hooks<T> (option: T | T[] | undefined): T[] {
  return option === undefined ? [] : Array.isArray(option) ? option : [option]
}

/** The root instance: every context is made with `Object.create` of its parent. */
function rootOf (fastify: FastifyInstance): FastifyInstance {
  let root = fastify
  while (Object.getPrototypeOf(root) !== Object.prototype) root = Object.getPrototypeOf(root)
  return root
}

/**
 * `@fastify/websocket` upgrades any GET route of its scope, WebSocket route
 * or not, with its own limits and without onConnection. Only the routes
 * declared with `{ websocket: true }` (or a `wsHandler`) after fastify-wss,
 * in its context or below, are let through; any other upgrade it would
 * complete is answered 404 and closed.
 */
function guardWebSocketRoutes (fastify: FastifyInstance): void {
  fastify.addHook('onRoute', (route) => {
    if ((route as { websocket?: boolean }).websocket !== true && (route as { wsHandler?: unknown }).wsHandler === undefined) return
    const mark = (request: FastifyRequest, _reply: FastifyReply, done: () => void): void => {
      (request.raw as { [kDeclaredWebSocket]?: boolean })[kDeclaredWebSocket] = true
      done()
    }
    route.onRequest = route.onRequest === undefined ? [mark] : [...[route.onRequest].flat(), mark]
  })
  const wss = fastify.websocketServer as { handleUpgrade: (...args: any[]) => void, [kDeclaredWebSocket]?: boolean }
  if (wss[kDeclaredWebSocket] === true) return
  wss[kDeclaredWebSocket] = true
  const handleUpgrade = wss.handleUpgrade
  wss.handleUpgrade = function (req: IncomingMessage & { [kDeclaredWebSocket]?: boolean }, socket: Duplex, ...rest: unknown[]) {
    if (req[kDeclaredWebSocket] === true) return handleUpgrade.call(this, req, socket, ...rest)
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
  }
}

/**
 * The fastify-wss plugin: the 4D WebSocketServer API on a Fastify route.
 * @example
 * await app.register(wssPlugin, { handler: new ChatServer(), path: '/chat', dataType: 'object' })
 */
export const wssPlugin = fp(plugin, { fastify: '5.x', name: 'fastify-wss' }) as unknown as WssPlugin

declare const kWssPlugin: unique symbol

/**
 * The type of the plugin. `register(wssPlugin, options)` infers the types
 * of the handler's messages from `dataType`, `schema` and the app's type
 * provider (see `TypesOf`), so an inline handler needs no annotation and a
 * handler class written for other messages does not compile.
 */
export interface WssPlugin {
  (instance: FastifyInstance<any, any, any, any, any>, opts: never): Promise<void>
  readonly [kWssPlugin]: true
}

/** The type provider of the instance `register` was called on. */
type ProviderOf<T> = T extends FastifyInstance<any, any, any, any, infer P> ? P : FastifyTypeProviderDefault
export default wssPlugin

export { WebSocketServer, type SendOptions } from './server.js'
export { WebSocketConnection, type ConnectionStatus, type TerminateOptions } from './connection.js'
export {
  defaults,
  type WssPluginOptions,
  type WssCommonOptions,
  type WssRouteOptions,
  type AllowedOrigins,
  type RateLimit,
  type ShutdownOptions
} from './options.js'
export type { DataType, MessageData } from './codec.js'
export type { MessageSchemas } from './schema.js'
export type { WssStats } from './stats.js'
export type { WssDiagnostics } from './diagnostics.js'
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
  WssInvalidMessageError,
  WssNotSerializableError,
  WssInvalidCloseCodeError,
  WssCloseMessageTooLongError,
  WssInvalidTopicError,
  WssInvalidShutdownError,
  WssAdapterError,
  WssRateLimitedError,
  WssMessagesDroppedError,
  WssOverloadedError,
  type WssErrorEntry
} from './errors.js'
export type {
  ConnectionHandler,
  ConnectionRequest,
  ConnectionEvent,
  DrainEvent,
  ErrorEvent,
  MessageEvent,
  MessageTypes,
  Bytes,
  TypesOf,
  PlainTypes,
  SchemaTypes,
  RouteTypes,
  RequestOf,
  OpenEvent,
  ServerErrorEvent,
  ServerTerminateEvent,
  TerminateEvent,
  WSSHandler
} from './types.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The WebSocket server of this context (fastify-wss), for any dataType:
     * its `broadcast` and `publish` take any message. The handler's
     * callbacks get it typed by the server's options.
     */
    wss: WebSocketServer<DataType>
  }

  // A merged declaration repeats the type parameters of Fastify's own, used or not.
  /* eslint-disable @typescript-eslint/no-unused-vars */
  interface FastifyRegister<
    T = void,
    RawServer extends RawServerBase = RawServerDefault,
    TypeProviderDefault extends FastifyTypeProvider = FastifyTypeProvider,
    LoggerDefault extends FastifyBaseLogger = FastifyBaseLogger
  > {
    <const D extends DataType = 'text', const S extends MessageSchemas = {}, const R extends FastifySchema = FastifySchema>(
      plugin: WssPlugin,
      opts: WssPluginOptions<D, S, ProviderOf<T>, R> & RegisterOptions
    ): T
  }
  /* eslint-enable @typescript-eslint/no-unused-vars */
}

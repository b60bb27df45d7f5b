import type { FastifyRequest, FastifySchema, FastifyTypeProvider, FastifyTypeProviderDefault } from 'fastify'
import type { MessageSchemas } from './schema.js'
import type { DataType, MessageData } from './codec.js'
import type { WssErrorEntry } from './errors.js'
import type { WebSocketConnection } from './connection.js'
import type { WebSocketServer } from './server.js'

/** The request an upgrade was made with, as `onConnection` and `ws.request` see it. */
export interface ConnectionRequest<Params = Record<string, string>, Query = Record<string, string | string[]>> {
  /** Every request header, lower-cased; a header sent several times is an array, in order. */
  headers: Record<string, string | string[]>
  /** The parsed query string; a repeated key is an array. Typed by `route.schema.querystring` under a type provider. */
  query: Query
  /** The request target exactly as in the request line, e.g. `/status?name=ryan`. */
  url: string
  /** The client IP, as Fastify's `request.ip` gives it (so `trustProxy` is honoured). */
  remoteAddress: string
  /** The route parameters of `path`. Typed by `route.schema.params` under a type provider. */
  params: Params
}

/** The request of a server's connections: its params and query typed by the route schema, when there is one. */
export type RequestOf<M> = ConnectionRequest<
  M extends { params: infer P } ? P : Record<string, string>,
  M extends { query: infer Q } ? Q : Record<string, string | string[]>
>

export interface ConnectionEvent<M extends MessageTypes = MessageTypes> {
  type: 'connection'
  request: RequestOf<M>
  /**
   * The Fastify request of the upgrade, with what the app's hooks and
   * plugins put on it (`request.user`, `request.session`, `request.log`).
   * Given for the time of `onConnection` only: keep `request` instead.
   */
  fastifyRequest: FastifyRequest
}

export interface OpenEvent {
  type: 'open'
}

/**
 * The types of a server's messages: `data`, what `onMessage` receives in
 * `event.data`; `send`, what `send`, `broadcast` and `publish` take.
 */
export interface MessageTypes {
  data: unknown
  send: unknown
}

/** Bytes, which `send` sends as they are, whatever the schemas. */
export type Bytes = ArrayBuffer | ArrayBufferView

/**
 * The message types of a server of `dataType` `D` with the schemas `S`
 * (the `schema` option) under the type provider `P` (SPEC §10), and the
 * route schema `R` (`route.schema`, typing `request.params` and `request.query`):
 * `event.data` is the type of `schema.message`, `send` takes the type of
 * `schema.send` (or bytes). Without schemas, the types of §4: a string, a
 * Buffer, or `unknown` for `'object'`; `send` takes anything.
 * @example
 * const schema = { message: Type.Object({ text: Type.String() }) }
 * class Chat implements WSSHandler<'object', TypesOf<'object', typeof schema, TypeBoxTypeProvider>> { ... }
 */
export type TypesOf<D extends DataType, S = MessageSchemas, P extends FastifyTypeProvider = FastifyTypeProviderDefault, R = FastifySchema> =
  R extends { params: unknown } | { querystring: unknown } ? MessagePart<D, S, P> & RouteTypes<R, P> : MessagePart<D, S, P>

type MessagePart<D extends DataType, S, P extends FastifyTypeProvider> =
  [D] extends ['object'] ? S extends { message: unknown } | { send: unknown } ? SchemaTypes<S, P> : PlainTypes<D> : PlainTypes<D>

/** The types of `request.params` and `request.query`, from the `route` option's schema under a type provider. */
export interface RouteTypes<R, P extends FastifyTypeProvider> {
  params: R extends { params: infer T } ? Validated<P, T> : Record<string, string>
  query: R extends { querystring: infer T } ? Validated<P, T> : Record<string, string | string[]>
}

/** The message types of §4, without schemas. */
export interface PlainTypes<D extends DataType> {
  data: MessageData<D>
  send: unknown
}

/** The message types given by schemas under a type provider. */
export interface SchemaTypes<S, P extends FastifyTypeProvider> {
  data: S extends { message: infer T } ? Validated<P, T> : unknown
  send: S extends { send: infer T } ? Serialized<P, T> | Bytes : unknown
}

/** What a type provider makes of a schema, for validation and for serialisation (as Fastify's own helpers). */
type Validated<P extends FastifyTypeProvider, T> = (P & { schema: T })['validator']
type Serialized<P extends FastifyTypeProvider, T> = (P & { schema: T })['serializer']

export interface MessageEvent<D extends DataType = DataType, M extends MessageTypes = TypesOf<D>> {
  type: 'message'
  data: M['data']
  /** Whether the message came as binary frames (else text), whatever the dataType: to answer in kind. */
  binary: boolean
}

/** The event of a connection's `onTerminate`. */
export interface TerminateEvent {
  type: 'terminate'
  /** The close code received; 1005 when the close frame had none, 1006 when none came. */
  code: number
  /** The close reason received, `undefined` when none was given. */
  reason: string | undefined
}

/** The event of the server handler's `onTerminate`. */
export interface ServerTerminateEvent {
  type: 'terminate'
}

export interface ErrorEvent {
  type: 'error'
  errors: WssErrorEntry[]
}

/** The event of the server handler's `onError`; `connection` is set for a connection's error. */
export interface ServerErrorEvent<D extends DataType = DataType, M extends MessageTypes = TypesOf<D>> extends ErrorEvent {
  connection?: WebSocketConnection<D, M>
}

export interface DrainEvent {
  type: 'drain'
}

/** What a callback may return: nothing, or a Promise the plugin waits for. */
type Awaitable<T> = T | PromiseLike<T>

/**
 * The per-connection handler that `onConnection` returns. Its methods are
 * called as methods (`this` is the handler). They are typed as function
 * properties so that a handler written for one dataType or schema does not
 * compile on a server of another.
 */
export interface ConnectionHandler<D extends DataType = 'text', M extends MessageTypes = TypesOf<D>> {
  /** Called for each message, in order, one at a time (the next waits for a returned Promise). */
  onMessage: (ws: WebSocketConnection<D, M>, event: MessageEvent<D, M>) => Awaitable<unknown>
  /** Called once the connection exists, before any `onMessage`. */
  onOpen?: (ws: WebSocketConnection<D, M>, event: OpenEvent) => Awaitable<unknown>
  /** Called exactly once, last, when the connection is closed. */
  onTerminate?: (ws: WebSocketConnection<D, M>, event: TerminateEvent) => Awaitable<unknown>
  /** Called with the errors of this connection. */
  onError?: (ws: WebSocketConnection<D, M>, event: ErrorEvent) => Awaitable<unknown>
  /** Called when `bufferedAmount` falls back under half of `maxBackpressure`. */
  onDrain?: (ws: WebSocketConnection<D, M>, event: DrainEvent) => Awaitable<unknown>
}

/** The server handler given at registration. Its methods are called as methods. */
export interface WSSHandler<D extends DataType = 'text', M extends MessageTypes = TypesOf<D>> {
  /**
   * Called before the upgrade of each request on the path: return a
   * `ConnectionHandler` to accept, `null`/`undefined` to refuse with 403,
   * or throw an error with a `statusCode` to refuse with that status.
   */
  onConnection: (wss: WebSocketServer<D, M>, event: ConnectionEvent<M>) => Awaitable<ConnectionHandler<D, M> | null | undefined>
  /** Called once, when the Fastify instance is ready. */
  onOpen?: (wss: WebSocketServer<D, M>, event: OpenEvent) => Awaitable<unknown>
  /** Called once, after every connection has been terminated. */
  onTerminate?: (wss: WebSocketServer<D, M>, event: ServerTerminateEvent) => Awaitable<unknown>
  /** Called with the errors of the server, and of connections whose handler has no `onError`. */
  onError?: (wss: WebSocketServer<D, M>, event: ServerErrorEvent<D, M>) => Awaitable<unknown>
}

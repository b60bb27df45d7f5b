import type { FastifyRequest } from 'fastify'
import type { DataType, MessageData } from './codec.js'
import type { WssErrorEntry } from './errors.js'
import type { WebSocketConnection } from './connection.js'
import type { WebSocketServer } from './server.js'

/** The request an upgrade was made with, as `onConnection` and `ws.request` see it. */
export interface ConnectionRequest {
  /** Every request header, lower-cased; a header sent several times is an array, in order. */
  headers: Record<string, string | string[]>
  /** The parsed query string; a repeated key is an array. */
  query: Record<string, string | string[]>
  /** The request target exactly as in the request line, e.g. `/status?name=ryan`. */
  url: string
  /** The client IP, as Fastify's `request.ip` gives it (so `trustProxy` is honoured). */
  remoteAddress: string
  /** The route parameters of `path`. */
  params: Record<string, string>
}

export interface ConnectionEvent {
  type: 'connection'
  request: ConnectionRequest
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

export interface MessageEvent<D extends DataType = DataType> {
  type: 'message'
  data: MessageData<D>
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
export interface ServerErrorEvent<D extends DataType = DataType> extends ErrorEvent {
  connection?: WebSocketConnection<D>
}

export interface DrainEvent {
  type: 'drain'
}

/** What a callback may return: nothing, or a Promise the plugin waits for. */
type Awaitable<T> = T | PromiseLike<T>

/**
 * The per-connection handler that `onConnection` returns. Its methods are
 * called as methods (`this` is the handler).
 */
export interface ConnectionHandler<D extends DataType = 'text'> {
  /** Called for each message, in order, one at a time (the next waits for a returned Promise). */
  onMessage (ws: WebSocketConnection<D>, event: MessageEvent<D>): Awaitable<unknown>
  /** Called once the connection exists, before any `onMessage`. */
  onOpen? (ws: WebSocketConnection<D>, event: OpenEvent): Awaitable<unknown>
  /** Called exactly once, last, when the connection is closed. */
  onTerminate? (ws: WebSocketConnection<D>, event: TerminateEvent): Awaitable<unknown>
  /** Called with the errors of this connection. */
  onError? (ws: WebSocketConnection<D>, event: ErrorEvent): Awaitable<unknown>
  /** Called when `bufferedAmount` falls back under half of `maxBackpressure`. */
  onDrain? (ws: WebSocketConnection<D>, event: DrainEvent): Awaitable<unknown>
}

/** The server handler given at registration. Its methods are called as methods. */
export interface WSSHandler<D extends DataType = 'text'> {
  /**
   * Called before the upgrade of each request on the path: return a
   * `ConnectionHandler` to accept, `null`/`undefined` to refuse with 403,
   * or throw an error with a `statusCode` to refuse with that status.
   */
  onConnection (wss: WebSocketServer<D>, event: ConnectionEvent): Awaitable<ConnectionHandler<D> | null | undefined>
  /** Called once, when the Fastify instance is ready. */
  onOpen? (wss: WebSocketServer<D>, event: OpenEvent): Awaitable<unknown>
  /** Called once, after every connection has been terminated. */
  onTerminate? (wss: WebSocketServer<D>, event: ServerTerminateEvent): Awaitable<unknown>
  /** Called with the errors of the server, and of connections whose handler has no `onError`. */
  onError? (wss: WebSocketServer<D>, event: ServerErrorEvent<D>): Awaitable<unknown>
}

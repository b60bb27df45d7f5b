import createError from '@fastify/error'
import type { FastifyErrorConstructor } from '@fastify/error'

/** The `componentSignature` of every error entry this package reports. */
export const componentSignature = 'fastify-wss'

/**
 * The stable `errCode` table of the error entries passed to `onError`.
 * 1xx: the server handler; 2xx: a connection handler; 3xx: message content;
 * 4xx: the socket and the protocol; 5xx: the cluster adapter.
 */
export const ErrCode = {
  /** `onConnection` threw or rejected with a 5xx (or a non-HTTP) error; or other code upgraded the socket meanwhile. */
  CONNECTION_FAILED: 100,
  /** `onConnection` returned an object without an `onMessage` function. */
  INVALID_CONNECTION_HANDLER: 101,
  /** The server handler's `onOpen` threw or rejected. */
  SERVER_OPEN_FAILED: 110,
  /** The server handler's `onTerminate` threw or rejected. */
  SERVER_TERMINATE_FAILED: 111,
  /** A connection handler's `onOpen` threw or rejected. */
  OPEN_FAILED: 200,
  /** A connection handler's `onMessage` threw or rejected. */
  MESSAGE_FAILED: 201,
  /** A connection handler's `onTerminate` threw or rejected. */
  TERMINATE_FAILED: 202,
  /** A connection handler's `onDrain` threw or rejected. */
  DRAIN_FAILED: 203,
  /** A message was not valid JSON under `dataType: 'object'`; it was not delivered. */
  INVALID_JSON: 300,
  /** A message did not match `schema.message`; it was not delivered. The message names each failing path. */
  INVALID_MESSAGE: 301,
  /** The peer broke the WebSocket protocol (invalid frame, invalid UTF-8, ...); `ws` closed the connection. */
  PROTOCOL_ERROR: 400,
  /** A message was larger than `maxPayload`; the connection was closed with 1009. */
  MESSAGE_TOO_BIG: 401,
  /** The underlying socket failed (reset, broken pipe, ...). */
  SOCKET_ERROR: 410,
  /** The peer sent more messages than `rateLimit` allows, with `action: 'close'`; closed with 1008. */
  RATE_LIMITED: 420,
  /** Messages still queued `closeTimeout` after the connection closed were dropped, undelivered. */
  MESSAGES_DROPPED: 421,
  /** The server held more than `maxBufferedBytes` and this connection held the most; closed with 1008. */
  OVERLOADED: 422,
  /** The cluster adapter failed (publish, subscribe, or a connection to Redis went down: once per outage). */
  ADAPTER_FAILED: 500,
  /** An outage of the cluster adapter ended; the message says how many messages could not be sent to the other nodes. */
  ADAPTER_MESSAGES_NOT_SENT: 501,
  /** Durable delivery: a node fell more than `maxLen` messages behind on a stream; the message says how many it did not deliver. It goes on from the newest. */
  ADAPTER_MESSAGES_MISSED: 502,
  /** Durable delivery: more than `maxBuffered` messages waited for Redis and the oldest are dropped (once per outage), or the adapter closed with messages waiting. */
  ADAPTER_MESSAGES_DROPPED: 503
} as const

export type ErrCodeValue = typeof ErrCode[keyof typeof ErrCode]

/**
 * The errors a client can cause at will: logged at `warn`, without a stack,
 * at most once per connection per second (SPEC §7).
 */
export const clientErrors: ReadonlySet<number> = new Set([
  ErrCode.INVALID_JSON, ErrCode.INVALID_MESSAGE, ErrCode.PROTOCOL_ERROR, ErrCode.MESSAGE_TOO_BIG,
  ErrCode.SOCKET_ERROR, ErrCode.RATE_LIMITED, ErrCode.MESSAGES_DROPPED, ErrCode.OVERLOADED
])

/** One entry of the `errors` array of an error event. */
export interface WssErrorEntry {
  errCode: number
  message: string
  componentSignature: 'fastify-wss'
  error?: Error
}

/** The last argument of a coded error's constructor that sets its `cause`. */
type Cause = { cause: unknown }

// Each class is typed explicitly, with the named type of @fastify/error:
// declarations that spell out its namespace do not resolve under every
// moduleResolution, and an inferred type can degrade to `any`.
export const WssInvalidOptionError: FastifyErrorConstructor<{ code: 'FST_WSS_INVALID_OPTION', statusCode: 500 }, [option: string, problem: string]> = createError(
  'FST_WSS_INVALID_OPTION', 'fastify-wss: option "%s" %s', 500, TypeError)
export const WssAlreadyRegisteredError: FastifyErrorConstructor<{ code: 'FST_WSS_ALREADY_REGISTERED' }, []> = createError(
  'FST_WSS_ALREADY_REGISTERED',
  'fastify-wss: this context or one of its ancestors already has a WebSocket server; register the plugin in sibling contexts for several servers')
export const WssConnectionRefusedError: FastifyErrorConstructor<{ code: 'FST_WSS_CONNECTION_REFUSED', statusCode: 403 }, []> = createError(
  'FST_WSS_CONNECTION_REFUSED', 'The WebSocket connection was refused', 403)
export const WssOriginNotAllowedError: FastifyErrorConstructor<{ code: 'FST_WSS_ORIGIN_NOT_ALLOWED', statusCode: 403 }, [origin: string]> = createError(
  'FST_WSS_ORIGIN_NOT_ALLOWED', 'Origin "%s" is not allowed', 403)
export const WssUnavailableError: FastifyErrorConstructor<{ code: 'FST_WSS_UNAVAILABLE', statusCode: 503 }, [state: string]> = createError(
  'FST_WSS_UNAVAILABLE', 'The WebSocket server %s', 503)
export const WssNotWebSocketError: FastifyErrorConstructor<{ code: 'FST_WSS_NOT_WEBSOCKET', statusCode: 400 }, []> = createError(
  'FST_WSS_NOT_WEBSOCKET', 'The upgrade request is not a WebSocket upgrade', 400)
export const WssInvalidConnectionHandlerError: FastifyErrorConstructor<{ code: 'FST_WSS_INVALID_CONNECTION_HANDLER', statusCode: 500 }, []> = createError(
  'FST_WSS_INVALID_CONNECTION_HANDLER',
  'onConnection returned an object without an onMessage function', 500)
export const WssCallbackError: FastifyErrorConstructor<{ code: 'FST_WSS_CALLBACK_ERROR' }, [message: string, options?: Cause]> = createError(
  'FST_WSS_CALLBACK_ERROR', '%s')
export const WssInvalidJsonError: FastifyErrorConstructor<{ code: 'FST_WSS_INVALID_JSON' }, [reason: string, options?: Cause]> = createError(
  'FST_WSS_INVALID_JSON', 'The message is not valid JSON: %s')
export const WssInvalidMessageError: FastifyErrorConstructor<{ code: 'FST_WSS_INVALID_MESSAGE' }, [failures: string]> = createError(
  'FST_WSS_INVALID_MESSAGE', 'The message does not match schema.message: %s')
export const WssNotSerializableError: FastifyErrorConstructor<{ code: 'FST_WSS_NOT_SERIALIZABLE', statusCode: 500 }, [reason: string, options?: Cause]> = createError(
  'FST_WSS_NOT_SERIALIZABLE', 'The message cannot be encoded as JSON: %s', 500, TypeError)
export const WssInvalidCloseCodeError: FastifyErrorConstructor<{ code: 'FST_WSS_INVALID_CLOSE_CODE', statusCode: 500 }, [code: unknown]> = createError(
  'FST_WSS_INVALID_CLOSE_CODE', 'The close code must be 1000 or an integer from 3000 to 4999, got %s', 500, RangeError)
export const WssCloseMessageTooLongError: FastifyErrorConstructor<{ code: 'FST_WSS_CLOSE_MESSAGE_TOO_LONG', statusCode: 500 }, [bytes: number]> = createError(
  'FST_WSS_CLOSE_MESSAGE_TOO_LONG', 'The close message must be a string of at most 123 UTF-8 bytes, got %s bytes', 500, RangeError)

export const WssInvalidShutdownError: FastifyErrorConstructor<{ code: 'FST_WSS_INVALID_SHUTDOWN', statusCode: 500 }, [what: string, problem: string]> = createError(
  'FST_WSS_INVALID_SHUTDOWN', 'wss.terminate(): %s %s', 500, RangeError)

export const WssRateLimitedError: FastifyErrorConstructor<{ code: 'FST_WSS_RATE_LIMITED' }, [max: number, timeWindow: number]> = createError(
  'FST_WSS_RATE_LIMITED', 'More than %s messages in %s ms')
export const WssMessagesDroppedError: FastifyErrorConstructor<{ code: 'FST_WSS_MESSAGES_DROPPED' }, [count: number]> = createError(
  'FST_WSS_MESSAGES_DROPPED', '%s messages still queued closeTimeout after the close were dropped')
export const WssOverloadedError: FastifyErrorConstructor<{ code: 'FST_WSS_OVERLOADED' }, [held: number, maxBufferedBytes: number]> = createError(
  'FST_WSS_OVERLOADED', 'The server held %s bytes, more than maxBufferedBytes (%s), and this connection held the most')

export const WssInvalidTopicError: FastifyErrorConstructor<{ code: 'FST_WSS_INVALID_TOPIC', statusCode: 500 }, [topic: string]> = createError(
  'FST_WSS_INVALID_TOPIC', 'A topic must be a non-empty string, got %s', 500, TypeError)
export const WssAdapterError: FastifyErrorConstructor<{ code: 'FST_WSS_ADAPTER_ERROR' }, [reason: string, options?: Cause]> = createError(
  'FST_WSS_ADAPTER_ERROR', 'The cluster adapter failed: %s')

/** Makes an `Error` of anything thrown, keeping an `Error` as it is. */
export function toError (value: unknown): Error {
  return value instanceof Error ? value : new WssCallbackError(String(value), { cause: value })
}

/** Builds the error entry for `errCode` and an error. */
export function errorEntry (errCode: number, error: Error): WssErrorEntry {
  return { errCode, message: error.message, componentSignature, error }
}

/** Where the guarded call path reports what a callback threw. */
export interface ErrorSink {
  _fail (errCode: number, error: unknown): void
}

type Callback = (this: unknown, a: unknown, b: unknown) => unknown

/**
 * The one path through which every user callback is called: as a method of
 * `target`, with a throw or a rejection sent to `sink._fail(errCode, error)`.
 * Returns `undefined` when the callback is absent or finished synchronously,
 * otherwise a Promise that fulfils (never rejects) once it has settled.
 */
export function invoke (target: object, fn: unknown, a: unknown, b: unknown, sink: ErrorSink, errCode: number): Promise<void> | undefined {
  if (typeof fn !== 'function') return undefined
  let result: unknown
  try {
    result = (fn as Callback).call(target, a, b)
  } catch (err) {
    sink._fail(errCode, err)
    return undefined
  }
  if (isThenable(result)) {
    return Promise.resolve(result).then(noop, (err: unknown) => sink._fail(errCode, err))
  }
  return undefined
}

/** Whether a callback's result is to be awaited: a Promise, or any object with a `then` method. */
export function isThenable<T> (value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function'
}

function noop (): void {}

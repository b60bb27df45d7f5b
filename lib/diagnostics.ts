import diagnostics from 'node:diagnostics_channel'
import type { FastifyRequest } from 'fastify'
import type { DataType } from './codec.js'
import type { WebSocketConnection } from './connection.js'
import type { WebSocketServer } from './server.js'

/**
 * The messages published on the `node:diagnostics_channel` channels of the
 * package, by channel name. Every server of the process publishes on the
 * same channels; `wss` says which one.
 * @example
 * import diagnostics from 'node:diagnostics_channel'
 * diagnostics.subscribe('fastify-wss:connection:closed', (message) => {
 *   const { connection, code, duration } = message as WssDiagnostics['fastify-wss:connection:closed']
 * })
 */
export interface WssDiagnostics<D extends DataType = DataType> {
  /** A connection was made (after the 101, before its handler's `onOpen`). */
  'fastify-wss:connection:opened': { wss: WebSocketServer<D>, connection: WebSocketConnection<D> }
  /** A connection's socket closed: the code its `onTerminate` gets, and how long it was open, in ms. */
  'fastify-wss:connection:closed': {
    wss: WebSocketServer<D>
    connection: WebSocketConnection<D>
    code: number
    reason: string | undefined
    duration: number
  }
  /** A connection was dropped because its peer read too slowly: its unsent bytes, past `maxBackpressure`. */
  'fastify-wss:connection:dropped': {
    wss: WebSocketServer<D>
    connection: WebSocketConnection<D>
    bufferedAmount: number
    maxBackpressure: number
  }
  /** An upgrade request on the server's route was answered with an HTTP `status` instead of 101. */
  'fastify-wss:handshake:refused': { wss: WebSocketServer<D>, request: FastifyRequest, status: number }
  /** A message was received: its payload as `ws` gave it, before decoding; `binary` for binary frames. */
  'fastify-wss:message:received': { wss: WebSocketServer<D>, connection: WebSocketConnection<D>, data: Buffer, binary: boolean }
  /**
   * A message was written to a connection: by `send`, or to one recipient of
   * `broadcast` / `publish` (one message per recipient). `data` is the
   * encoded payload: a string for text, bytes otherwise (a broadcast's
   * payload is a `Buffer`, with `binary` saying how it was framed).
   */
  'fastify-wss:message:sent': {
    wss: WebSocketServer<D>
    connection: WebSocketConnection<D>
    data: string | Buffer | ArrayBuffer | ArrayBufferView
    binary: boolean
  }
  /** An error was reported (to an `onError`, or the log): `connection` is `undefined` for an error of the server. */
  'fastify-wss:error': { wss: WebSocketServer<D>, connection: WebSocketConnection<D> | undefined, errCode: number, error: Error }
}

/** @internal The channels, made once per process (a channel is looked up by name). */
export const channels = {
  opened: diagnostics.channel('fastify-wss:connection:opened'),
  closed: diagnostics.channel('fastify-wss:connection:closed'),
  dropped: diagnostics.channel('fastify-wss:connection:dropped'),
  refused: diagnostics.channel('fastify-wss:handshake:refused'),
  received: diagnostics.channel('fastify-wss:message:received'),
  sent: diagnostics.channel('fastify-wss:message:sent'),
  error: diagnostics.channel('fastify-wss:error')
}

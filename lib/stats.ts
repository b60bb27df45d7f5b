import type { FastifyRequest } from 'fastify'
import type { Frame, Payload } from './codec.js'
import type { WebSocketConnection } from './connection.js'
import { channels } from './diagnostics.js'
import type { WebSocketServer } from './server.js'

/**
 * What `wss.stats()` returns: a fresh plain object of the counters of a
 * server since it was registered. The keyed counters have a key for each
 * status, close code or errCode seen at least once.
 */
export interface WssStats {
  /** Connections open now (`Connected` or `Closing`). */
  connections: number
  /** Upgrades completed (101 sent, a connection made). */
  accepted: number
  /** Upgrade requests on the server's route answered with an HTTP status instead, by status (`{ 403: 2, 503: 1 }`). */
  refused: Record<number, number>
  /** Connections closed, by the close code their `onTerminate` got (1000, 1001, 1006, ...). */
  closed: Record<number, number>
  /** Messages received from clients (each one, before decoding, validation and rate limiting). */
  messagesIn: number
  /** Messages written to connections: by `send`, and once per recipient of `broadcast` and `publish`. */
  messagesOut: number
  /** Payload bytes of the messages received (inflated size when compressed, frame headers left out). */
  bytesIn: number
  /** Payload bytes of the messages written, once per recipient (before compression, frame headers left out). */
  bytesOut: number
  /** Connections dropped because their peer read too slowly (`maxBackpressure`). */
  dropped: number
  /** Times a connection reached its `rateLimit` in a window (paused, or closed with `action: 'close'`). */
  rateLimited: number
  /** Errors reported, by errCode (`{ 300: 4, 410: 1 }`), wherever they went (an `onError`, or the log). */
  errors: Record<number, number>
}

/**
 * @internal The counters of one server, and its messages on the
 * diagnostics channels. The counters are plain integer fields incremented on
 * the paths that already run for each event, without allocating; the keyed
 * ones are Maps, moved once per connection, refusal or error, never per
 * message. A channel's message is built only when the channel has
 * subscribers.
 */
export class Meter {
  accepted = 0
  messagesIn = 0
  messagesOut = 0
  bytesIn = 0
  bytesOut = 0
  dropped = 0
  rateLimited = 0
  readonly #refused = new Map<number, number>()
  readonly #closed = new Map<number, number>()
  readonly #errors = new Map<number, number>()
  readonly #wss: WebSocketServer<any, any>

  constructor (wss: WebSocketServer<any, any>) {
    this.#wss = wss
  }

  /** A connection was made. */
  opened (connection: WebSocketConnection<any, any>): void {
    this.accepted++
    if (channels.opened.hasSubscribers) channels.opened.publish({ wss: this.#wss, connection })
  }

  /** A connection's socket closed, `openedAt` (performance.now()) after it opened. */
  closed (connection: WebSocketConnection<any, any>, code: number, reason: string | undefined, openedAt: number): void {
    count(this.#closed, code)
    if (channels.closed.hasSubscribers) {
      channels.closed.publish({ wss: this.#wss, connection, code, reason, duration: performance.now() - openedAt })
    }
  }

  /** A connection was dropped for maxBackpressure with `bufferedAmount` bytes unsent. */
  drop (connection: WebSocketConnection<any, any>, bufferedAmount: number): void {
    this.dropped++
    if (channels.dropped.hasSubscribers) {
      channels.dropped.publish({ wss: this.#wss, connection, bufferedAmount, maxBackpressure: this.#wss._maxBackpressure })
    }
  }

  /** An upgrade request was answered with `status` instead of 101. */
  refused (request: FastifyRequest, status: number): void {
    count(this.#refused, status)
    if (channels.refused.hasSubscribers) channels.refused.publish({ wss: this.#wss, request, status })
  }

  /** A message received. */
  received (connection: WebSocketConnection<any, any>, data: Buffer, binary: boolean): void {
    this.messagesIn++
    this.bytesIn += data.length
    if (channels.received.hasSubscribers) channels.received.publish({ wss: this.#wss, connection, data, binary })
  }

  /** A message written by `send`: its encoded payload. */
  sent (connection: WebSocketConnection<any, any>, data: Payload): void {
    this.messagesOut++
    const text = typeof data === 'string'
    this.bytesOut += text ? Buffer.byteLength(data) : data.byteLength
    if (channels.sent.hasSubscribers) channels.sent.publish({ wss: this.#wss, connection, data, binary: !text })
  }

  /** One frame written to `recipients` connections (broadcast, publish). */
  fannedOut (framed: Frame, recipients: number): void {
    this.messagesOut += recipients
    this.bytesOut += framed.payload.length * recipients
  }

  /** The message of one recipient of a broadcast, when `channels.sent` has subscribers. */
  fannedTo (connection: WebSocketConnection<any, any>, framed: Frame): void {
    channels.sent.publish({ wss: this.#wss, connection, data: framed.payload, binary: framed.binary })
  }

  /** An error reported, of `connection` or (`undefined`) of the server. */
  error (errCode: number, error: Error, connection: WebSocketConnection<any, any> | undefined): void {
    count(this.#errors, errCode)
    if (channels.error.hasSubscribers) channels.error.publish({ wss: this.#wss, connection, errCode, error })
  }

  /** The counters as a fresh plain object. */
  snapshot (connections: number): WssStats {
    return {
      connections,
      accepted: this.accepted,
      refused: Object.fromEntries(this.#refused),
      closed: Object.fromEntries(this.#closed),
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      dropped: this.dropped,
      rateLimited: this.rateLimited,
      errors: Object.fromEntries(this.#errors)
    }
  }
}

function count (counts: Map<number, number>, key: number): void {
  counts.set(key, (counts.get(key) ?? 0) + 1)
}

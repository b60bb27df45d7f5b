import type { Payload } from './codec.js'

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
 * @internal The counters of one server: plain integer fields incremented on
 * the paths that already run for each event, without allocating; the keyed
 * ones in Maps, moved once per connection or error, never per message.
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

  /** A message received. */
  received (data: Buffer): void {
    this.messagesIn++
    this.bytesIn += data.length
  }

  /** A message written by `send`. */
  sent (data: Payload): void {
    this.messagesOut++
    this.bytesOut += typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
  }

  /** One message of `bytes` payload bytes written to `recipients` connections (broadcast, publish). */
  fannedOut (bytes: number, recipients: number): void {
    this.messagesOut += recipients
    this.bytesOut += bytes * recipients
  }

  refused (status: number): void {
    count(this.#refused, status)
  }

  closed (code: number): void {
    count(this.#closed, code)
  }

  error (errCode: number): void {
    count(this.#errors, errCode)
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

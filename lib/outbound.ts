import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { Frame, Payload } from './codec.js'

/** The part of `ws`'s (internal) Sender that writes a ready frame. */
interface WsSender {
  _state: number
  sendFrame (list: Buffer[]): void
}

/** Whether `ws`'s Sender still has the shape `writeFrame` relies on. */
export function senderSupported (socket: WebSocket): boolean {
  const sender = (socket as unknown as { _sender?: Partial<WsSender> })._sender
  return typeof sender?.sendFrame === 'function' && sender._state === 0
}

/** The sockets written to in this tick, uncorked together at its end. */
let corked: Duplex[] = []

function uncorkAll (): void {
  const sockets = corked
  corked = []
  for (const tcp of sockets) tcp.uncork()
}

/**
 * Outbound bytes below this are not counted against maxBufferedBytes: a
 * socket's own write buffer holds that much while it flushes normally, and
 * above it the socket is sure to emit 'drain' when it empties, which is
 * when the count is taken back.
 */
export const COUNTED_FROM = 64 * 1024

/** Text from this length on is sent as bytes (see `send`). */
const LARGE_TEXT = 16 * 1024
const text = { binary: false }

/**
 * What a connection writes: holds the TCP socket's writes until the end of
 * the tick, so that the messages sent to one peer in a tick (the answers to
 * a batch of messages read together, a burst of broadcasts) leave in one
 * system call, and writes frames made once for many sockets.
 */
export class Outbound {
  readonly #socket: WebSocket
  readonly #tcp: Duplex
  readonly #sender: WsSender | undefined
  /** The outbound bytes counted against the server's maxBufferedBytes. */
  counted = 0

  constructor (socket: WebSocket, tcp: Duplex) {
    this.#socket = socket
    this.#tcp = tcp
    this.#sender = senderSupported(socket) ? (socket as unknown as { _sender: WsSender })._sender : undefined
  }

  /** Outbound bytes not yet written to the network. */
  get buffered (): number {
    return this.#socket.bufferedAmount
  }

  /** The bytes past what this tick's cork holds: what the peer has yet to read. */
  get unread (): number {
    if (this.#tcp.writableCorked !== 0) this.#tcp.uncork()
    return this.#socket.bufferedAmount
  }

  send (data: Payload): void {
    this.#cork()
    if (typeof data === 'string' && data.length >= LARGE_TEXT) {
      // A string waiting in a socket's buffer is held twice (the string, and
      // the copy written from it): as bytes it is held once.
      this.#socket.send(Buffer.from(data), text)
    } else {
      this.#socket.send(data)
    }
  }

  /**
   * Writes a frame made once for many sockets (broadcast, publish). When
   * `ws`'s sender is busy (compressing, say), the payload is queued behind
   * what it holds instead, so the order of messages is kept.
   */
  sendFrame (frame: Frame): void {
    const sender = this.#sender
    this.#cork()
    if (sender !== undefined && sender._state === 0) {
      sender.sendFrame(frame.list)
    } else {
      this.#socket.send(frame.payload, { binary: frame.binary, compress: false })
    }
  }

  #cork (): void {
    const tcp = this.#tcp
    if (tcp.writableCorked !== 0) return
    tcp.cork()
    if (corked.push(tcp) === 1) process.nextTick(uncorkAll)
  }
}

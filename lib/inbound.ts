import type { WebSocket } from 'ws'

/**
 * Why reading a connection is paused. Each reason is set and cleared on its
 * own; the socket is read again only when none is left.
 */
export const Pause = {
  /** The queue reached maxPendingMessages or maxPendingBytes. */
  Queue: 1,
  /** The outbound buffer is above half of maxBackpressure. */
  Outbound: 2,
  /** rateLimit: the window is used up. */
  Rate: 4,
  /** The server holds more than maxBufferedBytes. */
  Server: 8,
  /** The connection had its share of this turn of the event loop. */
  Turn: 16
} as const

/** The part of `ws`'s (internal) Receiver that the read gate drives. */
interface WsReceiver {
  startLoop (cb: (err?: Error) => void): void
  _loop: boolean
  destroy (err?: Error): void
}

/** Whether `ws`'s Receiver still has the shape the read gate relies on. */
export function gateSupported (socket: WebSocket): boolean {
  const receiver = (socket as unknown as { _receiver?: Partial<WsReceiver> })._receiver
  return typeof receiver?.startLoop === 'function' && typeof receiver._loop === 'boolean'
}

/**
 * The messages of one connection that wait for `onMessage`, bounded in count
 * and in bytes, and the gate that stops reading the connection.
 *
 * Pausing the TCP socket alone does not bound memory: `ws` parses (and
 * inflates) every frame of the data it already read, so one TCP read of tiny
 * frames, or of small compressed frames that each inflate to maxPayload,
 * would still queue thousands of messages or many MiB. The gate also stops
 * `ws`'s parser after the message being delivered, and starts it again when
 * reading resumes, so that nothing past one message is parsed while paused.
 */
export class Inbound {
  /** Messages and their binary flags, from `#head` on: O(1) shift, compacted now and then. */
  #data: Array<Buffer | undefined> = []
  #binary: boolean[] = []
  #head = 0
  /** Queued bytes. */
  bytes = 0
  /** The pause reasons set (see `Pause`); 0 when reading. */
  reasons = 0
  readonly #socket: WebSocket
  readonly #maxMessages: number
  readonly #maxBytes: number
  readonly #receiver: WsReceiver | undefined
  /** The parser's callback held while gated. */
  #held: ((err?: Error) => void) | undefined
  /** The TCP socket has closed: whatever `ws` still has unparsed is dropped, never delivered. */
  #discarding = false

  constructor (socket: WebSocket, maxMessages: number, maxBytes: number) {
    this.#socket = socket
    this.#maxMessages = maxMessages
    this.#maxBytes = maxBytes
    if (gateSupported(socket)) {
      const receiver = (socket as unknown as { _receiver: WsReceiver })._receiver
      const startLoop = receiver.startLoop
      receiver.startLoop = (cb) => {
        if (this.#discarding) return cb()
        if (this.reasons !== 0) {
          this.#held = cb
          return
        }
        startLoop.call(receiver, cb)
      }
      this.#receiver = receiver
    }
  }

  get length (): number {
    return this.#data.length - this.#head
  }

  get paused (): boolean {
    return this.reasons !== 0
  }

  /** Adds a message; pauses reading when a bound is reached. */
  push (data: Buffer, binary: boolean): void {
    this.#data.push(data)
    this.#binary.push(binary)
    this.bytes += data.length
    if (this.length >= this.#maxMessages || this.bytes >= this.#maxBytes) this.pause(Pause.Queue)
  }

  /** The binary flag of the next message; read it before `shift()`. */
  get nextBinary (): boolean {
    return this.#binary[this.#head]
  }

  /**
   * Takes the oldest message. Reading does not resume here, so that a message
   * parsed on resuming cannot overtake this one: call `relieve()` once the
   * messages taken are delivered.
   */
  shift (): Buffer {
    const head = this.#head
    const data = this.#data[head] as Buffer
    this.#data[head] = undefined
    this.bytes -= data.length
    if (++this.#head === this.#data.length) {
      this.#data.length = 0
      this.#binary.length = 0
      this.#head = 0
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#data.length) {
      this.#data.splice(0, this.#head)
      this.#binary.splice(0, this.#head)
      this.#head = 0
    }
    return data
  }

  /** Resumes reading for the queue once both bounds are back under half. */
  relieve (): void {
    if ((this.reasons & Pause.Queue) !== 0 && this.length <= this.#maxMessages / 2 && this.bytes <= this.#maxBytes / 2) {
      this.resume(Pause.Queue)
    }
  }

  /** Empties the queue; returns how many messages were dropped. */
  clear (): number {
    const count = this.length
    this.#data = []
    this.#binary = []
    this.#head = 0
    this.bytes = 0
    return count
  }

  /** Stops reading for `reason`: the TCP socket and `ws`'s parser, after the current message. */
  pause (reason: number): void {
    if (this.reasons === 0) {
      this.#socket.pause()
      if (this.#receiver !== undefined) this.#receiver._loop = false
    }
    this.reasons |= reason
  }

  /** Clears `reason` (several reasons or-ed together); reading resumes when no reason is left. */
  resume (reason: number): void {
    if ((this.reasons & reason) === 0) return
    this.reasons &= ~reason
    if (this.reasons !== 0) return
    this.#socket.resume()
    this.#restart()
  }

  /** Starts the parser again on what it holds: with its own callback when it was held, else with one that reports errors as `ws` does. */
  #restart (): void {
    const receiver = this.#receiver
    if (receiver === undefined || this.#discarding) return
    const held = this.#held
    this.#held = undefined
    receiver.startLoop(held ?? ((err) => { if (err !== undefined) receiver.destroy(err) }))
  }

  /**
   * The TCP socket closed while reading was paused: `ws` finishes without
   * parsing what is left (it was never read, as TCP backpressure), so that
   * its 'close' comes.
   */
  discard (): void {
    if (this.reasons === 0) return
    this.#discarding = true
    const held = this.#held
    this.#held = undefined
    held?.()
  }
}

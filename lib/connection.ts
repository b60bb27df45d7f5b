import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import { decode, encode, type DataType, type Frame } from './codec.js'
import {
  ErrCode,
  WssCloseMessageTooLongError,
  WssInvalidCloseCodeError,
  WssInvalidTopicError,
  errorEntry,
  invoke,
  toError
} from './errors.js'
import type { WebSocketServer } from './server.js'
import type { ConnectionHandler, ConnectionRequest, ErrorEvent, TerminateEvent } from './types.js'

/** `'Connected'` → `'Closing'` → `'Closed'`. */
export type ConnectionStatus = 'Connected' | 'Closing' | 'Closed'

/** The arguments of `terminate()`. */
export interface TerminateOptions {
  /** 1000 (default) or 3000–4999. */
  code?: number
  /** At most 123 UTF-8 bytes. */
  message?: string
}

// ws's readyState values
const OPEN = 1
const CLOSING = 2

const kConnection = Symbol('fastify-wss.connection')
type Socket = WebSocket & { [kConnection]: WebSocketConnection<DataType> }
type Transport = Duplex & { [kConnection]: WebSocketConnection<DataType> }
type Listener = (this: WebSocket, ...args: any[]) => void
/** The part of ws's (internal) Sender that writes a ready frame. */
interface WsSender {
  _state: number
  sendFrame (list: Buffer[], cb?: () => void): void
}

let lastId = 0

/** The sockets written to in this tick, uncorked together at its end. */
let corked: Duplex[] = []

function uncorkAll (): void {
  const sockets = corked
  corked = []
  for (const tcp of sockets) tcp.uncork()
}

/**
 * One client connection. Created by the plugin when `onConnection` returns a
 * connection handler; given to every callback of that handler.
 */
export class WebSocketConnection<D extends DataType = DataType> {
  readonly #id: number
  readonly #wss: WebSocketServer<D>
  readonly #handler: ConnectionHandler<D>
  readonly #request: ConnectionRequest
  readonly #socket: Socket
  /** The TCP socket under the WebSocket. */
  readonly #tcp: Duplex
  /** Messages received and not yet delivered. */
  readonly #queue: Buffer[] = []
  /** A callback is running: onOpen, or an onMessage whose Promise has not settled. */
  #busy = true
  #paused = false
  #draining = false
  #onWritten: (() => void) | undefined
  /** The continuation of an async callback, made once per connection on first need. */
  #onSettled: (() => void) | undefined
  /** Set when the socket has closed; onTerminate runs once the queue is empty. */
  #closeEvent: TerminateEvent | undefined
  #topics: Set<string> | undefined
  /** @internal Whether the peer answered the last ping. */
  _alive = true

  /** @internal */
  constructor (wss: WebSocketServer<D>, socket: WebSocket, handler: ConnectionHandler<D>, request: ConnectionRequest, transport: Duplex) {
    this.#id = ++lastId
    this.#wss = wss
    this.#handler = handler
    this.#request = request
    this.#socket = socket as Socket
    this.#socket[kConnection] = this as unknown as WebSocketConnection<DataType>
    // Shared listeners, with the socket as `this`: no closures per connection.
    socket.on('message', onSocketMessage as Listener)
    socket.on('close', onSocketClose as Listener)
    socket.on('error', onSocketError as Listener)
    socket.on('pong', onSocketPong as Listener)
    // ws closes the connection on an error of the TCP socket without reporting it.
    const tcp = transport as Transport
    tcp[kConnection] = this as unknown as WebSocketConnection<DataType>
    tcp.on('error', onTransportError)
    this.#tcp = tcp
  }

  /** Positive integer, unique within the process, never reused. */
  get id (): number { return this.#id }
  /** The server this connection belongs to. */
  get wss (): WebSocketServer<D> { return this.#wss }
  /** The connection handler `onConnection` returned. */
  get handler (): ConnectionHandler<D> { return this.#handler }
  /** The request the connection was opened with. */
  get request (): ConnectionRequest { return this.#request }

  get status (): ConnectionStatus {
    const state = this.#socket.readyState
    return state === OPEN ? 'Connected' : state === CLOSING ? 'Closing' : 'Closed'
  }

  /** Outbound bytes not yet written to the network. */
  get bufferedAmount (): number {
    return this.#socket.bufferedAmount
  }

  /**
   * Sends a message: a string as a text frame (JSON-encoded under dataType
   * `object`), bytes as a binary frame, any other value as its JSON text.
   * Returns `false`, sending nothing, when the connection is not `Connected`
   * or has just been dropped for exceeding `maxBackpressure`.
   * @throws TypeError (`FST_WSS_NOT_SERIALIZABLE`) when JSON cannot encode the value.
   */
  send (message: unknown): boolean {
    if (this.#socket.readyState !== OPEN) return false
    const data = encode(this.#wss.dataType, message)
    this.#cork()
    this.#socket.send(data, this.#afterWrite())
    return this.#checkBackpressure()
  }

  /**
   * Holds the TCP socket's writes until the end of the tick, so that the
   * messages sent to one peer in a tick (the answers to a batch of messages
   * read together, a burst of broadcasts) leave in one system call.
   */
  #cork (): void {
    const tcp = this.#tcp
    if (tcp.writableCorked !== 0) return
    tcp.cork()
    if (corked.push(tcp) === 1) process.nextTick(uncorkAll)
  }

  /**
   * @internal Writes a frame made once for many sockets (broadcast, publish).
   * When ws's sender is busy (compressing, say), the payload is queued
   * behind what it holds instead, so the order of messages is kept.
   * The TCP socket is corked until the end of the tick (see #cork).
   */
  _writeFrame (frame: Frame): boolean {
    const socket = this.#socket
    if (socket.readyState !== OPEN) return false
    const sender = (socket as unknown as { _sender: WsSender })._sender
    this.#cork()
    if (sender._state === 0) {
      sender.sendFrame(frame.list, this.#afterWrite())
    } else {
      socket.send(frame.payload, { binary: frame.binary, compress: false }, this.#afterWrite())
    }
    return this.#checkBackpressure()
  }

  /** The write callback: only needed to notice the drain, when there is an onDrain. */
  #afterWrite (): (() => void) | undefined {
    if (this.#handler.onDrain === undefined) return undefined
    return (this.#onWritten ??= () => this.#checkDrain())
  }

  /** Drops the connection past maxBackpressure; notes when it went above half of it. */
  #checkBackpressure (): boolean {
    const socket = this.#socket
    let buffered = socket.bufferedAmount
    const max = this.#wss._maxBackpressure
    if (buffered > max && this.#tcp.writableCorked !== 0) {
      // Bytes our own cork holds (see _writeFrame) say nothing of the peer: flush them first.
      this.#tcp.uncork()
      buffered = socket.bufferedAmount
    }
    if (buffered > max) {
      this.#wss._log.warn({ connectionId: this.#id, bufferedAmount: buffered, maxBackpressure: max },
        'fastify-wss: dropping a connection whose peer reads too slowly')
      socket.terminate()
      return false
    }
    if (buffered > max / 2) this.#draining = true
    return true
  }

  #checkDrain (): void {
    if (this.#draining && this.#socket.bufferedAmount <= this.#wss._maxBackpressure / 2) {
      this.#draining = false
      invoke(this.#handler, this.#handler.onDrain, this, { type: 'drain' }, this, ErrCode.DRAIN_FAILED)
    }
  }

  /** The topics this connection is subscribed to: a new array on each read. */
  get topics (): string[] {
    return this.#topics === undefined ? [] : Array.from(this.#topics)
  }

  /**
   * Subscribes to `topic`, so that `wss.publish(topic, ...)` reaches this
   * connection. Returns `false` when it was already subscribed, or is not
   * `Connected`. A connection leaves all its topics when it closes.
   * @throws TypeError (`FST_WSS_INVALID_TOPIC`) when `topic` is not a non-empty string.
   */
  subscribe (topic: string): boolean {
    checkTopic(topic)
    if (this.#socket.readyState !== OPEN) return false
    this.#topics ??= new Set()
    if (this.#topics.has(topic)) return false
    this.#topics.add(topic)
    this.#wss._subscribe(topic, this)
    return true
  }

  /**
   * Unsubscribes from `topic`. Returns `false` when it was not subscribed.
   * @throws TypeError (`FST_WSS_INVALID_TOPIC`) when `topic` is not a non-empty string.
   */
  unsubscribe (topic: string): boolean {
    checkTopic(topic)
    if (this.#topics === undefined || !this.#topics.delete(topic)) return false
    this.#wss._unsubscribe(topic, this)
    return true
  }

  /**
   * Starts the closing handshake with `code` (default 1000) and `message`.
   * Does nothing on a connection that is already `Closing` or `Closed`.
   * @throws RangeError when `code` is not 1000 or 3000–4999, or `message` is longer than 123 UTF-8 bytes.
   */
  terminate (options?: TerminateOptions): void {
    const code = options?.code ?? 1000
    const message = options?.message
    if (code !== 1000 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
      throw new WssInvalidCloseCodeError(code)
    }
    if (message !== undefined) {
      const bytes = typeof message === 'string' ? Buffer.byteLength(message) : NaN
      if (!(bytes <= 123)) throw new WssCloseMessageTooLongError(bytes)
    }
    if (this.#socket.readyState === OPEN) this.#socket.close(code, message)
  }

  /** @internal Runs the handler's onOpen; messages wait until it has settled. */
  _open (): void {
    const pending = invoke(this.#handler, this.#handler.onOpen, this, { type: 'open' }, this, ErrCode.OPEN_FAILED)
    if (pending === undefined) this.#settled()
    else pending.then(this.#onSettled ??= () => this.#settled())
  }

  /** @internal Closes with 1001 (Going Away), for the server's shutdown. */
  _goAway (): void {
    if (this.#socket.readyState === OPEN) this.#socket.close(1001)
  }

  /**
   * @internal Pings; destroys the socket when the previous ping got no pong.
   * Skipped while reading is paused (maxPendingMessages): a pong cannot be
   * read then, and the peer is not at fault.
   */
  _heartbeat (): void {
    const socket = this.#socket
    if (socket.readyState !== OPEN || this.#paused) return
    if (!this._alive) {
      socket.terminate()
      return
    }
    this._alive = false
    socket.ping()
  }

  /** @internal Messages waiting for onMessage, and whether reading is paused: for tests. */
  get _inbound (): { queued: number, paused: boolean } {
    return { queued: this.#queue.length, paused: this.#paused }
  }

  /** @internal */
  _receive (data: Buffer): void {
    const queue = this.#queue
    if (this.#busy || queue.length !== 0) {
      queue.push(data)
      if (!this.#paused && queue.length >= this.#wss._maxPendingMessages) {
        this.#paused = true
        this.#socket.pause()
      }
      return
    }
    this.#deliver(data)
  }

  #deliver (data: Buffer): void {
    let value: unknown
    try {
      value = decode(this.#wss.dataType, data)
    } catch (err) {
      this._fail(ErrCode.INVALID_JSON, err)
      return
    }
    const handler = this.#handler
    const pending = invoke(handler, handler.onMessage, this, { type: 'message', data: value }, this, ErrCode.MESSAGE_FAILED)
    if (pending !== undefined) {
      this.#busy = true
      pending.then(this.#onSettled ??= () => this.#settled())
    }
  }

  /** A callback has settled: deliver what waits, then end if the socket is closed. */
  #settled (): void {
    this.#busy = false
    const queue = this.#queue
    while (!this.#busy && queue.length !== 0) {
      this.#deliver(queue.shift() as Buffer)
      if (this.#paused && queue.length <= this.#wss._maxPendingMessages / 2) {
        this.#paused = false
        this._alive = true // its pong may still wait unread: a fresh interval to answer
        this.#socket.resume()
      }
    }
    if (!this.#busy && this.#closeEvent !== undefined) this.#end()
  }

  /** @internal The socket has closed (ws's 'close'). */
  _closed (code: number, reason: Buffer): void {
    this.#closeEvent = { type: 'terminate', code, reason: reason.length === 0 ? undefined : reason.toString() }
    if (this.#topics !== undefined) {
      for (const topic of this.#topics) this.#wss._unsubscribe(topic, this)
      this.#topics = undefined
    }
    this.#wss._remove(this)
    if (!this.#busy && this.#queue.length === 0) this.#end()
  }

  /** Runs once: from _closed when nothing is pending, else after the last pending callback settled. */
  #end (): void {
    const handler = this.#handler
    const pending = invoke(handler, handler.onTerminate, this, this.#closeEvent, this, ErrCode.TERMINATE_FAILED)
    if (pending === undefined) this.#wss._finished()
    else pending.then(() => this.#wss._finished())
  }

  /** @internal An error of this connection: to its handler's onError, else to the server's. */
  _fail (errCode: number, error: unknown): void {
    const event: ErrorEvent = { type: 'error', errors: [errorEntry(errCode, toError(error))] }
    const handler = this.#handler
    if (typeof handler.onError === 'function') {
      invoke(handler, handler.onError, this, event, this.#wss._onErrorFailed, 0)
    } else {
      this.#wss._report(event, this)
    }
  }
}

/** @internal */
export function checkTopic (topic: unknown): void {
  if (typeof topic !== 'string' || topic.length === 0) throw new WssInvalidTopicError(typeof topic === 'string' ? '""' : typeof topic)
}

function onSocketMessage (this: Socket, data: Buffer): void {
  this[kConnection]._receive(data)
}

function onSocketClose (this: Socket, code: number, reason: Buffer): void {
  this[kConnection]._closed(code, reason)
}

/** Errors ws reports: the peer broke the protocol; ws has closed with the matching code. */
function onSocketError (this: Socket, err: Error & { code?: unknown }): void {
  // over maxPayload, or a frame length past 2^53 - 1 (larger than any maxPayload): both close with 1009
  const code = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || err.code === 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH'
    ? ErrCode.MESSAGE_TOO_BIG
    : ErrCode.PROTOCOL_ERROR
  this[kConnection]._fail(code, err)
}

/** Errors of the TCP socket under the WebSocket (reset, broken pipe). */
function onTransportError (this: Transport, err: Error): void {
  this[kConnection]._fail(ErrCode.SOCKET_ERROR, err)
}

function onSocketPong (this: Socket): void {
  this[kConnection]._alive = true
}

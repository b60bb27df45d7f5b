import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import { decode, encode, type DataType, type Frame } from './codec.js'
import { Inbound, Pause } from './inbound.js'
import { COUNTED_FROM, Outbound } from './outbound.js'
import {
  ErrCode,
  WssCloseMessageTooLongError,
  WssInvalidCloseCodeError,
  WssInvalidTopicError,
  WssMessagesDroppedError,
  WssRateLimitedError,
  errorEntry,
  invoke,
  toError
} from './errors.js'
import type { WebSocketServer } from './server.js'
import type { ConnectionHandler, ConnectionRequest, ErrorEvent, MessageTypes, RequestOf, TerminateEvent, TypesOf } from './types.js'

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
type Socket = WebSocket & { [kConnection]: WebSocketConnection<any, any> }
type Transport = Duplex & { [kConnection]: WebSocketConnection<any, any> }
type Listener = (this: WebSocket, ...args: any[]) => void

/** What a callback in progress is, for the report of a shutdown that could not wait for it. */
type Pending = 'onOpen' | 'onMessage' | 'onTerminate' | undefined

/** The socket of a connection that never opened: the client left, or the server closed, during onConnection. */
const neverOpened = { readyState: 3, bufferedAmount: 0 } as unknown as WebSocket

let lastId = 0

/**
 * What one connection may read (and, in large answers, make the server
 * write) in one turn of the event loop (Node reads up to 32 × 64 KiB from a
 * socket in one go): past it, it waits for the next turn, so that a flood of
 * cheap or costly messages cannot stall the others.
 */
const TURN_MESSAGES = 64
const TURN_BYTES = 256 * 1024
/** The turn of the event loop, counted only while some connection waits for the next one. */
let turn = 0
let yielded: Array<WebSocketConnection<any, any>> = []

function nextTurn (): void {
  turn++
  const connections = yielded
  yielded = []
  for (const connection of connections) connection._inbound.resume(Pause.Turn)
}

/**
 * One client connection. Created by the plugin when `onConnection` returns a
 * connection handler; given to every callback of that handler.
 */
export class WebSocketConnection<D extends DataType = DataType, M extends MessageTypes = TypesOf<D>> {
  readonly #id: number
  readonly #wss: WebSocketServer<D, M>
  readonly #handler: ConnectionHandler<D, M>
  readonly #request: ConnectionRequest
  readonly #socket: Socket
  /** @internal Messages received and not yet delivered, and the pausing of reads. */
  readonly _inbound: Inbound
  readonly #outbound: Outbound
  /** The callback running: onOpen, or an onMessage whose Promise has not settled. */
  #pending: Pending = 'onOpen'
  /** The continuation of an async callback, made once per connection on first need. */
  #onSettled: (() => void) | undefined
  /** Set when the socket has closed; onTerminate runs once the queue is empty. */
  #closeEvent: TerminateEvent | undefined
  /** onTerminate has been called. */
  #ended = false
  /** Dropped for maxBufferedBytes: what it still sends is not delivered. */
  #discarding = false
  /** The turn of the event loop this connection was last read in, and what it read in it. */
  #turn = -1
  #turnMessages = 0
  #turnBytes = 0
  /** Messages read in the current rateLimit window, and when it ends. */
  #rateCount = 0
  #rateWindowEnd = 0
  #rateTimer: NodeJS.Timeout | undefined
  #drainPoll: NodeJS.Timeout | undefined
  /** Drops what is still queued closeTimeout after the close. */
  #dropTimer: NodeJS.Timeout | undefined
  #topics: Set<string> | undefined
  /** @internal Whether the peer answered the last ping. */
  _alive = true
  /** The outbound bytes at the last heartbeat while paused for them: a peer that reads nothing between two is dropped. */
  #heartbeatBuffered = Infinity
  /** @internal When the log last showed an error this client caused, and how many it has not shown since. */
  _logged = 0
  /** @internal */
  _suppressed = 0
  /** When the connection was made (performance.now()), for the duration of the diagnostics channel. */
  readonly #openedAt = performance.now()

  /** @internal */
  constructor (wss: WebSocketServer<D, M>, socket: WebSocket, handler: ConnectionHandler<D, M>, request: ConnectionRequest, transport: Duplex | undefined) {
    this.#id = ++lastId
    this.#wss = wss
    this.#handler = handler
    this.#request = request
    this.#socket = socket as Socket
    this._inbound = new Inbound(socket, wss._maxPendingMessages, wss._maxPendingBytes)
    this.#outbound = new Outbound(socket, transport as Duplex)
    if (transport === undefined) return
    this.#socket[kConnection] = this as unknown as WebSocketConnection<any, any>
    // Shared listeners, with the socket as `this`: no closures per connection.
    socket.on('message', onSocketMessage as Listener)
    socket.on('close', onSocketClose as Listener)
    socket.on('error', onSocketError as Listener)
    socket.on('pong', onSocketPong as Listener)
    // ws closes the connection on an error of the TCP socket without reporting it.
    const tcp = transport as Transport
    tcp[kConnection] = this as unknown as WebSocketConnection<any, any>
    tcp.on('error', onTransportError)
    tcp.on('drain', onTransportDrain)
    // before ws's own listener, which hands the parser what the socket still holds
    tcp.prependListener('close', onTransportClose)
  }

  /** @internal A connection whose handler `onConnection` returned, but that never opened. */
  static _neverOpened<D extends DataType, M extends MessageTypes> (wss: WebSocketServer<D, M>, handler: ConnectionHandler<D, M>, request: ConnectionRequest): WebSocketConnection<D, M> {
    return new WebSocketConnection(wss, neverOpened, handler, request, undefined)
  }

  /** Positive integer, unique within the process, never reused. */
  get id (): number { return this.#id }
  /** The server this connection belongs to. */
  get wss (): WebSocketServer<D, M> { return this.#wss }
  /** The connection handler `onConnection` returned. */
  get handler (): ConnectionHandler<D, M> { return this.#handler }
  /** The request the connection was opened with. */
  get request (): RequestOf<M> { return this.#request as RequestOf<M> }

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
  send (message: M['send']): boolean {
    if (this.#socket.readyState !== OPEN) return false
    const data = encode(this.#wss.dataType, message, this.#wss._serialize)
    this.#outbound.send(data)
    // What a peer's messages make the server write counts in its share of the turn.
    const length = typeof data === 'string' ? data.length : data.byteLength
    if (length >= COUNTED_FROM) this.#share(0, length)
    const sent = this.#checkBackpressure()
    if (sent) this.#wss._meter.sent(this, data)
    return sent
  }

  /** @internal Writes a frame made once for many sockets (broadcast, publish). */
  _writeFrame (frame: Frame): boolean {
    if (this.#socket.readyState !== OPEN) return false
    this.#outbound.sendFrame(frame)
    return this.#checkBackpressure()
  }

  /**
   * After a write: drops the connection past maxBackpressure; above half of
   * it, stops reading the peer until its buffer drains; keeps the server's
   * count of outbound bytes.
   */
  #checkBackpressure (): boolean {
    const outbound = this.#outbound
    let buffered = outbound.buffered
    if (buffered < COUNTED_FROM && outbound.counted === 0) return true
    const max = this.#wss._maxBackpressure
    // Bytes our own cork holds say nothing of the peer: flush them first.
    if (buffered > max) buffered = outbound.unread
    if (buffered > max) {
      this.#wss._log.warn({ connectionId: this.#id, bufferedAmount: buffered, maxBackpressure: max },
        'fastify-wss: dropping a connection whose peer reads too slowly')
      this.#wss._meter.drop(this, buffered)
      this.#count(0)
      this.#socket.terminate()
      return false
    }
    this.#count(buffered)
    // Above half of it the peer is not read (nor its requests answered) until
    // its buffer drains; onDrain is due then.
    if (buffered > max / 2 && (this._inbound.reasons & Pause.Outbound) === 0) {
      this._inbound.pause(Pause.Outbound)
      this.#pollDrain()
    }
    return true
  }

  /** Counts the outbound bytes against maxBufferedBytes, from COUNTED_FROM up. */
  #count (buffered: number): void {
    const counted = buffered < COUNTED_FROM ? 0 : buffered
    const outbound = this.#outbound
    if (counted === outbound.counted) return
    this.#wss._hold(counted - outbound.counted, this)
    outbound.counted = counted
  }

  /**
   * Checks again in a moment whether the outbound buffer is back under half
   * of maxBackpressure: the TCP socket's 'drain' says so only for its own
   * bytes, not for those `ws`'s sender holds while it compresses.
   */
  #pollDrain (): void {
    this.#drainPoll ??= setTimeout(onDrainPoll, 20, this)
  }

  /** @internal The drain poll is due. */
  _drainPolled (): void {
    this.#drainPoll = undefined
    this._drained()
  }

  /** @internal The TCP socket drained (or the poll is due): recount, and resume once under half of maxBackpressure. */
  _drained (): void {
    const buffered = this.#outbound.buffered
    this.#count(buffered)
    if ((this._inbound.reasons & Pause.Outbound) === 0) return
    if (buffered > this.#wss._maxBackpressure / 2) {
      this.#pollDrain()
      return
    }
    this._inbound.resume(Pause.Outbound)
    invoke(this.#handler, this.#handler.onDrain, this, { type: 'drain' }, this, ErrCode.DRAIN_FAILED)
  }

  /** @internal The bytes this connection holds: its queue and its outbound buffer. */
  get _holding (): number {
    return this._inbound.bytes + this.#outbound.counted
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

  /** @internal Closes with `code` (1001, Going Away, for the server's shutdown) or a limit's 1008. */
  _goAway (code = 1001): void {
    if (this.#socket.readyState === OPEN) this.#socket.close(code)
  }

  /**
   * @internal Pings; destroys the socket when the previous ping got no pong.
   * Skipped while reading is paused by the server (queue, rate, budget): a
   * pong cannot be read then, and the peer is not at fault.
   */
  _heartbeat (): void {
    const socket = this.#socket
    if (socket.readyState !== OPEN) return
    const reasons = this._inbound.reasons
    if (reasons !== 0) {
      // Paused only because the peer does not read what it is sent: its pong
      // cannot be read, but a peer that read nothing for a whole interval is gone.
      if (reasons === Pause.Outbound) {
        const buffered = this.#outbound.buffered
        if (buffered >= this.#heartbeatBuffered) socket.terminate()
        else this.#heartbeatBuffered = buffered
      }
      return
    }
    this.#heartbeatBuffered = Infinity
    if (!this._alive) {
      socket.terminate()
      return
    }
    this._alive = false
    socket.ping()
  }

  /** @internal A message from the peer (ws's 'message'). */
  _receive (data: Buffer, binary: boolean): void {
    this.#wss._meter.received(this, data, binary)
    if (this.#discarding) return
    this.#share(1, data.length)
    const limit = this.#wss._rateLimit
    if (limit !== undefined && !this.#withinRate(limit)) return
    const inbound = this._inbound
    if (this.#pending !== undefined || inbound.length !== 0) {
      inbound.push(data, binary)
      this.#wss._hold(data.length, this)
      return
    }
    this.#deliver(data, binary)
  }

  /**
   * A fair share of each turn of the event loop: a connection that read
   * `TURN_MESSAGES` messages, or read and answered `TURN_BYTES` bytes, is not
   * read again until the next turn, so that the others are read meanwhile.
   */
  #share (messages: number, bytes: number): void {
    if (this.#turn !== turn) {
      this.#turn = turn
      this.#turnMessages = 0
      this.#turnBytes = 0
    }
    this.#turnMessages += messages
    this.#turnBytes += bytes
    if ((this.#turnMessages >= TURN_MESSAGES || this.#turnBytes >= TURN_BYTES) && (this._inbound.reasons & Pause.Turn) === 0) {
      this._inbound.pause(Pause.Turn)
      if (yielded.push(this as unknown as WebSocketConnection<any, any>) === 1) setImmediate(nextTurn)
    }
  }

  /** Counts the message against rateLimit: pauses at the limit, or closes past it. */
  #withinRate (limit: NonNullable<WebSocketServer<D, M>['_rateLimit']>): boolean {
    const now = Date.now()
    if (now >= this.#rateWindowEnd) {
      this.#rateWindowEnd = now + limit.timeWindow
      this.#rateCount = 0
    }
    if (++this.#rateCount < limit.max) return true
    if (limit.action === 'close') {
      if (this.#rateCount === limit.max) return true
      if (this.#rateCount === limit.max + 1) {
        this.#wss._meter.rateLimited++
        this._fail(ErrCode.RATE_LIMITED, new WssRateLimitedError(limit.max, limit.timeWindow))
        this._goAway(1008)
      }
      return false
    }
    if (this.#rateCount === limit.max) this.#wss._meter.rateLimited++
    this._inbound.pause(Pause.Rate)
    clearTimeout(this.#rateTimer)
    this.#rateTimer = setTimeout(onRateWindow, this.#rateWindowEnd - now, this)
    return true
  }

  /** @internal The rateLimit window that paused reading is over. */
  _rateWindow (): void {
    this._inbound.resume(Pause.Rate)
  }

  #deliver (data: Buffer, binary: boolean): void {
    const wss = this.#wss
    let value: unknown
    try {
      value = decode(wss.dataType, data, wss._json)
    } catch (err) {
      this.#invalid(ErrCode.INVALID_JSON, err)
      return
    }
    const check = wss._check
    if (check !== undefined) {
      try {
        value = check(value)
      } catch (err) {
        this.#invalid(ErrCode.INVALID_MESSAGE, err)
        return
      }
    }
    const handler = this.#handler
    const pending = invoke(handler, handler.onMessage, this, { type: 'message', data: value, binary }, this, ErrCode.MESSAGE_FAILED)
    if (pending !== undefined) {
      this.#pending = 'onMessage'
      pending.then(this.#onSettled ??= () => this.#settled())
    }
  }

  /** A message that is not delivered: reported, and with `invalidMessage: 'close'` the connection closes with 1008. */
  #invalid (errCode: number, error: unknown): void {
    this._fail(errCode, error)
    if (this.#wss._closeOnInvalid) this._goAway(1008)
  }

  /** A callback has settled: deliver what waits, then end if the socket is closed. */
  #settled (): void {
    if (this.#ended) return
    this.#pending = undefined
    const inbound = this._inbound
    while (this.#pending === undefined && inbound.length !== 0) {
      const binary = inbound.nextBinary
      const data = inbound.shift()
      this.#wss._hold(-data.length, this)
      this.#deliver(data, binary)
    }
    inbound.relieve()
    if (this.#pending !== undefined || inbound.length !== 0) return
    if (this.#dropTimer !== undefined) this.#release()
    if (this.#closeEvent !== undefined) this.#end()
  }

  /** @internal The socket has closed (ws's 'close'). */
  _closed (code: number, reason: Buffer): void {
    this.#closeEvent = { type: 'terminate', code, reason: reason.length === 0 ? undefined : reason.toString() }
    this.#wss._meter.closed(this, code, this.#closeEvent.reason, this.#openedAt)
    if (this.#topics !== undefined) {
      for (const topic of this.#topics) this.#wss._unsubscribe(topic, this)
      this.#topics = undefined
    }
    this.#count(0)
    clearTimeout(this.#rateTimer)
    clearTimeout(this.#drainPoll)
    this.#wss._remove(this)
    if (this.#ended) return
    if (this.#pending === undefined && this._inbound.length === 0) {
      this.#end()
      return
    }
    // Closing does not escape the bounds: the slot and the bytes stay held
    // until the queue is delivered, or dropped closeTimeout from now.
    if (this._inbound.length !== 0) {
      this.#wss._holdSlot(this, true)
      this.#dropTimer = setTimeout(onDropTimer, this.#wss._closeTimeout, this)
    }
  }

  /** @internal closeTimeout has passed since the close: what is still queued is dropped. */
  _drop (): void {
    const bytes = this._inbound.bytes
    const count = this._inbound.clear()
    this.#wss._hold(-bytes, this)
    this.#release()
    // a queue waits only behind a pending callback: onTerminate runs once it settles
    this._fail(ErrCode.MESSAGES_DROPPED, new WssMessagesDroppedError(count))
  }

  /** The queue of a closed connection is delivered or dropped: its slot is free. */
  #release (): void {
    clearTimeout(this.#dropTimer)
    this.#dropTimer = undefined
    this.#wss._holdSlot(this, false)
  }

  /**
   * @internal Dropped by the server for holding the most past maxBufferedBytes:
   * its queue is dropped now, and so is whatever it still sends. An open
   * connection is closed with 1008, or destroyed when its own outbound
   * buffer is what it holds (its peer would not read the close frame).
   */
  _overload (error: Error): void {
    const bytes = this._inbound.bytes
    this._inbound.clear()
    this.#wss._hold(-bytes, this)
    this.#discarding = true
    this._fail(ErrCode.OVERLOADED, error)
    if (this.#socket.readyState === OPEN) {
      if (this.#outbound.counted !== 0) {
        this.#socket.terminate()
      } else {
        this.#socket.close(1008)
        // read on, discarding, so that the peer's close frame is read
        this._inbound.resume(Pause.Queue | Pause.Outbound | Pause.Rate | Pause.Server)
      }
    } else if (this.#dropTimer !== undefined) {
      // closed, its queue waiting behind a pending callback, after which onTerminate runs
      this.#release()
    }
  }

  /**
   * @internal The shutdown deadline has passed: runs onTerminate now if it has
   * not run, whatever is pending. Returns the callback that was still pending,
   * or `'close'` when only the close itself was awaited.
   */
  _abandon (): NonNullable<Pending> | 'close' {
    const pending = this.#ended ? 'onTerminate' : this.#pending ?? 'close'
    if (this.#dropTimer !== undefined) this.#release()
    this.#wss._hold(-this._inbound.bytes, this)
    this._inbound.clear()
    this.#socket.terminate()
    if (!this.#ended) {
      this.#closeEvent ??= { type: 'terminate', code: 1006, reason: undefined }
      this.#end()
    }
    return pending
  }

  /** @internal Runs onTerminate; from _closed when nothing is pending, else after the last pending callback settled. */
  _end (event: TerminateEvent): void {
    this.#closeEvent = event
    this.#end()
  }

  #end (): void {
    this.#ended = true
    this.#pending = 'onTerminate'
    const handler = this.#handler
    const pending = invoke(handler, handler.onTerminate, this, this.#closeEvent, this, ErrCode.TERMINATE_FAILED)
    if (pending === undefined) this.#finish()
    else pending.then(() => this.#finish())
  }

  #finish (): void {
    this.#pending = undefined
    this.#wss._finished(this)
  }

  /** @internal An error of this connection: to its handler's onError, else to the server's. */
  _fail (errCode: number, error: unknown): void {
    const err = toError(error)
    this.#wss._meter.error(errCode, err, this)
    const event: ErrorEvent = { type: 'error', errors: [errorEntry(errCode, err)] }
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

function onSocketMessage (this: Socket, data: Buffer, binary: boolean): void {
  this[kConnection]._receive(data, binary)
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

function onTransportDrain (this: Transport): void {
  this[kConnection]._drained()
}

/** The TCP socket closed: `ws` may still hold unparsed data, which is dropped so that its 'close' comes. */
function onTransportClose (this: Transport): void {
  this[kConnection]._inbound.discard()
}

function onDrainPoll (connection: WebSocketConnection<any, any>): void {
  connection._drainPolled()
}

function onRateWindow (connection: WebSocketConnection<any, any>): void {
  connection._rateWindow()
}

function onDropTimer (connection: WebSocketConnection<any, any>): void {
  connection._drop()
}

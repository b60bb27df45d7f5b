import type { Duplex } from 'node:stream'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { WebSocketServer as WsServer, type WebSocket } from 'ws'
import type { AdapterNode, ClusterMessage, WssAdapter } from './adapter.js'
import { encode, frame, type DataType, type Frame, type JsonRules } from './codec.js'
import { WebSocketConnection, checkTopic } from './connection.js'
import { Pause } from './inbound.js'
import {
  ErrCode,
  WssOverloadedError,
  clientErrors,
  WssConnectionRefusedError,
  WssInvalidConnectionHandlerError,
  WssOriginNotAllowedError,
  WssInvalidShutdownError,
  WssUnavailableError,
  errorEntry,
  invoke,
  isThenable,
  toError,
  type ErrorSink
} from './errors.js'
import { resolveShutdown, type RateLimit, type ResolvedOptions, type ShutdownOptions } from './options.js'
import { channels } from './diagnostics.js'
import type { Check, Serialize } from './schema.js'
import { Meter, type WssStats } from './stats.js'
import type { ConnectionHandler, ConnectionRequest, MessageTypes, RequestOf, ServerErrorEvent, TypesOf, WSSHandler } from './types.js'
import type { Upgrades } from './upgrades.js'

/** Options of `broadcast` and `publish`. */
export interface SendOptions<D extends DataType = DataType, M extends MessageTypes = TypesOf<D>> {
  /** A connection, or a connection id, not to send to. */
  except?: WebSocketConnection<D, M> | number
}

/**
 * The lifecycle of a server, one state at a time. Draining: terminated, its
 * connections being closed over the `spread` of the shutdown; Terminating:
 * all of them sent their close, the shutdown waits for their callbacks.
 */
const State = { Registered: 0, Open: 1, Draining: 2, Terminating: 3, Terminated: 4 } as const
type Lifecycle = typeof State[keyof typeof State]

/**
 * The WebSocket server of a Fastify context: `fastify.wss`.
 */
export class WebSocketServer<D extends DataType = DataType, M extends MessageTypes = TypesOf<D>> {
  readonly #handler: WSSHandler<D, M>
  readonly #dataType: D
  readonly #path: string | undefined
  readonly #connections = new Set<WebSocketConnection<D, M>>()
  /** The local subscribers of each topic that has some. */
  readonly #topics = new Map<string, Set<WebSocketConnection<D, M>>>()
  readonly #ws: WsServer
  readonly #heartbeatInterval: number
  readonly #maxConnections: number
  readonly #originAllowed: ((origin: string) => boolean) | undefined
  #state: Lifecycle = State.Registered
  /** Sockets of the handshakes past the limit check whose onConnection has not answered yet. */
  readonly #handshakes = new Set<Duplex>()
  /** Closed connections whose queue is still being delivered: they keep their slot and their bytes. */
  readonly #closedHolding = new Set<WebSocketConnection<D, M>>()
  /** Connections whose onTerminate has not yet finished. */
  readonly #unfinished = new Set<WebSocketConnection<D, M>>()
  #whenFinished: (() => void) | undefined
  #terminating: Promise<void> | undefined
  #heartbeat: NodeJS.Timeout | undefined
  readonly #adapter: WssAdapter | undefined
  readonly #upgrades: Pick<Upgrades, 'taken' | 'isInjected'>
  readonly #shutdownTimeout: number
  readonly #shutdown: Required<ShutdownOptions>
  /** Bytes held for all connections: inbound queues, and outbound buffers from COUNTED_FROM up. */
  #held = 0
  readonly #maxHeld: number
  /** Connections paused because the server held more than maxBufferedBytes. */
  readonly #pressed = new Set<WebSocketConnection<D, M>>()
  #pressure: NodeJS.Timeout | undefined
  /** The full route pattern (context prefix included) that names the server's cluster channels. */
  readonly #route: string
  /** @internal */
  readonly _log: FastifyBaseLogger
  /** @internal */
  readonly _maxPendingMessages: number
  /** @internal */
  readonly _maxPendingBytes: number
  /** @internal */
  readonly _maxBackpressure: number
  /** @internal */
  readonly _closeTimeout: number
  /** @internal */
  readonly _rateLimit: Required<RateLimit> | undefined
  /** @internal How `object` messages are parsed. */
  readonly _json: JsonRules
  /** @internal The compiled `schema.message`, once the app is ready. */
  _check: Check | undefined
  /** @internal The compiled `schema.send`, once the app is ready. */
  _serialize: Serialize | undefined
  /** @internal `invalidMessage: 'close'`. */
  readonly _closeOnInvalid: boolean
  /** @internal Where a throw inside an onError callback goes: the log, and no further. */
  readonly _onErrorFailed: ErrorSink
  /** @internal The counters of `stats()`. */
  readonly _meter: Meter = new Meter(this)

  /** @internal */
  constructor (options: ResolvedOptions<D, M>, log: FastifyBaseLogger, upgrades: Pick<Upgrades, 'taken' | 'isInjected'>, route: string, json: Omit<JsonRules, 'maxDepth'>) {
    this.#route = route
    this.#handler = options.handler
    this.#dataType = options.dataType
    this.#path = options.path
    this.#heartbeatInterval = options.heartbeatInterval
    this.#maxConnections = options.maxConnections
    this.#originAllowed = options.originAllowed
    this.#adapter = options.adapter
    this.#upgrades = upgrades
    this._maxPendingMessages = options.maxPendingMessages
    this._maxPendingBytes = options.maxPendingBytes
    this._maxBackpressure = options.maxBackpressure
    this._closeTimeout = options.closeTimeout
    this._rateLimit = options.rateLimit
    this._json = { ...json, maxDepth: options.maxDepth }
    this._closeOnInvalid = options.closeOnInvalid
    this.#shutdownTimeout = options.shutdownTimeout
    this.#shutdown = options.shutdown
    this.#maxHeld = options.maxBufferedBytes
    this._log = log
    this._onErrorFailed = {
      _fail: (_errCode, err) => log.error({ err }, 'fastify-wss: an onError callback failed')
    }
    this.#ws = new WsServer({
      noServer: true,
      clientTracking: false,
      maxPayload: options.maxPayload,
      perMessageDeflate: options.perMessageDeflate,
      closeTimeout: options.closeTimeout
    } as ConstructorParameters<typeof WsServer>[0])
  }

  /** The current connections (`Connected` or `Closing`): a new array on each read. */
  get connections (): Array<WebSocketConnection<D, M>> {
    return Array.from(this.#connections)
  }

  get dataType (): D { return this.#dataType }
  get handler (): WSSHandler<D, M> { return this.#handler }
  /** The route pattern; `undefined` for the catch-all server. */
  get path (): string | undefined { return this.#path }
  /** `true` once `terminate()` was called or the app closed. */
  get terminated (): boolean { return this.#state >= State.Draining }

  /**
   * The counters of the server since it was registered, as a fresh plain
   * object: connections open now, upgrades accepted and refused (by HTTP
   * status), connections closed (by close code), messages and payload bytes
   * in and out, slow readers dropped, rate limits reached, errors (by errCode).
   */
  stats (): WssStats {
    return this._meter.snapshot(this.#connections.size)
  }

  /**
   * Sends `message` to every `Connected` connection but `except` (a
   * connection or an id). The message is encoded and framed once for all.
   * Returns the number of connections it was sent to.
   * @throws TypeError (`FST_WSS_NOT_SERIALIZABLE`) when JSON cannot encode the value.
   */
  broadcast (message: M['send'], options?: SendOptions<D, M>): number {
    const framed = frame(encode(this.#dataType, message, this._serialize))
    this.#toCluster(undefined, framed)
    return this.#fanOut(this.#connections, framed, options?.except)
  }

  /**
   * Sends `message` to the `Connected` subscribers of `topic` but `except`.
   * Returns the number of local connections it was sent to; a topic without
   * subscribers costs nothing per connection.
   * @throws TypeError (`FST_WSS_INVALID_TOPIC`, `FST_WSS_NOT_SERIALIZABLE`).
   */
  publish (topic: string, message: M['send'], options?: SendOptions<D, M>): number {
    checkTopic(topic)
    const payload = encode(this.#dataType, message, this._serialize)
    const subscribers = this.#topics.get(topic)
    if (subscribers === undefined && this.#adapter === undefined) return 0
    const framed = frame(payload)
    this.#toCluster(topic, framed)
    return subscribers === undefined ? 0 : this.#fanOut(subscribers, framed, options?.except)
  }

  #fanOut (recipients: Iterable<WebSocketConnection<D, M>>, framed: Frame, except: WebSocketConnection<D, M> | number | undefined): number {
    let count = 0
    const observed = channels.sent.hasSubscribers
    for (const connection of recipients) {
      if (connection === except || connection.id === except) continue
      if (!connection._writeFrame(framed)) continue
      count++
      if (observed) this._meter.fannedTo(connection, framed)
    }
    this._meter.fannedOut(framed, count)
    return count
  }

  #toCluster (topic: string | undefined, framed: Frame): void {
    const adapter = this.#adapter
    if (adapter === undefined) return
    invoke(adapter, adapter.publish, { topic, payload: framed.payload, binary: framed.binary }, undefined, this, ErrCode.ADAPTER_FAILED)
  }

  /** A message another node published: to the local connections (all, or the topic's subscribers). */
  #fromCluster (message: ClusterMessage): void {
    const recipients = message.topic === undefined ? this.#connections : this.#topics.get(message.topic)
    if (recipients === undefined) return
    const framed = frame(message.payload, message.binary)
    this.#fanOut(recipients, framed, undefined)
  }

  /** @internal */
  _subscribe (topic: string, connection: WebSocketConnection<D, M>): void {
    const subscribers = this.#topics.get(topic)
    if (subscribers !== undefined) {
      subscribers.add(connection)
      return
    }
    this.#topics.set(topic, new Set([connection]))
    const adapter = this.#adapter
    if (adapter !== undefined) invoke(adapter, adapter.subscribe, topic, undefined, this, ErrCode.ADAPTER_FAILED)
  }

  /** @internal */
  _unsubscribe (topic: string, connection: WebSocketConnection<D, M>): void {
    const subscribers = this.#topics.get(topic) as Set<WebSocketConnection<D, M>>
    subscribers.delete(connection)
    if (subscribers.size !== 0) return
    this.#topics.delete(topic)
    const adapter = this.#adapter
    if (adapter !== undefined) invoke(adapter, adapter.unsubscribe, topic, undefined, this, ErrCode.ADAPTER_FAILED)
  }

  /**
   * Closes the server: new upgrades get 503 (with `Retry-After: 1`), every
   * connection is closed with `code` (1001 Going Away by default, or 1012
   * Service Restart) at a random moment within `spread` ms (default 0: all
   * at once) and gets its onTerminate, then the handler's onTerminate runs.
   * What `options` leaves out comes from the `shutdown` option. Resolves
   * after all of that, or `spread` + `closeTimeout` + `shutdownTimeout` after
   * the call, whichever comes first; never rejects; idempotent (a second call
   * returns the first one's Promise, whatever its options).
   * @throws RangeError (`FST_WSS_INVALID_SHUTDOWN`) when `spread` or `code` is invalid; nothing is closed then.
   */
  terminate (options?: ShutdownOptions): Promise<void> {
    const shutdown = resolveShutdown(options, this.#shutdown, (field, problem) =>
      new WssInvalidShutdownError(field === undefined ? 'its argument' : `"${field}"`, problem))
    this.#terminating ??= this.#terminate(shutdown)
    return this.#terminating
  }

  async #terminate ({ spread, code }: Required<ShutdownOptions>): Promise<void> {
    this.#state = State.Draining
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<false>((resolve) => {
      timer = setTimeout(resolve, spread + this._closeTimeout + this.#shutdownTimeout, false)
    })
    if (spread === 0) {
      for (const connection of this.#connections) connection._goAway(code)
    } else {
      await this.#drain(spread, code)
    }
    this.#state = State.Terminating
    clearInterval(this.#heartbeat)
    clearTimeout(this.#pressure)
    const abandoned: Record<string, number> = {}
    const wait = async (pending: Promise<unknown> | undefined, what: string): Promise<void> => {
      if (pending === undefined) return
      if (await Promise.race([pending.then(() => true), deadline]) === false) abandoned[what] = (abandoned[what] ?? 0) + 1
    }
    if (this.#unfinished.size !== 0) {
      const finished = new Promise<true>((resolve) => { this.#whenFinished = () => resolve(true) })
      if (await Promise.race([finished, deadline]) === false) {
        for (const connection of Array.from(this.#unfinished)) {
          const what = connection._abandon()
          abandoned[what] = (abandoned[what] ?? 0) + 1
        }
        this.#unfinished.clear()
      }
    }
    const adapter = this.#adapter
    if (adapter !== undefined) await wait(invoke(adapter, adapter.close, undefined, undefined, this, ErrCode.ADAPTER_FAILED), 'adapter.close')
    await wait(invoke(this.#handler, this.#handler.onTerminate, this, { type: 'terminate' }, this, ErrCode.SERVER_TERMINATE_FAILED), 'onTerminate of the server')
    clearTimeout(timer)
    if (Object.keys(abandoned).length !== 0) {
      this._log.warn({ abandoned, path: this.#path }, 'fastify-wss: shutdown did not wait for callbacks still pending after spread + closeTimeout + shutdownTimeout')
    }
    this.#ws.close()
    this.#state = State.Terminated
  }

  /**
   * Closes the open connections with `code`, each at a moment drawn
   * uniformly within `spread` ms: the moments are sorted, the connections
   * shuffled, and one timer walks them. Resolves once every connection was
   * sent its close (or had closed by itself). Meanwhile the heartbeat and the
   * server budget still run.
   */
  async #drain (spread: number, code: number): Promise<void> {
    const connections = Array.from(this.#connections)
    for (let i = connections.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      const swapped = connections[i]
      connections[i] = connections[j]
      connections[j] = swapped
    }
    const moments = connections.map(() => Math.random() * spread).sort((a, b) => a - b)
    const started = performance.now()
    let next = 0
    await new Promise<void>((resolve) => {
      const step = (): void => {
        const elapsed = performance.now() - started
        while (next < connections.length && moments[next] <= elapsed) connections[next++]._goAway(code)
        if (next === connections.length) resolve()
        else setTimeout(step, moments[next] - elapsed)
      }
      step()
    })
  }

  /** @internal The app closes: the handshakes whose onConnection has not answered are dropped. */
  _closeHandshakes (): void {
    for (const socket of this.#handshakes) socket.destroy()
  }

  /** @internal The Fastify instance is ready: start the heartbeat, run onOpen. */
  async _start (): Promise<void> {
    if (this.#state !== State.Registered) return
    this.#state = State.Open
    if (this.#heartbeatInterval !== 0) {
      this.#heartbeat = setInterval(() => {
        for (const connection of this.#connections) connection._heartbeat()
      }, this.#heartbeatInterval).unref()
    }
    const adapter = this.#adapter
    if (adapter !== undefined) {
      const node: AdapterNode = {
        route: this.#route,
        deliver: (message) => this.#fromCluster(message),
        fail: (error, errCode = ErrCode.ADAPTER_FAILED) => this._fail(errCode, error)
      }
      await invoke(adapter, adapter.open, node, undefined, this, ErrCode.ADAPTER_FAILED)
    }
    await invoke(this.#handler, this.#handler.onOpen, this, { type: 'open' }, this, ErrCode.SERVER_OPEN_FAILED)
  }

  /**
   * @internal Admission of an upgrade request, before the 101: limits, origin,
   * onConnection, then the upgrade. `done` gets the refusal, its HTTP status
   * set on the reply, or nothing once the reply is hijacked for the upgrade.
   * A synchronous onConnection is called and answered in the same tick.
   */
  _admit (request: FastifyRequest, reply: FastifyReply, socket: Duplex, head: Buffer, done: (error?: Error) => void): void {
    if (this.#state !== State.Open) return done(gone(reply))
    if (this.#connections.size + this.#handshakes.size + this.#closedHolding.size >= this.#maxConnections) {
      return done(new WssUnavailableError('has reached maxConnections'))
    }
    if (this.#held > this.#maxHeld) return done(new WssUnavailableError('holds more than maxBufferedBytes'))
    const origin = request.headers.origin
    if (origin !== undefined && this.#originAllowed !== undefined && !this.#originAllowed(origin)) {
      return done(new WssOriginNotAllowedError(origin))
    }
    const connectionRequest = buildRequest(request)
    let result: ConnectionHandler<D, M> | null | undefined | PromiseLike<ConnectionHandler<D, M> | null | undefined>
    try {
      result = this.#handler.onConnection(this, { type: 'connection', request: connectionRequest as RequestOf<M>, fastifyRequest: request })
    } catch (err) {
      return done(this.#refusal(err, reply))
    }
    if (!isThenable(result)) return this.#upgrade(result, request, reply, socket, head, connectionRequest, done)
    this.#handshakes.add(socket)
    Promise.resolve(result).then((handler) => {
      this.#handshakes.delete(socket)
      this.#upgrade(handler, request, reply, socket, head, connectionRequest, done)
    }, (err: unknown) => {
      this.#handshakes.delete(socket)
      done(this.#refusal(err, reply))
    })
  }

  /** The answer of onConnection: a connection handler upgrades the request, anything else refuses it. */
  #upgrade (handler: ConnectionHandler<D, M> | null | undefined, request: FastifyRequest, reply: FastifyReply,
    socket: Duplex, head: Buffer, connectionRequest: ConnectionRequest, done: (error?: Error) => void): void {
    if (handler === null || handler === undefined) return done(new WssConnectionRefusedError())
    if (typeof handler.onMessage !== 'function') {
      const error = new WssInvalidConnectionHandlerError()
      this.#serverError(ErrCode.INVALID_CONNECTION_HANDLER, error)
      return done(error)
    }
    // From here on the handler gets its onTerminate, whatever happens to the upgrade.
    if (this.#state !== State.Open) {
      this.#neverOpened(handler, connectionRequest)
      return done(gone(reply))
    }
    if (socket.destroyed || !socket.writable) {
      this.#neverOpened(handler, connectionRequest)
      return done()
    }
    reply.hijack()
    let opened = false
    try {
      this.#ws.handleUpgrade(request.raw, socket, head, (ws) => {
        opened = true
        this.#upgrades.taken(socket)
        // The HTTP response object is no longer needed once the socket is upgraded.
        if (reply.raw.socket === socket) reply.raw.detachSocket(socket as never)
        this.#accept(ws, handler, connectionRequest, socket, this.#upgrades.isInjected(request.raw))
      })
    } catch (err) {
      // ws refuses a socket that other code upgraded meanwhile: that code owns it now.
      this._fail(ErrCode.CONNECTION_FAILED, err)
    }
    // ws answered with an error (an extension it could not negotiate, say) and closed the socket.
    if (!opened) this.#neverOpened(handler, connectionRequest)
    done()
  }

  /** A connection handler whose connection never opened still gets its onTerminate (1006), with a Closed connection. */
  #neverOpened (handler: ConnectionHandler<D, M>, request: ConnectionRequest): void {
    const connection = WebSocketConnection._neverOpened(this, handler, request)
    connection._end({ type: 'terminate', code: 1006, reason: undefined })
  }

  /** The error onConnection threw, with the reply's status set from it; 5xx also go to onError. */
  #refusal (thrown: unknown, reply: FastifyReply): Error {
    const error = toError(thrown)
    const { statusCode, status } = error as { statusCode?: unknown, status?: unknown }
    const code = errorStatus(statusCode) ?? errorStatus(status) ?? 500
    if (code >= 500) this.#serverError(ErrCode.CONNECTION_FAILED, error)
    reply.code(code)
    return error
  }

  /**
   * A server error that is also the HTTP answer of the upgrade: to the
   * handler's onError; without one, Fastify's error handler logs it with
   * the request, so the plugin does not log it a second time.
   */
  #serverError (errCode: number, error: Error): void {
    if (typeof this.#handler.onError === 'function') this._fail(errCode, error)
    else this._meter.error(errCode, error, undefined)
  }

  #accept (socket: WebSocket, handler: ConnectionHandler<D, M>, request: ConnectionRequest, transport: Duplex, injected: boolean): void {
    const connection = new WebSocketConnection<D, M>(this, socket, handler, request, transport)
    this.#connections.add(connection)
    this._meter.opened(connection)
    this.#unfinished.add(connection)
    // `await app.injectWS()` resumes after the client's 'open': what onOpen
    // sends must wait until the test had its turn to listen for it.
    if (injected) setImmediate(openLater, connection)
    else connection._open()
  }

  /** @internal A connection is Closed: it leaves `connections`. */
  _remove (connection: WebSocketConnection<D, M>): void {
    this.#connections.delete(connection)
    this.#pressed.delete(connection)
  }

  /** @internal A closed connection keeps (`true`) or frees its slot of maxConnections while its queue is delivered. */
  _holdSlot (connection: WebSocketConnection<D, M>, held: boolean): void {
    if (held) this.#closedHolding.add(connection)
    else this.#closedHolding.delete(connection)
  }

  /** @internal A connection's onTerminate has finished. */
  _finished (connection: WebSocketConnection<D, M>): void {
    if (this.#unfinished.delete(connection) && this.#unfinished.size === 0) this.#whenFinished?.()
  }

  /**
   * @internal `delta` more bytes held for `connection` (its queue, its outbound
   * buffer). Past maxBufferedBytes the connection stops being read, and a
   * check starts that drops the connections holding the most.
   */
  _hold (delta: number, connection: WebSocketConnection<D, M>): void {
    this.#held += delta
    if (delta <= 0 || this.#held <= this.#maxHeld || this.#state > State.Draining) return
    this.#press(connection)
    this.#pressure ??= setTimeout(this.#relieve, 100)
  }

  /** Stops reading `connection` for the server budget (pausing twice for one reason does nothing more). */
  #press (connection: WebSocketConnection<D, M>): void {
    this.#pressed.add(connection)
    connection._inbound.pause(Pause.Server)
  }

  /**
   * While the server holds more than maxBufferedBytes: the connections that
   * hold the most are paused, and dropped (1008) when they were paused at
   * the previous check already, or are closed (their queue is dropped),
   * until what is left is under half of the bound. Under the bound, a paused
   * connection that holds nothing is read again; under half of it, every
   * paused connection is.
   */
  readonly #relieve = (): void => {
    this.#pressure = undefined
    if (this.#held <= this.#maxHeld / 2) {
      // Cleared first: a connection that reads again is pressed again at its
      // next count past the bound, not let through because it is still listed.
      const pressed = Array.from(this.#pressed)
      this.#pressed.clear()
      for (const connection of pressed) connection._inbound.resume(Pause.Server)
      return
    }
    if (this.#held <= this.#maxHeld) {
      // under the bound but above half of it: a paused connection that holds nothing reads again
      for (const connection of this.#pressed) {
        if (connection._holding !== 0) continue
        this.#pressed.delete(connection)
        connection._inbound.resume(Pause.Server)
      }
    } else {
      const excess = this.#held - this.#maxHeld / 2
      const holders = [...this.#connections, ...this.#closedHolding].sort((a, b) => b._holding - a._holding)
      let freed = 0
      for (const connection of holders) {
        if (freed >= excess || connection._holding === 0) break
        freed += connection._holding
        if (this.#pressed.delete(connection) || connection.status !== 'Connected') {
          connection._overload(new WssOverloadedError(this.#held, this.#maxHeld))
        } else {
          this.#press(connection)
        }
      }
    }
    if (this.#pressed.size !== 0 || this.#held > this.#maxHeld) this.#pressure = setTimeout(this.#relieve, 100)
  }

  /** @internal An error of the server itself. */
  _fail (errCode: number, error: unknown): void {
    const err = toError(error)
    this._meter.error(errCode, err, undefined)
    this._report({ type: 'error', errors: [errorEntry(errCode, err)] })
  }

  /** @internal An upgrade request on the route was answered with `status` instead of 101. */
  _refused (request: FastifyRequest, status: number): void {
    this._meter.refused(request, status)
  }

  /**
   * @internal Sends an error event to the handler's onError, else to the log:
   * errors of user code at `error` with their stack; errors a client caused
   * at `warn`, without a stack, at most once per connection per second.
   */
  _report (event: ServerErrorEvent<D, M>, connection?: WebSocketConnection<D, M>): void {
    if (connection !== undefined) event.connection = connection
    const handler = this.#handler
    if (typeof handler.onError === 'function') {
      invoke(handler, handler.onError, this, event, this._onErrorFailed, 0)
      return
    }
    const [entry] = event.errors
    if (connection === undefined || !clientErrors.has(entry.errCode)) {
      this._log.error({ err: entry.error, errCode: entry.errCode, connectionId: connection?.id }, `fastify-wss: ${entry.message}`)
      return
    }
    const now = Date.now()
    if (now - connection._logged < 1000) {
      connection._suppressed++
      return
    }
    const suppressed = connection._suppressed
    connection._logged = now
    connection._suppressed = 0
    this._log.warn({ errCode: entry.errCode, connectionId: connection.id, suppressed }, `fastify-wss: ${entry.message}`)
  }
}

/**
 * The refusal of an upgrade to a terminated server: 503, with `Retry-After: 1`
 * (seconds). A client should try again soon: the load balancer sends it to
 * another instance, or to this one once it has restarted; refusing costs the
 * terminated server nothing.
 */
function gone (reply: FastifyReply): Error {
  reply.header('retry-after', '1')
  return new WssUnavailableError('is terminated')
}

function openLater (connection: WebSocketConnection<any, any>): void {
  connection._open()
}

/** A status in 400–599, read as Fastify's error handler reads it (a numeric string counts), so both agree. */
function errorStatus (value: unknown): number | undefined {
  const number = typeof value === 'number' || typeof value === 'string' ? Number(value) : NaN
  return number >= 400 && number <= 599 ? number : undefined
}

/** The §3 request object: headers (repeated ones as arrays), query, url, remoteAddress, params. */
function buildRequest (request: FastifyRequest): ConnectionRequest {
  return {
    headers: collectHeaders(request),
    query: request.query as ConnectionRequest['query'],
    url: request.originalUrl,
    remoteAddress: request.ip,
    params: request.params as ConnectionRequest['params']
  }
}

/**
 * The headers object: no inherited keys (its prototype is an empty object
 * without a prototype), yet a fast-properties object whose shape is shared
 * by requests with the same header names, unlike `Object.create(null)`.
 */
const Headers = function () {} as unknown as new () => ConnectionRequest['headers']
Headers.prototype = Object.create(null)

function collectHeaders (request: FastifyRequest): ConnectionRequest['headers'] {
  const headers = new Headers()
  const parsed = request.raw.headers
  const raw = request.raw.rawHeaders
  if (raw === undefined) {
    // app.injectWS builds a request without rawHeaders
    for (const [name, value] of Object.entries(parsed)) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value : String(value)
    }
    return headers
  }
  // Node's own object, already parsed, has the same names and values when no
  // header was sent twice: copy it, rather than lower-case every name again.
  let count = 0
  for (const name of Object.keys(parsed)) {
    const value = parsed[name]
    if (typeof value !== 'string') break
    headers[name] = value
    count++
  }
  if (count * 2 === raw.length) return headers
  return fromRawHeaders(raw)
}

/** Headers with the repeated ones as arrays, in order. */
function fromRawHeaders (raw: string[]): ConnectionRequest['headers'] {
  const headers = new Headers()
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase()
    const value = raw[i + 1]
    const previous = headers[name]
    if (previous === undefined) headers[name] = value
    else if (typeof previous === 'string') headers[name] = [previous, value]
    else previous.push(value)
  }
  return headers
}

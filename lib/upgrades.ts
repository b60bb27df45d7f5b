import { EventEmitter } from 'node:events'
import { ServerResponse, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'

const kSocket = Symbol('fastify-wss.socket')
const kHead = Symbol('fastify-wss.head')
const kInjected = Symbol('fastify-wss.injected')

/** An upgrade request, with the socket and first packet Node gave with it. */
export interface UpgradeRequest extends IncomingMessage {
  [kSocket]?: Duplex
  [kHead]?: Buffer
  [kInjected]?: boolean
}

type UpgradeListener = (req: UpgradeRequest, socket: Duplex, head: Buffer) => void

interface HttpServer {
  prependListener (event: 'upgrade', listener: UpgradeListener): unknown
  removeListener (event: 'upgrade', listener: UpgradeListener): unknown
  listeners (event: 'upgrade'): Function[]
}

/** What routes an upgrade request through the app: Fastify's router, or the app's own `@fastify/websocket`. */
type Dispatch = (req: UpgradeRequest, socket: Duplex, head: Buffer) => void

/** What `terminateAll` closes: every fastify-wss server on the HTTP server, at once. */
interface Terminable {
  terminate (): Promise<void>
}

/** A `Sec-WebSocket-Key`: base64 of 16 bytes. */
const keyPattern = /^[+/0-9A-Za-z]{22}==$/

const registry = new WeakMap<object, Upgrades>()

/**
 * The upgrade requests of one HTTP server, shared by every fastify-wss server
 * on it. One `upgrade` listener checks the handshake (a bad one is answered
 * 400 or 426 before any user code runs), keeps the request's socket where
 * the route finds it, routes the request through the app, and closes the
 * socket once a plain HTTP answer was written on it: only a fastify-wss
 * server (or a route the app declared with `{ websocket: true }`) upgrades.
 *
 * Node stops watching a socket once it emits `upgrade`, so nobody would ever
 * close one whose upgrade is never completed: a client that stalls, an
 * onConnection that never answers, an upgrade another context answered with
 * an HTTP error. Such a socket is destroyed `timeout` ms after its request,
 * unless something reads from it by then (an upgrade done by other code).
 * One timer for all of them, rather than one per socket.
 */
export class Upgrades {
  /** Sockets not yet taken, with their deadlines, in the order they came. */
  readonly #deadlines = new Map<Duplex, number>()
  readonly #server: HttpServer
  /** The handshakeTimeout of each fastify-wss server using this one. */
  readonly #timeouts: number[] = []
  #timeout = Infinity
  #timer: NodeJS.Timeout | undefined
  /** How a checked upgrade request is routed; set by the first fastify-wss server. */
  dispatch: Dispatch | undefined
  /** Where `@fastify/websocket`'s `injectWS` emits its requests, when fastify-wss registered it. */
  readonly injected = new EventEmitter()
  /** The fastify-wss servers on this HTTP server. */
  readonly servers = new Set<Terminable>()

  /** The upgrades of `server`, made on first use. */
  static of (server: HttpServer): Upgrades {
    let upgrades = registry.get(server)
    if (upgrades === undefined) {
      upgrades = new Upgrades(server)
      registry.set(server, upgrades)
    }
    return upgrades
  }

  private constructor (server: HttpServer) {
    this.#server = server
  }

  /** A fastify-wss server starts using these upgrades; the shortest timeout applies to all. */
  join (timeout: number): void {
    // Prepended, so it runs before the listener that starts the routing.
    if (this.#timeouts.length === 0) {
      this.#server.prependListener('upgrade', this.#onUpgrade)
      this.injected.on('upgrade', this.#onUpgrade)
    }
    this.#timeouts.push(timeout)
    this.#timeout = Math.min(...this.#timeouts)
  }

  /** A fastify-wss server has closed. */
  leave (timeout: number): void {
    this.#timeouts.splice(this.#timeouts.indexOf(timeout), 1)
    this.#timeout = Math.min(...this.#timeouts)
    if (this.#timeouts.length === 0) {
      this.#server.removeListener('upgrade', this.#onUpgrade)
      this.injected.removeListener('upgrade', this.#onUpgrade)
    }
  }

  /**
   * Takes over the `upgrade` listener of `@fastify/websocket` (the one the
   * plugin registered on `injected`, else the app's own on the HTTP server):
   * it is called from here, after the handshake was checked, so that no
   * request is routed twice or unchecked.
   */
  adopt (): Dispatch {
    const own = this.injected.listeners('upgrade')[0] as Dispatch | undefined
    if (own !== undefined) {
      this.injected.removeAllListeners('upgrade')
      return own
    }
    const listener = this.#server.listeners('upgrade').find((fn) => fn.name === 'onUpgrade') as Dispatch
    this.#server.removeListener('upgrade', listener)
    return listener
  }

  /** Closes every fastify-wss server on this HTTP server at once, so that their shutdown deadlines do not add up. */
  async terminateAll (): Promise<void> {
    await Promise.all(Array.from(this.servers, (server) => server.terminate()))
  }

  /** The socket of an upgrade request, `undefined` for a plain request. */
  socket (req: IncomingMessage): Duplex | undefined {
    return (req as UpgradeRequest)[kSocket]
  }

  /** Whether the request was made by `app.injectWS`, in memory. */
  isInjected (req: IncomingMessage): boolean {
    return (req as UpgradeRequest)[kInjected] === true
  }

  head (req: IncomingMessage): Buffer {
    return (req as UpgradeRequest)[kHead] as Buffer
  }

  /** The socket is upgraded or closed: stop watching it. */
  taken (socket: Duplex): void {
    this.#deadlines.delete(socket)
  }

  readonly #onUpgrade = (req: UpgradeRequest, socket: Duplex, head: Buffer): void => {
    // app.injectWS builds a request without the socket Node would give it, nor a Host.
    if (req.socket === undefined) {
      req.headers.host ??= 'localhost:80'
      Object.defineProperty(req, 'socket', { value: { remoteAddress: '127.0.0.1', encrypted: false }, configurable: true })
      req[kInjected] = true
      // Its in-memory stream does not close by itself once both sides have
      // ended, as a TCP socket does: without this the close would wait for closeTimeout.
      let ended = 0
      const both = (): void => { if (++ended === 2) socket.destroy() }
      socket.once('end', both)
      socket.once('finish', both)
    }
    const invalid = invalidHandshake(req)
    if (invalid !== undefined) {
      refuse(socket, invalid)
      return
    }
    // Node removed its own error listener before the 'upgrade' event.
    socket.on('error', destroy)
    req[kSocket] = socket
    req[kHead] = head
    this.#deadlines.set(socket, Date.now() + this.#timeout)
    this.#timer ??= setTimeout(this.#sweep, this.#timeout).unref()
    const dispatch = this.dispatch as Dispatch
    dispatch(req, socket, head)
    // A plain HTTP answer written on the socket (a refusal, a 404, a route
    // that is no WebSocket route): nothing more is read from it, and it is
    // closed once the answer is written.
    const res = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage
    if (res instanceof ServerResponse) res.once('finish', () => { this.#answered(socket) })
  }

  #answered (socket: Duplex): void {
    this.taken(socket)
    socket.once('finish', destroy)
    socket.end()
  }

  readonly #sweep = (): void => {
    this.#timer = undefined
    const now = Date.now()
    for (const [socket, deadline] of this.#deadlines) {
      if (deadline > now) {
        this.#timer = setTimeout(this.#sweep, deadline - now).unref()
        return
      }
      this.#deadlines.delete(socket)
      if (socket.listenerCount('data') === 0) socket.destroy()
    }
  }
}

/**
 * Why an upgrade request is no WebSocket handshake (RFC 6455 §4.2.1), as the
 * status to answer and a message; `undefined` when it is one. `Connection:
 * upgrade` needs no check: without it Node does not emit 'upgrade'.
 */
export function invalidHandshake (req: IncomingMessage): { status: 400 | 426, message: string } | undefined {
  const { headers } = req
  if (req.method !== 'GET') return { status: 400, message: 'the method must be GET' }
  if (String(headers.upgrade).toLowerCase() !== 'websocket') return { status: 400, message: 'the Upgrade header must be websocket' }
  const key = headers['sec-websocket-key']
  if (typeof key !== 'string' || !keyPattern.test(key.trim())) return { status: 400, message: 'the Sec-WebSocket-Key header must be base64 of 16 bytes' }
  const version = String(headers['sec-websocket-version'])
  if (version !== '13' && version !== '8') return { status: 426, message: 'the Sec-WebSocket-Version must be 13' }
  if (typeof headers.host !== 'string' || headers.host === '') return { status: 400, message: 'the Host header is missing' }
  return undefined
}

function destroy (this: Duplex): void {
  this.destroy()
}

const reasons = { 400: 'Bad Request', 426: 'Upgrade Required' } as const

/**
 * Answers a bad handshake and closes the socket, without routing the
 * request: the JSON body of Fastify's error replies, code FST_WSS_NOT_WEBSOCKET.
 */
function refuse (socket: Duplex, { status, message }: { status: 400 | 426, message: string }): void {
  const body = JSON.stringify({
    statusCode: status,
    code: 'FST_WSS_NOT_WEBSOCKET',
    error: reasons[status],
    message: `Invalid WebSocket handshake: ${message}`
  })
  const version = status === 426 ? 'Sec-WebSocket-Version: 13\r\n' : ''
  socket.once('finish', destroy)
  socket.once('error', destroy)
  socket.end(`HTTP/1.1 ${status} ${reasons[status]}\r\nConnection: close\r\n${version}Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
}

import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'

const kSocket = Symbol('fastify-wss.socket')
const kHead = Symbol('fastify-wss.head')

/** An upgrade request, with the socket and first packet Node gave with it. */
export interface UpgradeRequest extends IncomingMessage {
  [kSocket]?: Duplex
  [kHead]?: Buffer
}

interface HttpServer {
  prependListener (event: 'upgrade', listener: (req: UpgradeRequest, socket: Duplex, head: Buffer) => void): unknown
  removeListener (event: 'upgrade', listener: (req: UpgradeRequest, socket: Duplex, head: Buffer) => void): unknown
}

const registry = new WeakMap<object, Upgrades>()

/**
 * The upgrade requests of one HTTP server, shared by every fastify-wss server
 * on it: one `upgrade` listener keeps each request's socket where the route
 * finds it, and watches the socket until it is taken.
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
  /** Whether fastify-wss registered `@fastify/websocket` for this HTTP server. */
  dispatching = false

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
    if (this.#timeouts.length === 0) this.#server.prependListener('upgrade', this.#onUpgrade)
    this.#timeouts.push(timeout)
    this.#timeout = Math.min(...this.#timeouts)
  }

  /** A fastify-wss server has closed. */
  leave (timeout: number): void {
    this.#timeouts.splice(this.#timeouts.indexOf(timeout), 1)
    this.#timeout = Math.min(...this.#timeouts)
    if (this.#timeouts.length === 0) this.#server.removeListener('upgrade', this.#onUpgrade)
  }

  /** The socket of an upgrade request, `undefined` for a plain request. */
  socket (req: IncomingMessage): Duplex | undefined {
    return (req as UpgradeRequest)[kSocket]
  }

  head (req: IncomingMessage): Buffer {
    return (req as UpgradeRequest)[kHead] as Buffer
  }

  /** The socket is upgraded or closed: stop watching it. */
  taken (socket: Duplex): void {
    this.#deadlines.delete(socket)
  }

  readonly #onUpgrade = (req: UpgradeRequest, socket: Duplex, head: Buffer): void => {
    req[kSocket] = socket
    req[kHead] = head
    this.#deadlines.set(socket, Date.now() + this.#timeout)
    this.#timer ??= setTimeout(this.#sweep, this.#timeout).unref()
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

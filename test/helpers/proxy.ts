import { once } from 'node:events'
import { createServer, connect, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy on a loopback port in front of a server, that a test can cut
 * and restore, so that one client loses its server while others keep it.
 *
 * - `cut()`: every connection through it is destroyed, and new ones are
 *   destroyed as soon as they are accepted, until `restore()`;
 * - `mute()`: what the client sends still reaches the server, but nothing
 *   comes back (the server acts, the client never hears of it).
 */
export class TcpProxy {
  readonly #server: Server
  readonly #target: number
  readonly #pairs = new Set<[Socket, Socket]>()
  #state: 'open' | 'cut' | 'muted' = 'open'

  private constructor (server: Server, target: number) {
    this.#server = server
    this.#target = target
    server.on('connection', (client) => this.#accept(client))
  }

  /** Starts a proxy to `127.0.0.1:target`. */
  static async start (target: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(createServer(), target)
    proxy.#server.listen(0, '127.0.0.1')
    await once(proxy.#server, 'listening')
    return proxy
  }

  get port (): number {
    return (this.#server.address() as { port: number }).port
  }

  /** redis://127.0.0.1:PORT */
  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  cut (): void {
    this.#state = 'cut'
    for (const [client, upstream] of this.#pairs) {
      client.destroy()
      upstream.destroy()
    }
    this.#pairs.clear()
  }

  mute (): void {
    this.#state = 'muted'
  }

  restore (): void {
    this.#state = 'open'
  }

  /** Closes every connection and the listening socket. */
  async close (): Promise<void> {
    this.cut()
    this.#server.close()
    await once(this.#server, 'close')
  }

  #accept (client: Socket): void {
    if (this.#state === 'cut') {
      client.destroy()
      return
    }
    const upstream = connect(this.#target, '127.0.0.1')
    const pair: [Socket, Socket] = [client, upstream]
    this.#pairs.add(pair)
    const end = (): void => {
      this.#pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    for (const socket of pair) {
      socket.on('error', end)
      socket.on('close', end)
    }
    client.on('data', (chunk: Buffer) => upstream.write(chunk))
    upstream.on('data', (chunk: Buffer) => {
      if (this.#state === 'open') client.write(chunk)
    })
  }
}

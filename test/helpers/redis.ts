import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { once } from 'node:events'
import { createServer, connect as netConnect } from 'node:net'
import { delimiter, join } from 'node:path'

/** The path of `redis-server` on the PATH, or `undefined`. */
export function findRedisServer (): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, 'redis-server')
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

/** A free loopback TCP port (free when this resolves). */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** Whether a Redis server answers PING on the port. */
async function answersPing (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1')
    let reply = ''
    socket.setEncoding('utf8')
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk: string) => {
      reply += chunk
      if (reply.includes('\r\n')) {
        socket.destroy()
        resolve(reply.startsWith('+PONG'))
      }
    })
    socket.on('error', () => resolve(false))
  })
}

/**
 * A throwaway redis-server on a loopback port, without persistence unless
 * `args` turn it on. It can be stopped (killed, as in a crash) and started
 * again on the same port.
 */
export class RedisServer {
  readonly port: number
  readonly #bin: string
  readonly #args: string[]
  #child: ChildProcess | undefined

  private constructor (bin: string, port: number, args: string[]) {
    this.#bin = bin
    this.port = port
    this.#args = args
  }

  /**
   * Starts a server on a free port and waits until it answers PING. `args`
   * follow the defaults and win over them (`--appendonly yes --dir ...`).
   */
  static async start (bin: string, args: string[] = []): Promise<RedisServer> {
    const server = new RedisServer(bin, await freePort(), args)
    await server.restart()
    return server
  }

  /** redis://127.0.0.1:PORT */
  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get running (): boolean {
    return this.#child !== undefined
  }

  /** Starts the server again on its port (after `stop`) and waits until it answers PING. */
  async restart (): Promise<void> {
    const child = spawn(this.#bin, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...this.#args], {
      stdio: ['ignore', 'ignore', 'inherit']
    })
    this.#child = child
    let exited = false
    child.once('exit', () => { exited = true })
    for (let i = 0; i < 500; i++) {
      if (exited) throw new Error(`redis-server exited at start on port ${this.port}`)
      if (await answersPing(this.port)) return
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    throw new Error(`redis-server did not answer on port ${this.port}`)
  }

  /** Kills the server (SIGKILL, as in a crash) and waits until it has exited. */
  async stop (): Promise<void> {
    const child = this.#child
    if (child === undefined) return
    this.#child = undefined
    if (child.exitCode !== null || child.signalCode !== null) return
    const exit = once(child, 'exit')
    child.kill('SIGKILL')
    await exit
  }
}

/**
 * Waits until the async `predicate()` is true, checking every few
 * milliseconds; rejects after `limit` checks so that a test cannot hang.
 */
export async function eventually (predicate: () => Promise<boolean>, what: string, limit = 500): Promise<void> {
  for (let i = 0; i < limit; i++) {
    if (await predicate()) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`gave up waiting until ${what}`)
}

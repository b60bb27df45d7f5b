import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { once } from 'node:events'
import { createServer, connect as netConnect } from 'node:net'
import { delimiter, join } from 'node:path'
import t, { type Test } from 'tap'
import type { WebSocketConnection, WssAdapter, WssErrorEntry, WssPluginOptions } from '../../lib/index.js'
import { start } from './index.js'

/**
 * Runs `suite` with the path of `redis-server`. Without one on the PATH the
 * file is skipped, loudly, with what to install; under `CI=true` it fails.
 */
export async function withRedisServer (what: string, suite: (bin: string) => Promise<void>): Promise<void> {
  const bin = findRedisServer()
  if (bin !== undefined) return await suite(bin)
  const missing = `redis-server not found: install it (apt-get install redis-server, 7.0 or later) to run ${what}`
  if (process.env.CI === 'true') {
    t.fail(missing)
  } else {
    console.error(`\n${'!'.repeat(78)}\n!! ${missing}\n${'!'.repeat(78)}\n`)
    t.plan(0, missing)
  }
}

/** An app of the adapter tests, from {@link startNode}. */
export interface TestNode {
  app: Awaited<ReturnType<typeof start>>['app']
  url: string
  opened: Array<WebSocketConnection<any>>
  errors: WssErrorEntry[]
  /** Resolves with the first error entry (already reported or to come) whose message matches. */
  error (match: RegExp): Promise<WssErrorEntry>
}

/** An app with the plugin on /ws and `adapter`, recording its connections and its server errors. */
export async function startNode (test: Test, adapter: WssAdapter, extra: Partial<WssPluginOptions<any>> = {}): Promise<TestNode> {
  const opened: Array<WebSocketConnection<any>> = []
  const errors: WssErrorEntry[] = []
  const waiters: Array<{ match: RegExp, resolve: (entry: WssErrorEntry) => void }> = []
  const { app, base } = await start(test, {
    path: '/ws',
    adapter,
    ...extra,
    handler: {
      onConnection: () => ({ onOpen (ws: WebSocketConnection<any>) { opened.push(ws) }, onMessage () {} }),
      onError (_wss, event) {
        for (const entry of event.errors) {
          errors.push(entry)
          for (let i = waiters.length - 1; i >= 0; i--) {
            if (waiters[i].match.test(entry.message)) waiters.splice(i, 1)[0].resolve(entry)
          }
        }
      }
    }
  })
  return {
    app,
    url: `${base}/ws`,
    opened,
    errors,
    async error (match) {
      const found = errors.find((entry) => match.test(entry.message))
      if (found !== undefined) return found
      return await new Promise((resolve) => waiters.push({ match, resolve }))
    }
  }
}

/** The path of `redis-server` on the PATH, or `undefined`. */
function findRedisServer (): string | undefined {
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

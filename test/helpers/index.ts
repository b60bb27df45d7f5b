import { once } from 'node:events'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import wssPlugin, { type WssPluginOptions } from '../../lib/index.js'

// A test that leads to an uncaught exception or an unhandled rejection fails.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (err) => {
    t.fail(`${event}: ${(err as Error)?.stack ?? String(err)}`)
  })
}

export interface Started {
  app: FastifyInstance
  /** ws://127.0.0.1:PORT */
  base: string
}

/** A fresh app with the plugin, listening on a random loopback port, closed at the end of the test. */
export async function start (test: Test, options: WssPluginOptions<any>, fastifyOptions: FastifyServerOptions = {}): Promise<Started> {
  const app = Fastify(fastifyOptions)
  test.teardown(() => app.close())
  await app.register(wssPlugin, options)
  return { app, base: await listen(app) }
}

export async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address() as { port: number }
  return `ws://127.0.0.1:${address.port}`
}

/** Messages that reached a client before `connect` returned it, kept for `messages`. */
const early = new WeakMap<WebSocket, Buffer[]>()

/**
 * Opens a client and waits for the handshake; terminated at the end of the
 * test. Messages that arrive with the handshake (sent from onOpen) are kept
 * for the first `messages()` call on this client.
 */
export async function connect (test: Test, url: string, options?: WebSocket.ClientOptions): Promise<WebSocket> {
  const ws = new WebSocket(url, options)
  test.teardown(() => ws.terminate())
  const kept: Buffer[] = []
  const keep = (data: Buffer): void => { kept.push(data) }
  ws.on('message', keep)
  await once(ws, 'open')
  ws.off('message', keep)
  if (kept.length !== 0) early.set(ws, kept)
  return ws
}

/** The HTTP status an upgrade attempt was refused with. */
export async function refusal (url: string, options?: WebSocket.ClientOptions): Promise<{ status: number, body: string }> {
  const ws = new WebSocket(url, options)
  return await new Promise((resolve, reject) => {
    ws.on('open', () => { ws.terminate(); reject(new Error('the upgrade was accepted')) })
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode as number, body }))
    })
    ws.on('error', reject)
  })
}

/** Collects the next `count` messages of a client, as strings. */
export async function messages (ws: WebSocket, count: number): Promise<string[]> {
  const received: string[] = (early.get(ws) ?? []).map(String)
  early.delete(ws)
  if (received.length >= count) {
    early.set(ws, received.splice(count).map((text) => Buffer.from(text)))
    return received
  }
  return await new Promise((resolve) => {
    const onMessage = (data: Buffer): void => {
      received.push(data.toString())
      if (received.length === count) {
        ws.off('message', onMessage)
        resolve(received)
      }
    }
    ws.on('message', onMessage)
  })
}

/** Resolves with the code and reason the client's connection closed with. */
export async function closed (ws: WebSocket): Promise<{ code: number, reason: string }> {
  const [code, reason] = await once(ws, 'close') as [number, Buffer]
  return { code, reason: reason.toString() }
}

/** A promise with its resolve function, for waiting on a callback. */
export function deferred<T = void> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}

import { connect as netConnect } from 'node:net'
import WebSocket from 'ws'

/** The http:// address of a ws:// base. */
export function httpUrl (base: string, path = '/'): string {
  return base.replace(/^ws:/, 'http:') + path
}

/** The port of a ws://127.0.0.1:PORT base. */
export function portOf (base: string): number {
  return Number(new URL(base).port)
}

/**
 * Sends `lines` (the request line and headers, without the final blank line)
 * over a raw TCP socket and resolves with everything the server sent until it
 * ended the connection, and the status code of the first response line.
 */
export async function rawRequest (base: string, lines: string[]): Promise<{ status: number, text: string }> {
  const socket = netConnect(portOf(base), '127.0.0.1')
  let text = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => { text += chunk })
  socket.write(lines.join('\r\n') + '\r\n\r\n')
  await new Promise<void>((resolve) => {
    socket.on('close', () => resolve())
    socket.on('error', () => {})
  })
  const match = /^HTTP\/1\.1 (\d{3})/.exec(text)
  return { status: match === null ? 0 : Number(match[1]), text }
}

/** What became of an upgrade attempt: an HTTP refusal, or a connection and the code it was closed with. */
export type Outcome = { refused: number } | { closedWith: number }

/** Opens a client and reports whether it was refused, or opened and then closed by the server. */
export async function attempt (url: string, options?: WebSocket.ClientOptions): Promise<Outcome> {
  const ws = new WebSocket(url, options)
  return await new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      res.resume()
      resolve({ refused: res.statusCode as number })
      ws.terminate()
    })
    ws.on('close', (code: number) => resolve({ closedWith: code }))
    ws.on('error', reject)
  })
}

/**
 * Helpers for the memory and flow tests: watching a connection's inbound
 * queue at every push, packing many frames into one TCP write, and an
 * upgrade request prepared in advance so that it reaches the server at a
 * chosen moment.
 */
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'
import { Opcode, frame } from './frames.js'

type Test = { teardown: (fn: () => unknown) => void }

/** The part of a connection's `_inbound` the watcher reads. */
interface Queue {
  length: number
  bytes: number
  push (data: Buffer, binary: boolean): void
}

/** The largest length and byte count a queue reached, sampled right after every push. */
export interface QueueWatch {
  maxLength: number
  maxBytes: number
  pushes: number
}

/**
 * Records the queue's length and bytes after every push (the moments they
 * grow), calling the queue's own `push` unchanged. A timer could not see
 * them: `ws` parses one TCP read synchronously.
 */
export function watchQueue (queue: Queue): QueueWatch {
  const watch: QueueWatch = { maxLength: queue.length, maxBytes: queue.bytes, pushes: 0 }
  const push = queue.push
  queue.push = function (data: Buffer, binary: boolean): void {
    push.call(this, data, binary)
    watch.pushes++
    if (this.length > watch.maxLength) watch.maxLength = this.length
    if (this.bytes > watch.maxBytes) watch.maxBytes = this.bytes
  }
  return watch
}

/** `count` masked final text frames, the i-th with payload `payload(i)`, as one buffer for one write. */
export function textFrames (count: number, payload: (i: number) => string): Buffer {
  const frames: Buffer[] = []
  for (let i = 0; i < count; i++) frames.push(frame({ opcode: Opcode.Text, payload: payload(i) }))
  return Buffer.concat(frames)
}

/**
 * One message as `parts` fragments: a first frame with `opcode`, then
 * continuation frames, the last one final. Returns the frames as one buffer.
 */
export function fragmented (message: Buffer, parts: number, opcode: number = Opcode.Text): Buffer {
  const size = Math.ceil(message.length / parts)
  const frames: Buffer[] = []
  for (let i = 0; i < parts; i++) {
    frames.push(frame({
      opcode: i === 0 ? opcode : Opcode.Continuation,
      fin: i === parts - 1,
      payload: message.subarray(i * size, (i + 1) * size)
    }))
  }
  return Buffer.concat(frames)
}

/** An HTTP response as read from a raw socket. */
export interface RawResponse {
  status: number
  body: string
}

/**
 * An upgrade request written but for its final CRLF: `finish()` sends the
 * rest and resolves with the answer, so the request is handled right at the
 * moment the test chooses, without a connection setup in between.
 */
export async function preparedUpgrade (test: Test, url: string): Promise<{ finish: () => Promise<RawResponse> }> {
  const target = new URL(url)
  const socket = net.connect({ host: target.hostname, port: Number(target.port) })
  test.teardown(() => { socket.destroy() })
  socket.on('error', () => {})
  await once(socket, 'connect')
  let received = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { received += chunk })
  socket.write([
    `GET ${target.pathname}${target.search} HTTP/1.1`,
    `Host: ${target.host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ''
  ].join('\r\n'))
  return {
    async finish () {
      const headEnd = (): number => received.indexOf('\r\n\r\n')
      const complete = (): boolean => {
        const end = headEnd()
        if (end === -1) return false
        if (/^HTTP\/1\.1 101 /.test(received)) return true
        const length = /\r\ncontent-length: *(\d+)/i.exec(received.slice(0, end))
        return length === null || received.length - end - 4 >= Number(length[1])
      }
      socket.write('\r\n')
      const ended = once(socket, 'close')
      while (!complete() && !socket.destroyed) await Promise.race([once(socket, 'data'), ended])
      const end = headEnd()
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0)
      socket.destroy()
      return { status, body: end === -1 ? '' : received.slice(end + 4) }
    }
  }
}

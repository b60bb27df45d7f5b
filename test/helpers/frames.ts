/**
 * Raw WebSocket over `node:net`: a hand-made opening handshake, frames built
 * byte by byte, and a parser for what the server sends back. For the
 * protocol-level faults the `ws` client refuses to produce (invalid UTF-8,
 * reserved bits, unknown opcodes, unmasked client frames, lying lengths...).
 *
 * @example
 * const client = await rawConnect(t, `${base}/chat`)
 * client.send({ opcode: Opcode.Text, payload: Buffer.from([0xff, 0xfe]) })
 * const reply = await client.nextFrame() // the server's close frame, or undefined
 * if (reply !== undefined) t.equal(closeCode(reply), 1007)
 */
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'

type Test = { teardown: (fn: () => unknown) => void }

/** The opcodes of RFC 6455, §5.2. Any other 4-bit value may be passed to `frame()` too. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa
} as const

/** How to build one frame. Every field is optional: the default is an empty, final, masked text frame. */
export interface FrameOptions {
  /** 4-bit opcode; default `Opcode.Text`. */
  opcode?: number
  /** The payload (a string is UTF-8 encoded); default empty. */
  payload?: Buffer | Uint8Array | string
  /** The FIN bit; default `true`. */
  fin?: boolean
  /** The RSV1 bit (permessage-deflate's "compressed" flag); default `false`. */
  rsv1?: boolean
  /** The RSV2 bit; default `false`. */
  rsv2?: boolean
  /** The RSV3 bit; default `false`. */
  rsv3?: boolean
  /** Whether to mask the payload, as a client must; default `true`. */
  mask?: boolean
  /** The 4-byte masking key; default random. */
  maskKey?: Buffer
  /**
   * The payload length written in the header, when it should differ from the
   * real one (e.g. announce a huge message and send only its first bytes).
   */
  declaredLength?: number
}

/** Builds one frame. */
export function frame (options: FrameOptions = {}): Buffer {
  const {
    opcode = Opcode.Text,
    fin = true,
    rsv1 = false,
    rsv2 = false,
    rsv3 = false,
    mask = true
  } = options
  const payload = toBuffer(options.payload ?? Buffer.alloc(0))
  const length = options.declaredLength ?? payload.length

  let header: Buffer
  if (length < 126) {
    header = Buffer.alloc(2)
    header[1] = length
  } else if (length < 0x10000) {
    header = Buffer.alloc(4)
    header[1] = 126
    header.writeUInt16BE(length, 2)
  } else {
    header = Buffer.alloc(10)
    header[1] = 127
    header.writeBigUInt64BE(BigInt(length), 2)
  }
  header[0] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (rsv2 ? 0x20 : 0) | (rsv3 ? 0x10 : 0) | (opcode & 0x0f)
  if (!mask) return Buffer.concat([header, payload])

  header[1] |= 0x80
  const key = options.maskKey ?? randomBytes(4)
  const masked = Buffer.alloc(payload.length)
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i] ^ key[i & 3]
  return Buffer.concat([header, key.subarray(0, 4), masked])
}

/** The payload of a close frame: a 2-byte code, then an optional UTF-8 reason. */
export function closePayload (code: number, reason = ''): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason))
  payload.writeUInt16BE(code, 0)
  payload.write(reason, 2)
  return payload
}

/** One parsed frame. */
export interface RawFrame {
  fin: boolean
  rsv1: boolean
  rsv2: boolean
  rsv3: boolean
  opcode: number
  masked: boolean
  /** The payload, unmasked. */
  payload: Buffer
}

/** The close code of a close frame, `undefined` when it has none (or is not a close frame). */
export function closeCode (received: RawFrame): number | undefined {
  if (received.opcode !== Opcode.Close || received.payload.length < 2) return undefined
  return received.payload.readUInt16BE(0)
}

/** The close reason of a close frame ('' when none). */
export function closeReason (received: RawFrame): string {
  return received.opcode === Opcode.Close ? received.payload.subarray(2).toString() : ''
}

/** Splits a byte stream into the complete frames at its start and the bytes left over. */
export function parseFrames (buffer: Buffer): { frames: RawFrame[], rest: Buffer } {
  const frames: RawFrame[] = []
  let offset = 0
  for (;;) {
    if (buffer.length - offset < 2) break
    const b0 = buffer[offset]
    const b1 = buffer[offset + 1]
    const masked = (b1 & 0x80) !== 0
    let length = b1 & 0x7f
    let position = offset + 2
    if (length === 126) {
      if (buffer.length < position + 2) break
      length = buffer.readUInt16BE(position)
      position += 2
    } else if (length === 127) {
      if (buffer.length < position + 8) break
      length = Number(buffer.readBigUInt64BE(position))
      position += 8
    }
    let key: Buffer | undefined
    if (masked) {
      if (buffer.length < position + 4) break
      key = buffer.subarray(position, position + 4)
      position += 4
    }
    if (buffer.length < position + length) break
    const payload = Buffer.from(buffer.subarray(position, position + length))
    if (key !== undefined) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3]
    frames.push({
      fin: (b0 & 0x80) !== 0,
      rsv1: (b0 & 0x40) !== 0,
      rsv2: (b0 & 0x20) !== 0,
      rsv3: (b0 & 0x10) !== 0,
      opcode: b0 & 0x0f,
      masked,
      payload
    })
    offset = position + length
  }
  return { frames, rest: buffer.subarray(offset) }
}

/** Options of `rawConnect`. */
export interface RawConnectOptions {
  /** Extra request headers (e.g. `Origin`, `Sec-WebSocket-Extensions`). */
  headers?: Record<string, string>
}

/** A raw client past a successful (101) handshake. */
export interface RawClient {
  socket: net.Socket
  /** The 101 response's headers, lower-cased names. */
  headers: Record<string, string>
  /** Writes a frame built from options, or bytes as they are. */
  send (data: FrameOptions | Buffer): void
  /** The next frame from the server; `undefined` once the socket has closed with no frame left. */
  nextFrame (): Promise<RawFrame | undefined>
  /** Resolves when the TCP socket has closed (by either side). */
  closed: Promise<void>
  /** The socket error seen, if any (a reset when the server destroys the socket). */
  error: Error | undefined
}

/**
 * Opens a TCP connection to a `ws://host:port/path` URL and performs the
 * opening handshake by hand. Rejects when the answer is not a valid 101.
 * The socket is destroyed at the end of the test.
 */
export async function rawConnect (test: Test, url: string, options: RawConnectOptions = {}): Promise<RawClient> {
  const target = new URL(url)
  const socket = net.connect({ host: target.hostname, port: Number(target.port) })
  test.teardown(() => { socket.destroy() })

  let error: Error | undefined
  socket.on('error', (err) => { error = err })
  const closed = once(socket, 'close').then(() => {})
  await once(socket, 'connect')

  const key = randomBytes(16).toString('base64')
  const lines = [
    `GET ${target.pathname}${target.search} HTTP/1.1`,
    `Host: ${target.host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${key}`,
    'Sec-WebSocket-Version: 13',
    ...Object.entries(options.headers ?? {}).map(([name, value]) => `${name}: ${value}`)
  ]
  // One reader for the whole life of the socket: the response head first,
  // then frames, parsed as they arrive and handed to waiters in order.
  let buffered: Buffer = Buffer.alloc(0)
  let onHead: ((head: string) => void) | undefined
  const frames: RawFrame[] = []
  const waiters: Array<(received: RawFrame | undefined) => void> = []
  let ended = false
  const take = (): void => {
    const parsed = parseFrames(buffered)
    buffered = parsed.rest
    frames.push(...parsed.frames)
    while (frames.length !== 0 && waiters.length !== 0) (waiters.shift() as (f: RawFrame) => void)(frames.shift() as RawFrame)
  }
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    if (onHead !== undefined) {
      const end = buffered.indexOf('\r\n\r\n')
      if (end === -1) return
      const text = buffered.subarray(0, end).toString('latin1')
      buffered = buffered.subarray(end + 4)
      onHead(text)
      onHead = undefined
    }
    take()
  })
  const head = new Promise<string>((resolve, reject) => {
    onHead = resolve
    closed.then(() => reject(new Error('the socket closed during the handshake')))
  })
  closed.then(() => {
    ended = true
    for (const waiter of waiters.splice(0)) waiter(undefined)
  })
  socket.write(lines.join('\r\n') + '\r\n\r\n')

  const [statusLine, ...headerLines] = (await head).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of headerLines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  if (!/^HTTP\/1\.1 101 /.test(statusLine)) {
    socket.destroy()
    throw new Error(`the handshake was refused: ${statusLine}`)
  }
  const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
  if (headers['sec-websocket-accept'] !== accept) {
    socket.destroy()
    throw new Error('the handshake answer has a wrong Sec-WebSocket-Accept')
  }

  return {
    socket,
    headers,
    closed,
    get error () { return error },
    send (data) {
      socket.write(Buffer.isBuffer(data) ? data : frame(data))
    },
    nextFrame () {
      if (frames.length !== 0) return Promise.resolve(frames.shift())
      if (ended) return Promise.resolve(undefined)
      return new Promise((resolve) => { waiters.push(resolve) })
    }
  }
}

function toBuffer (data: Buffer | Uint8Array | string): Buffer {
  if (typeof data === 'string') return Buffer.from(data)
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}

import secureJson from 'secure-json-parse'
import { WssInvalidJsonError, WssNotSerializableError } from './errors.js'
import type { Serialize } from './schema.js'

/** What `onMessage` receives and how `send` encodes: see the README, "dataType". */
export type DataType = 'text' | 'blob' | 'object'

/** The type of `event.data` in `onMessage` for a `dataType`. */
export type MessageData<D extends DataType> =
  D extends 'text' ? string : D extends 'blob' ? Buffer : unknown

/** A frame payload as `ws` sends it: a string is a text frame, bytes a binary frame. */
export type Payload = string | Buffer | ArrayBuffer | ArrayBufferView

export const dataTypes: readonly DataType[] = ['text', 'blob', 'object']

/** How `__proto__` and `constructor.prototype` keys are handled, as Fastify's options of the same names say. */
export type PoisoningAction = 'error' | 'remove' | 'ignore'

/** What decoding an `object` message obeys: the app's poisoning options, and the deepest nesting. */
export interface JsonRules {
  protoAction: PoisoningAction
  constructorAction: PoisoningAction
  maxDepth: number
}

/**
 * Decodes a received message. `ws` hands over a `Buffer` for text and binary
 * frames alike; text frames were already checked to be valid UTF-8.
 * Throws a coded error when an `object` message is not JSON, nests deeper
 * than `rules.maxDepth`, or has a key the poisoning rules refuse.
 */
export function decode (dataType: DataType, data: Buffer, rules: JsonRules): unknown {
  if (dataType === 'text') return data.toString()
  if (dataType === 'blob') return data
  if (data.length > 2 * rules.maxDepth && nestsDeeper(data, rules.maxDepth)) {
    throw new WssInvalidJsonError(`it nests deeper than maxDepth (${rules.maxDepth})`)
  }
  try {
    return secureJson.parse(data.toString(), null, rules)
  } catch (err) {
    throw new WssInvalidJsonError((err as Error).message, { cause: err })
  }
}

/** What each byte is to the depth scan: 1 a quote, 2 an opening bracket, 3 a closing one, 0 anything else. */
const scanClass = new Uint8Array(256)
scanClass[0x22] = 1
scanClass[0x5b] = scanClass[0x7b] = 2
scanClass[0x5d] = scanClass[0x7d] = 3

/**
 * Whether JSON nests arrays and objects deeper than `max`, read from its
 * bytes before parsing: a deep message costs the parser far more time than
 * its size says. Brackets inside strings do not count.
 */
export function nestsDeeper (json: Uint8Array, max: number): boolean {
  let depth = 0
  let i = 0
  const length = json.length
  while (i < length) {
    const kind = scanClass[json[i++]]
    if (kind === 0) continue
    if (kind === 2) {
      if (++depth > max) return true
    } else if (kind === 3) {
      depth--
    } else {
      // a string: up to its closing quote, skipping escaped characters
      while (i < length) {
        const c = json[i++]
        if (c === 0x22) break
        if (c === 0x5c) i++
      }
    }
  }
  return false
}

/**
 * Encodes a value for `send`: a string is text (JSON-encoded under `object`),
 * bytes are binary, anything else is its JSON text, made by `serialize` (the
 * compiled `schema.send`) when there is one. Throws a coded TypeError when
 * the value cannot be encoded.
 */
export function encode (dataType: DataType, message: unknown, serialize?: Serialize): Payload {
  if (typeof message === 'string') {
    return dataType === 'object' ? JSON.stringify(message) : message
  }
  if (message instanceof ArrayBuffer || ArrayBuffer.isView(message)) return message
  let json: string | undefined
  try {
    json = serialize === undefined ? JSON.stringify(message) : serialize(message)
  } catch (err) {
    throw new WssNotSerializableError((err as Error).message, { cause: err })
  }
  if (json === undefined) throw new WssNotSerializableError(`${typeof message} has no JSON form`)
  return json
}

/** A message framed once, to be written as is to any number of server sockets. */
export interface Frame {
  /** The frame: its header, then the payload when there is one. */
  list: Buffer[]
  /** The payload, for a socket that cannot take a ready frame. */
  payload: Buffer
  binary: boolean
}

/**
 * Frames a payload as an unmasked, uncompressed, final server frame
 * (RFC 6455 §5.2): text for a string, binary for bytes unless `binary` is
 * false (bytes that already hold UTF-8 text). Valid on every
 * connection, with or without permessage-deflate.
 */
export function frame (data: Payload, binary = typeof data !== 'string'): Frame {
  const payload = typeof data === 'string'
    ? Buffer.from(data)
    : Buffer.isBuffer(data)
      ? data
      : data instanceof ArrayBuffer
        ? Buffer.from(data)
        : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  const length = payload.length
  const size = length < 126 ? 2 : length < 65536 ? 4 : 10
  const header = Buffer.allocUnsafe(size)
  header[0] = binary ? 0x82 : 0x81
  if (size === 2) {
    header[1] = length
  } else if (size === 4) {
    header[1] = 126
    header.writeUInt16BE(length, 2)
  } else {
    header[1] = 127
    header.writeUInt32BE(0, 2)
    header.writeUInt32BE(length, 6)
  }
  return { list: length === 0 ? [header] : [header, payload], payload, binary }
}

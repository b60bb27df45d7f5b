/**
 * What the transports of `redisAdapter` (Pub/Sub on one Redis server, a
 * Redis Cluster, Redis Streams) share: the roles of their connections, the
 * names of a server's channels, the framing of its messages, and how the
 * outages of a connection are reported.
 */
import { randomBytes } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import type { RedisOptions } from 'ioredis'
import type { AdapterNode, ClusterMessage } from '../adapter.js'
import { ErrCode, WssAdapterError } from '../errors.js'

/** Publishing: never queued while disconnected, never resent after a reconnection (at most once). */
export const publishing: RedisOptions = { lazyConnect: false, enableOfflineQueue: false, autoResendUnfulfilledCommands: false }
/**
 * Subscribing: subscriptions wait for the connection. The adapter restores
 * them itself after a reconnection: ioredis's own resubscription leaves its
 * promise unhandled, which rejects when the connection closes before Redis
 * answers.
 */
export const subscribing: RedisOptions = { lazyConnect: false, enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: false }

/** Length of the node id that starts every message: a node ignores its own messages. */
const ID_LENGTH = 8
/** A message: one flags byte (1 = binary frame), the node id, then the encoded payload. */
const HEADER_LENGTH = 1 + ID_LENGTH

/**
 * The channels of one server and the framing of this node's messages.
 *
 * The channels are named `<channelPrefix><route>#broadcast` and
 * `<channelPrefix><route>#topic:<topic>`, from the full route pattern of the
 * server. A message travels as a 9-byte header (flags, node id) followed by
 * its encoded payload.
 */
export class Wire {
  /** The broadcast channel of the server. */
  readonly broadcast: string
  /** What the channel of each topic starts with. */
  readonly #topicPrefix: string
  /** The header of this node's text and binary messages. */
  readonly #headers: [Buffer, Buffer]

  constructor (prefix: string, route: string) {
    const base = `${prefix}${channelRoute(route)}#`
    this.broadcast = `${base}broadcast`
    this.#topicPrefix = `${base}topic:`
    const id = randomBytes(ID_LENGTH)
    this.#headers = [Buffer.concat([Buffer.from([0]), id]), Buffer.concat([Buffer.from([1]), id])]
  }

  /** The channel of a `publish` to `topic`, or of a `broadcast` (`undefined`). */
  channel (topic: string | undefined): string {
    return topic === undefined ? this.broadcast : this.#topicPrefix + topic
  }

  /** The message as it travels: this node's header, then the payload. */
  frame (message: ClusterMessage): Buffer {
    const header = this.#headers[message.binary ? 1 : 0]
    return Buffer.concat([header, message.payload], header.length + message.payload.length)
  }

  /** Delivers a message received on `channel`, unless this node published it; reports one that no fastify-wss node published. */
  receive (node: AdapterNode, channel: Buffer, message: Buffer): void {
    const name = channel.toString()
    if (message.length < HEADER_LENGTH || message[0] > 1) {
      node.fail(new WssAdapterError(`ignored a message on "${name}" that no fastify-wss node published`))
      return
    }
    const own = this.#headers[0]
    if (message.compare(own, 1, HEADER_LENGTH, 1, HEADER_LENGTH) === 0) return
    node.deliver({
      topic: name === this.broadcast ? undefined : name.slice(this.#topicPrefix.length),
      payload: message.subarray(HEADER_LENGTH),
      binary: message[0] === 1
    })
  }
}

/**
 * The route as it appears in a channel name: as it is, but for `%` and the
 * `#` that ends it, escaped, so that no two routes give the same channel.
 */
export function channelRoute (route: string): string {
  return route.replace(/[%#]/g, (char) => char === '%' ? '%25' : '%23')
}

/** Resolves `true` when the connection is ready (or emits `event`), `false` at its first error. */
export async function whenUp (connection: EventEmitter, event = 'ready'): Promise<boolean> {
  return await new Promise((resolve) => {
    const up = (): void => {
      connection.off('error', down)
      resolve(true)
    }
    const down = (): void => {
      connection.off(event, up)
      resolve(false)
    }
    connection.once(event, up)
    connection.once('error', down)
  })
}

/** What {@link watchOutages} reports to, and asks. */
export interface Outages {
  node: AdapterNode
  /** Whether the adapter is closing: then nothing is reported. */
  closing: () => boolean
  /**
   * For the publishing connection only: the number of messages not sent
   * since it was last ready, which the call resets to 0.
   */
  takeUnsent?: () => number
}

/**
 * Reports each outage of a connection once, when it starts (its first error,
 * or the connection lost), not on every retry; and, for the publishing
 * connection, when it ends, with the number of messages that could not be
 * sent meanwhile (errCode 501; also when messages were lost without an
 * outage being noticed).
 */
export function watchOutages<C extends EventEmitter> (connection: C, role: string, outages: Outages): C {
  const { node, closing, takeUnsent } = outages
  let down = false
  const lost = (error?: Error): void => {
    if (down || closing()) return
    down = true
    const reason = error === undefined ? 'connection lost' : error.message
    node.fail(new WssAdapterError(`the ${role} Redis connection is down: ${reason}`, { cause: error }))
  }
  connection.on('error', lost)
  connection.on('close', () => lost())
  connection.on('ready', () => {
    const ended = down
    down = false
    if (takeUnsent === undefined) return
    const unsent = takeUnsent()
    if (!ended && unsent === 0) return
    node.fail(new WssAdapterError(`the publishing Redis connection is up; ${unsent} message(s) could not be sent to the other nodes while it was down`),
      ErrCode.ADAPTER_MESSAGES_NOT_SENT)
  })
  return connection
}

export function noop (): void {}

/**
 * The Redis Cluster transport of `redisAdapter({ cluster })`: sharded
 * Pub/Sub (`SPUBLISH` / `SSUBSCRIBE`, Redis 7), one publishing and one
 * subscribing connection to each master, following the slot map.
 */
import { Cluster, type ClusterNode, type ClusterOptions, type Redis, type RedisOptions } from 'ioredis'
import type { AdapterNode, ClusterMessage, WssAdapter } from '../adapter.js'
import { ErrCode, WssAdapterError, WssInvalidOptionError } from '../errors.js'
import { noop, publishing, subscribing, whenUp, Wire } from './redis-shared.js'

/**
 * The adapter's own `Cluster` only reads the slot map (`CLUSTER SLOTS`, at
 * start, every `slotsRefreshInterval` and whenever the adapter asks); the
 * adapter publishes and subscribes on connections of its own to each master,
 * so that it alone decides what is sent where, once.
 */
const topologyOptions: ClusterOptions = { lazyConnect: false, shardedSubscribers: false }

/**
 * Publishing to a master: as with one Redis, and a message on its way when
 * the connection breaks is given up at once, never held for a resend.
 */
const publishingToMaster: RedisOptions = { ...publishing, maxRetriesPerRequest: 0 }

/** The replies that say a master does not serve a channel's slot (now): the message was not published. */
const NOT_SERVED = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /

/**
 * The adapter over a Redis Cluster. Each channel (the broadcast channel, and
 * the channel of each topic) lives on the master that owns its slot; a node
 * opens two connections to each master: one publishes (`SPUBLISH`, in order,
 * each message sent once), one subscribes (`SSUBSCRIBE`) to the channels of
 * that master that the node needs. When the slot map changes (a failover, a
 * slot move), the node reads it again, opens connections to the new masters,
 * closes those to the nodes that are no longer masters, and subscribes each
 * channel on its new master.
 */
export class RedisClusterAdapter implements WssAdapter {
  readonly #source: Cluster | ClusterNode[]
  readonly #prefix: string
  #node: AdapterNode | undefined
  /** The channels of the server and the framing of this node's messages, known at `open`. */
  #wire: Wire | undefined
  /** The adapter's own `Cluster`, which reads the slot map. */
  #topology: Cluster | undefined
  #closing = false
  /** One shard per master of the slot map, by address (`host:port`). */
  readonly #shards = new Map<string, Shard>()
  /**
   * The channels to be subscribed to (the broadcast channel and those of the
   * topics with local subscribers), each with the shard it is subscribed on
   * (`undefined` while the slot map does not give one).
   */
  readonly #channels = new Map<string, Shard | undefined>()
  /** Whether the cluster could not be reached since its slot map was last read. */
  #unreachable = false
  /** Messages that no shard could take since the slot map was last read (it was not known yet, or gave their slot no master). */
  #unrouted = 0
  /** What each shard uses of the adapter. */
  readonly #context: ShardContext

  constructor (source: Cluster | ClusterNode[], prefix: string) {
    if (!(Array.isArray(source) ? source.length > 0 : isCluster(source))) {
      throw new WssInvalidOptionError('redisAdapter', 'needs "cluster" to be an ioredis Cluster or a non-empty array of its startup nodes')
    }
    this.#source = source
    this.#prefix = prefix
    const adapter = this
    this.#context = {
      get node () { return adapter.#node as AdapterNode },
      get wire () { return adapter.#wire as Wire },
      get closing () { return adapter.#closing },
      connect: (address, role) => this.#connect(address, role),
      refresh: () => { (this.#topology as Cluster).refreshSlotsCache() }
    }
  }

  /**
   * Reads the slot map, opens the connections to the masters; resolves once
   * they are up and the broadcast channel is subscribed, or when the cluster
   * or one of its masters cannot be reached (the connections keep retrying).
   */
  async open (node: AdapterNode): Promise<void> {
    if (this.#node !== undefined) {
      throw new WssAdapterError('a redisAdapter() serves one server: create one for each server')
    }
    this.#node = node
    this.#wire = new Wire(this.#prefix, node.route)
    this.#channels.set(this.#wire.broadcast, undefined)
    const source = this.#source
    const topology = Array.isArray(source) ? new Cluster(source, topologyOptions) : source.duplicate([], topologyOptions)
    this.#topology = topology
    topology.on('refresh', () => this.#follow())
    topology.on('error', (error: Error) => {
      if (this.#unreachable) return
      this.#unreachable = true
      node.fail(new WssAdapterError(`the Redis Cluster cannot be reached: ${error.message}`, { cause: error }))
    })
    if (!await whenUp(topology, 'refresh')) return
    await Promise.all(Array.from(this.#shards.values(), async (shard) => await shard.ready()))
  }

  publish (message: ClusterMessage): void {
    const wire = this.#wire
    if (wire === undefined || this.#closing) return
    const channel = wire.channel(message.topic)
    const shard = this.#shardOf(channel)
    if (shard === undefined) this.#unrouted++
    else shard.publish(channel, message)
  }

  subscribe (topic: string): void {
    const channel = (this.#wire as Wire).channel(topic)
    const shard = this.#shardOf(channel)
    this.#channels.set(channel, shard)
    shard?.subscribe(channel)
  }

  unsubscribe (topic: string): void {
    const channel = (this.#wire as Wire).channel(topic)
    const shard = this.#channels.get(channel)
    this.#channels.delete(channel)
    shard?.unsubscribe(channel)
  }

  /** Closes the adapter's own `Cluster` and quits its connections to the masters (at once for those that are down). */
  async close (): Promise<void> {
    const topology = this.#topology
    if (topology === undefined) return
    this.#closing = true
    topology.disconnect()
    await Promise.allSettled(Array.from(this.#shards.values(), async (shard) => await shard.close()))
  }

  /**
   * Follows the slot map just read: a shard for each master (the shards of
   * nodes that are no longer masters are closed), each channel subscribed on
   * the shard of its slot.
   */
  #follow (): void {
    const topology = this.#topology as Cluster
    const masters = new Set(topology.slots.map((owners) => owners[0]).filter((address) => address !== undefined))
    for (const [address, shard] of this.#shards) {
      if (masters.has(address)) continue
      this.#shards.delete(address)
      shard.retire()
    }
    for (const address of masters) {
      if (!this.#shards.has(address)) this.#shards.set(address, new Shard(address, this.#context))
    }
    for (const [channel, placed] of this.#channels) {
      const shard = this.#shardOf(channel)
      if (shard === placed) continue
      // Its slot moved: the master that had it dropped its subscribers.
      placed?.forget(channel)
      this.#channels.set(channel, shard)
      shard?.subscribe(channel)
    }
    for (const shard of this.#shards.values()) shard.followed()
    if (!this.#unreachable && this.#unrouted === 0) return
    const unrouted = this.#unrouted
    this.#unreachable = false
    this.#unrouted = 0
    ;(this.#node as AdapterNode).fail(new WssAdapterError(`the slot map of the Redis Cluster is read; ${unrouted} message(s) could not be sent to the other nodes before`),
      ErrCode.ADAPTER_MESSAGES_NOT_SENT)
  }

  /** The shard of the master that owns the slot of `channel`, as far as the slot map says. */
  #shardOf (channel: string): Shard | undefined {
    const owners = (this.#topology as Cluster).slots[slotOf(channel)]
    return owners === undefined ? undefined : this.#shards.get(owners[0])
  }

  /**
   * A connection to a master, of the same `ioredis` as the `Cluster` (5 or
   * 6), with its `redisOptions` (password, TLS...): a duplicate of one of its
   * own connections (which the slot map just read gave it), but for what the
   * `Cluster` sets on those (no reconnection, lazy connection).
   */
  #connect (address: string, role: RedisOptions): Redis {
    const colon = address.lastIndexOf(':')
    return (this.#topology as Cluster).nodes()[0].duplicate({
      ...role,
      host: address.slice(0, colon),
      port: Number(address.slice(colon + 1)),
      readOnly: false,
      retryStrategy: undefined // ioredis's default: reconnect
    })
  }
}

/** What a shard uses of its adapter. */
interface ShardContext {
  readonly node: AdapterNode
  readonly wire: Wire
  readonly closing: boolean
  connect: (address: string, role: RedisOptions) => Redis
  /** Asks for the slot map to be read again. */
  refresh: () => void
}

/**
 * The two connections of the adapter to one master, and the outages of each:
 * the first error or loss of a connection is reported once, as is a message
 * that the master refused for its slot (the slot map is stale: it is read
 * again). The publishing outage ends, with the count of the messages that
 * could not be sent, when the connection is up again, when the slot map has
 * been read again after a refusal, or when the node is no longer a master.
 */
class Shard {
  readonly address: string
  readonly pub: Redis
  readonly sub: Redis
  readonly #context: ShardContext
  /** The channels subscribed on this master. */
  readonly #channels = new Set<string>()
  /** The connections with an outage going on. */
  readonly #down = new Set<'publishing' | 'subscribing'>()
  /** Messages not sent to the other nodes since the publishing outage began (or before the connection was first ready). */
  #unsent = 0
  /** Whether the node is no longer a master: its connections are closed. */
  #retired = false

  constructor (address: string, context: ShardContext) {
    this.address = address
    this.#context = context
    this.pub = this.#watch(context.connect(address, publishingToMaster), 'publishing')
    this.sub = this.#watch(context.connect(address, subscribing), 'subscribing')
    this.pub.on('ready', () => this.#recovered('is up'))
    this.sub.on('smessageBuffer', (channel: Buffer, message: Buffer) => context.wire.receive(context.node, channel, message))
    // ioredis: an SSUBSCRIBE answered MOVED
    this.sub.on('moved', context.refresh)
    let connected = false
    this.sub.on('ready', () => {
      this.#down.delete('subscribing')
      if (connected) for (const channel of this.#channels) this.#command('ssubscribe', 'subscribe to', channel)
      connected = true
    })
  }

  /** Resolves when both connections are up and the subscriptions sent so far are answered, or at the first failure of either connection. */
  async ready (): Promise<void> {
    const up = await Promise.all([whenUp(this.pub), whenUp(this.sub)])
    if (up.includes(false)) return
    // A PING is answered after the subscriptions sent before it, unless the connection breaks first.
    const sub = this.sub
    await new Promise<void>((resolve) => {
      const done = (): void => {
        sub.off('close', done)
        resolve()
      }
      sub.once('close', done)
      sub.ping().then(done, done)
    })
  }

  publish (channel: string, message: ClusterMessage): void {
    // Known to be down, or its socket closing (ioredis would refuse it): count the message for the report at the end of the outage, encode nothing.
    if (this.pub.status !== 'ready' || !this.pub.stream.writable) {
      this.#unsent++
      return
    }
    this.pub.spublish(channel, this.#context.wire.frame(message)).catch((error: Error) => this.#refused(error, channel))
  }

  subscribe (channel: string): void {
    this.#channels.add(channel)
    this.#command('ssubscribe', 'subscribe to', channel)
  }

  unsubscribe (channel: string): void {
    this.#channels.delete(channel)
    this.#command('sunsubscribe', 'unsubscribe from', channel)
  }

  /** The channel moved to another master, which dropped its subscribers: not to be subscribed here again. */
  forget (channel: string): void {
    this.#channels.delete(channel)
  }

  /** The slot map was read again: a publishing outage that a refused message began is over. */
  followed (): void {
    if (this.pub.status === 'ready') this.#recovered('follows the new slot map')
  }

  /** The node is no longer a master: its connections are closed, the publishing outage, if any, is over. */
  retire (): void {
    this.#retired = true
    this.#recovered('is closed: the node is no longer a master')
    this.pub.disconnect()
    this.sub.disconnect()
  }

  /** Quits both connections (at once when down). */
  async close (): Promise<void> {
    await Promise.allSettled([this.pub, this.sub].map(async (connection) => {
      if (connection.status === 'ready') await connection.quit()
      else connection.disconnect()
    }))
  }

  /** A subscribing command; a failure is reported, never thrown. */
  #command (name: 'ssubscribe' | 'sunsubscribe', what: string, channel: string): void {
    this.sub[name](channel).then(noop, (error: Error) => {
      // The connection broke (it subscribes again once back), or the slot moved (the slot map is read again).
      if (this.sub.status !== 'ready' || NOT_SERVED.test(error.message)) return
      this.#context.node.fail(new WssAdapterError(`${what} "${channel}": ${error.message}`, { cause: error }))
    })
  }

  #refused (error: Error, channel: string): void {
    // On its way when the connection broke: lost, and the outage of the connection is reported.
    if (this.pub.status !== 'ready') return
    if (NOT_SERVED.test(error.message)) {
      this.#unsent++
      this.#fail('publishing', error.message, error)
      this.#context.refresh()
      return
    }
    this.#context.node.fail(new WssAdapterError(`publish to "${channel}": ${error.message}`, { cause: error }))
  }

  /** Reports an outage of a connection once, when it begins. */
  #fail (role: 'publishing' | 'subscribing', reason: string, cause?: Error): void {
    if (this.#down.has(role)) return
    this.#down.add(role)
    this.#context.node.fail(new WssAdapterError(`the ${role} connection to Redis Cluster node ${this.address} is down: ${reason}`, { cause }))
  }

  /** Ends the publishing outage, if any, with the number of messages that could not be sent during it. */
  #recovered (how: string): void {
    if (!this.#down.delete('publishing') && this.#unsent === 0) return
    const unsent = this.#unsent
    this.#unsent = 0
    this.#context.node.fail(new WssAdapterError(`the publishing connection to Redis Cluster node ${this.address} ${how}; ${unsent} message(s) could not be sent to the other nodes while it was down`),
      ErrCode.ADAPTER_MESSAGES_NOT_SENT)
  }

  /**
   * Reports the outages of a connection: its loss, or an error while it is
   * not ready, begins one (once, not on every retry). Either asks for the slot
   * map to be read again, as does an error of a ready connection (ioredis 5
   * on a slot that moved away while subscribed), which is no outage.
   */
  #watch (connection: Redis, role: 'publishing' | 'subscribing'): Redis {
    const lost = (error?: Error): void => {
      if (this.#retired || this.#context.closing) return
      this.#context.refresh()
      this.#fail(role, error === undefined ? 'connection lost' : error.message, error)
    }
    connection.on('error', (error: Error) => {
      if (connection.status === 'ready') this.#context.refresh()
      else lost(error)
    })
    connection.on('close', () => lost())
    return connection
  }
}

/** Whether `value` is an ioredis `Cluster` (of any major: not `instanceof`). */
function isCluster (value: unknown): value is Cluster {
  return typeof value === 'object' && value !== null && (value as Cluster).isCluster === true && typeof (value as Cluster).duplicate === 'function'
}

/** CRC16-CCITT (XMODEM), by byte, as Redis Cluster hashes keys and shard channels. */
const CRC16 = new Uint16Array(256)
for (let byte = 0; byte < 256; byte++) {
  let crc = byte << 8
  for (let bit = 0; bit < 8; bit++) crc = (crc << 1) ^ ((crc & 0x8000) === 0 ? 0 : 0x1021)
  CRC16[byte] = crc
}

/** The hash slot of a channel: of its first `{...}` hash tag when not empty, else of the whole name. */
export function slotOf (channel: string): number {
  const bytes = Buffer.from(channel)
  let start = 0
  let end = bytes.length
  const open = bytes.indexOf(0x7b) // {
  const close = open === -1 ? -1 : bytes.indexOf(0x7d, open + 1) // }
  if (close > open + 1) {
    start = open + 1
    end = close
  }
  let crc = 0
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ CRC16[((crc >> 8) ^ bytes[i]) & 0xff]
  return crc & 16383
}

import { Redis, type Cluster, type ClusterNode, type RedisOptions } from 'ioredis'
import type { AdapterNode, ClusterMessage, WssAdapter } from '../adapter.js'
import { WssAdapterError, WssInvalidOptionError } from '../errors.js'
import { RedisClusterAdapter } from './redis-cluster.js'
import { channelRoute, noop, publishing, subscribing, watchOutages, whenUp, Wire } from './redis-shared.js'
import { StreamsAdapter, durableSettings, type RedisDurableOptions } from './redis-streams.js'

export type { RedisDurableOptions } from './redis-streams.js'

/** Options of {@link redisAdapter}: a `url`, a `client` or a `cluster`. */
export interface RedisAdapterOptions {
  /** A Redis URL such as `redis://127.0.0.1:6379`; the adapter opens and closes its own connections. */
  url?: string
  /**
   * An `ioredis` client whose options the adapter's own connections copy
   * (`client.duplicate()`). The adapter never uses or closes this client itself.
   */
  client?: Redis
  /**
   * A Redis Cluster (Redis 7 or later): an `ioredis` `Cluster`, whose options
   * the adapter's own connections copy (`cluster.duplicate()`, and
   * `redisOptions` for its connections to each master; the adapter never uses
   * or closes this `Cluster` itself), or its startup nodes
   * (`[{ host, port }, ...]`, then the adapter opens and closes its own
   * connections). Topics and broadcasts then travel over sharded Pub/Sub
   * (`SPUBLISH` / `SSUBSCRIBE`): the channel of each topic, like the
   * broadcast channel, lives on the shard that owns its slot.
   */
  cluster?: Cluster | ClusterNode[]
  /**
   * Prefix of the Redis channels, so that several apps can share one Redis.
   * Default `'fastify-wss:'`. The server's route follows it in each channel
   * name, so that the servers of one app never share messages.
   */
  channelPrefix?: string
  /**
   * Durable delivery: carry messages over Redis Streams instead of Pub/Sub,
   * exactly once per connection and in order per publishing node, through
   * lost connections and a Redis restart that keeps its data (AOF). The
   * streams are named like the channels. Needs Redis 7 or later.
   * @example
   * redisAdapter({ url, durable: { maxLen: 10_000 } })
   */
  durable?: RedisDurableOptions
}

interface Links {
  node: AdapterNode
  pub: Redis
  sub: Redis
}

/**
 * The Redis cluster adapter: `broadcast` and `publish` reach the connections
 * of every node that shares the Redis server (Redis Pub/Sub), while
 * `connections` stays local to each node.
 *
 * Each node opens two connections: one that publishes (one `PUBLISH` per
 * `broadcast` or `publish`, in order) and one that subscribes to the
 * broadcast channel and to the channel of each topic that has local
 * subscribers. The channels are named `<channelPrefix><route>#broadcast` and
 * `<channelPrefix><route>#topic:<topic>`, from the full route pattern of the
 * server: one adapter serves one server.
 *
 * Delivery is at most once: while Redis is unreachable, messages are
 * delivered locally only, never queued for later nor encoded for Redis. Each
 * outage of a connection is one server `onError` with errCode 500
 * (`FST_WSS_ADAPTER_ERROR`); when the publishing connection is back, one with
 * errCode 501 says how many messages could not be sent meanwhile. The
 * connections reconnect and resubscribe by themselves.
 *
 * With `cluster`, the same over a Redis Cluster, with sharded Pub/Sub: each
 * topic's channel, and the broadcast channel, lives on the shard that owns
 * its slot, so each shard carries only the traffic of its own channels. Each
 * node then opens one publishing and one subscribing connection to each
 * master, follows failovers and slot moves by itself, and reports outages per
 * connection as above. Order holds per channel: per topic, and among
 * broadcasts.
 *
 * With `durable: { maxLen }`, Redis Streams carry the messages instead:
 * exactly once per connection through outages (see {@link RedisDurableOptions}).
 *
 * `ioredis` (5.x or 6.x) is an optional peer dependency, needed only by this module.
 * @example
 * import Fastify from 'fastify'
 * import wssPlugin from 'fastify-wss'
 * import { redisAdapter } from 'fastify-wss/redis'
 *
 * const app = Fastify()
 * await app.register(wssPlugin, {
 *   handler, path: '/chat',
 *   adapter: redisAdapter({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' })
 * })
 * @example
 * // from an ioredis client of your own, which stays yours to close
 * const redis = new Redis({ host: 'redis.internal', password })
 * const adapter = redisAdapter({ client: redis, channelPrefix: 'my-app:' })
 * @example
 * // durable delivery: each stream keeps about 10,000 messages
 * const adapter = redisAdapter({ url, durable: { maxLen: 10_000 } })
 * @example
 * // a Redis Cluster, from its startup nodes
 * const adapter = redisAdapter({ cluster: [{ host: '10.0.0.1', port: 6379 }, { host: '10.0.0.2', port: 6379 }] })
 */
export function redisAdapter (options: RedisAdapterOptions): WssAdapter {
  const { url, client, cluster, channelPrefix = 'fastify-wss:', durable } = options ?? {}
  if ([url, client, cluster].filter((source) => source !== undefined).length !== 1) {
    throw new WssInvalidOptionError('redisAdapter', 'needs one of "url", "client" or "cluster"')
  }
  // durable together with cluster is refused here
  const settings = durable === undefined ? undefined : durableSettings(durable, cluster)
  if (cluster !== undefined) return new RedisClusterAdapter(cluster, channelPrefix)
  const connect = client === undefined
    ? (extra: RedisOptions) => new Redis(url as string, extra)
    : (extra: RedisOptions) => client.duplicate(extra)
  if (settings !== undefined) {
    return new StreamsAdapter(connect, (route) => `${channelPrefix}${channelRoute(route)}#`, settings)
  }
  return new RedisAdapter(connect, channelPrefix)
}

class RedisAdapter implements WssAdapter {
  readonly #connect: (options: RedisOptions) => Redis
  readonly #prefix: string
  /** The channels of the server and the framing of this node's messages, known at `open`. */
  #wire: Wire | undefined
  #links: Links | undefined
  #closing = false
  /** The channels the subscribing connection is to be subscribed to: the broadcast channel and those of the topics with local subscribers. */
  readonly #channels = new Set<string>()
  /** Messages not sent to the other nodes since the publishing connection was last ready. */
  #unsent = 0

  constructor (connect: (options: RedisOptions) => Redis, prefix: string) {
    this.#connect = connect
    this.#prefix = prefix
  }

  /** Opens both connections; resolves once subscribed to the broadcast channel, or when Redis cannot be reached (the connections keep retrying). */
  async open (node: AdapterNode): Promise<void> {
    if (this.#links !== undefined) {
      throw new WssAdapterError('a redisAdapter() serves one server: create one for each server')
    }
    const wire = this.#wire = new Wire(this.#prefix, node.route)
    const closing = (): boolean => this.#closing
    const pub = watchOutages(this.#connect(publishing), 'publishing', { node, closing, takeUnsent: () => this.#takeUnsent() })
    const sub = watchOutages(this.#connect(subscribing), 'subscribing', { node, closing })
    this.#links = { node, pub, sub }
    sub.on('messageBuffer', (channel: Buffer, message: Buffer) => wire.receive(node, channel, message))
    let connected = false
    sub.on('ready', () => {
      if (connected) this.#resubscribe()
      connected = true
    })
    const subscribed = this.#command('subscribe', wire.broadcast)
    const [, up] = await Promise.all([whenUp(pub), whenUp(sub)])
    if (up) await subscribed
  }

  publish (message: ClusterMessage): void {
    const links = this.#links
    if (links === undefined) return
    // Known to be down: count the message for the report at the end of the outage, encode nothing.
    if (links.pub.status !== 'ready') {
      this.#unsent++
      return
    }
    const wire = this.#wire as Wire
    const channel = wire.channel(message.topic)
    links.pub.publish(channel, wire.frame(message))
      .catch(this.#publishFailure(channel))
  }

  /**
   * A publish that Redis refused (an ACL, say) is reported each time. One
   * that the connection failed under (it broke while the message was on its
   * way, and ioredis gave up on it) belongs to the outage that `watchOutages`
   * reports once: it is counted for the report of its end.
   */
  #takeUnsent (): number {
    const unsent = this.#unsent
    this.#unsent = 0
    return unsent
  }

  #publishFailure (channel: string): (error: Error) => void {
    return (error) => {
      if (error.name === 'ReplyError') this.#failure('publish to', channel)(error)
      else this.#unsent++
    }
  }

  subscribe (topic: string): void {
    this.#command('subscribe', (this.#wire as Wire).channel(topic))
  }

  unsubscribe (topic: string): void {
    this.#command('unsubscribe', (this.#wire as Wire).channel(topic))
  }

  /** After a reconnection: one `SUBSCRIBE` to every channel (the commands queued during the outage are sent before it). */
  #resubscribe (): void {
    const channels = Array.from(this.#channels)
    ;(this.#links as Links).sub.subscribe(...channels).then(noop, this.#failure('subscribe again to', channels.join('", "')))
  }

  /** Unsubscribes and quits the adapter's own connections (at once when Redis is unreachable). */
  async close (): Promise<void> {
    const links = this.#links
    if (links === undefined) return
    this.#closing = true
    const { pub, sub } = links
    const ending: Array<Promise<unknown>> = []
    for (const connection of [sub, pub]) {
      if (connection.status === 'ready') {
        if (connection === sub) ending.push(sub.unsubscribe())
        ending.push(connection.quit())
      } else {
        connection.disconnect()
      }
    }
    await Promise.allSettled(ending)
  }

  /** A subscribing command; a failure is reported, never thrown. */
  #command (name: 'subscribe' | 'unsubscribe', channel: string): Promise<void> {
    const links = this.#links as Links
    if (name === 'subscribe') this.#channels.add(channel)
    else this.#channels.delete(channel)
    return links.sub[name](channel).then(noop, this.#failure(name === 'subscribe' ? 'subscribe to' : 'unsubscribe from', channel))
  }

  #failure (what: string, channel: string): (error: Error) => void {
    return (error) => {
      if (!this.#closing) (this.#links as Links).node.fail(new WssAdapterError(`${what} "${channel}": ${error.message}`, { cause: error }))
    }
  }
}

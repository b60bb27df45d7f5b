import { randomBytes } from 'node:crypto'
import type { Redis, RedisOptions } from 'ioredis'
import type { AdapterNode, ClusterMessage, WssAdapter } from '../adapter.js'
import { ErrCode, WssAdapterError, WssInvalidOptionError } from '../errors.js'
import { watchOutages } from './redis-shared.js'

/**
 * Durable delivery: `redisAdapter({ url, durable: { maxLen } })` carries
 * `broadcast` and `publish` over Redis Streams instead of Pub/Sub, exactly
 * once per connection and in order per publishing node, through lost
 * connections and a Redis restart that keeps its data (AOF).
 */
export interface RedisDurableOptions {
  /**
   * About how many messages each stream keeps (`XADD ... MAXLEN ~ maxLen`;
   * Redis keeps at least that many, a little more). A node that falls further
   * behind on a stream than that (its Redis connection was down a long
   * while) reports the gap with errCode 502 and goes on from the newest
   * message. A positive integer; give every node the same value.
   */
  maxLen: number
  /**
   * How many messages a node keeps in memory while its publishing connection
   * cannot reach Redis, to send them in order when it is back. Past that, the
   * oldest are dropped (errCode 503, then the count in the 501 at the end of
   * the outage). Default 10,000; `0` keeps none.
   */
  maxBuffered?: number
}

/** @internal Durable options after validation. */
export interface DurableSettings {
  maxLen: number
  maxBuffered: number
}

/** @internal Validates `durable` at `redisAdapter()`; `cluster` is the adapter's `cluster` option, which durable delivery does not support yet. */
export function durableSettings (durable: unknown, cluster: unknown): DurableSettings {
  if (typeof durable !== 'object' || durable === null) {
    throw new WssInvalidOptionError('durable', `must be an object { maxLen, maxBuffered? }, got ${describe(durable)}`)
  }
  if (cluster !== undefined) {
    throw new WssInvalidOptionError('durable', 'cannot be combined with "cluster" (Redis Cluster): use a single Redis server or a primary with replicas')
  }
  const { maxLen, maxBuffered = DEFAULT_MAX_BUFFERED } = durable as Partial<RedisDurableOptions>
  if (!Number.isSafeInteger(maxLen) || (maxLen as number) < 1) {
    throw new WssInvalidOptionError('durable.maxLen', `must be a positive integer, got ${describe(maxLen)}`)
  }
  if (!Number.isSafeInteger(maxBuffered) || maxBuffered < 0) {
    throw new WssInvalidOptionError('durable.maxBuffered', `must be an integer of 0 or more, got ${describe(maxBuffered)}`)
  }
  return { maxLen: maxLen as number, maxBuffered }
}

const DEFAULT_MAX_BUFFERED = 10_000
/**
 * How long a read blocks at most (ms). A subscription made while the read
 * cannot be interrupted (`CLIENT UNBLOCK` refused, or the publishing
 * connection down) takes effect within this time.
 */
const BLOCK_MS = 1000
/** Length of the id of the node that wrote an entry: a node skips its own entries. */
const ID_LENGTH = 8
/** Length of the sequence number of the node that wrote an entry: a reader skips what it already delivered. */
const SEQ_LENGTH = 6
/** An entry's value: one flags byte (1 = binary frame), the node id, its sequence number, then the encoded payload. */
const HEADER_LENGTH = 1 + ID_LENGTH + SEQ_LENGTH
/** The one field of an entry. */
const FIELD = 'm'

/**
 * Writing: a write is sent only on a ready connection; one that the
 * connection loses is neither sent again by ioredis nor rejected: the
 * adapter writes it again from its buffer on the next connection. The streams
 * are named by `channelPrefix` alone, like the channels: no `keyPrefix` of a
 * client passed in.
 */
const writing: RedisOptions = { lazyConnect: false, enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: null, keyPrefix: '' }
/** Reading: every command waits for a connection and is sent again on the next one until it is answered. */
const reading: RedisOptions = { lazyConnect: false, enableOfflineQueue: true, autoResendUnfulfilledCommands: true, maxRetriesPerRequest: null, keyPrefix: '' }

interface Links {
  node: AdapterNode
  pub: Redis
  read: Redis
}

/** A stream the node reads: the broadcast stream, or that of a topic with local subscribers. */
interface Stream {
  /** The ID of the last entry read; `undefined` until the reading connection has taken the stream's end. */
  id: string | undefined
  /** The number of that entry in the stream (Redis counts the entries ever added). */
  count: number
  /** Redis refused it to the reading connection: reported once, not read. */
  refused: boolean
}

/** A message that Redis has not acknowledged yet. */
interface Pending {
  key: string
  data: Buffer
}

type Entry = [id: Buffer, fields: Buffer[]]
type Batch = [key: Buffer, entries: Entry[]]

/** A read: its error or its batches, and for a transaction, the `XINFO STREAM` of each stream. */
type Outcome = [error: Error | null, reply: Batch[] | null, infos?: Array<[Error | null, unknown[]]>]

interface Decoded extends ClusterMessage {
  seq: number
}

/** Rejects when the adapter closes: what a command of the reading connection is raced with. */
class Stopped extends Error {}

/**
 * @internal The durable transport of the Redis adapter: one stream per
 * channel (`<channelPrefix><route>#broadcast`, `...#topic:<topic>`, the names
 * of the Pub/Sub channels), two connections per node.
 *
 * Writing: each message is one `XADD <stream> MAXLEN ~ maxLen * m <value>`,
 * in publish order on one connection. It stays in a buffer until Redis
 * acknowledges it; a connection lost with writes unanswered writes them again
 * on the next one, so an entry may be in a stream twice. The value carries the
 * node id and a sequence number of the node, which count up across all its
 * streams.
 *
 * Reading: one blocking `XREAD` over all the streams the node reads, from the
 * last entry read of each. Of each batch, the entries of each writing node are
 * delivered in its sequence order, those it already delivered skipped: so a
 * duplicate is dropped, and the node's order holds across its streams. A new
 * stream starts at its end at the time the reading connection gets to it
 * (new messages only); a subscription interrupts the blocking read (`CLIENT
 * UNBLOCK` from the writing connection), whose answer is then read again.
 *
 * Gaps: a batch of fewer than `maxLen` entries of a stream proves that none
 * was trimmed away before it (trimming keeps at least `maxLen`). A larger one
 * is read again with `XINFO STREAM` in one transaction, which says how many
 * entries Redis has trimmed: more than the node had read is a gap.
 */
export class StreamsAdapter implements WssAdapter {
  readonly #connect: (options: RedisOptions) => Redis
  /** The start of the stream names of a route: `<channelPrefix><route>#`. */
  readonly #base: (route: string) => string
  readonly #maxLen: number
  readonly #maxBuffered: number
  readonly #id = randomBytes(ID_LENGTH)
  /** The node id as a string, for comparing. */
  readonly #self = this.#id.toString('latin1')
  #seq = 0
  #links: Links | undefined
  #closing = false
  #broadcast = ''
  #topicPrefix = ''

  /** Messages written on the current connection that Redis has not acknowledged yet, oldest first. */
  #inFlight = new Queue<Pending>()
  /** Messages waiting for the writing connection, oldest first: at most `maxBuffered`. */
  #waiting = new Queue<Pending>()
  /** Bumped when the writing connection closes: the answers to older writes are ignored. */
  #epoch = 0
  /** The writing connection is ready and every waiting message was written on it. */
  #writable = false
  /** Messages dropped since the writing connection was last ready. */
  #dropped = 0

  readonly #streams = new Map<string, Stream>()
  /** Bumped when the streams to read change: a read that started before is read again. */
  #generation = 0
  /** The highest sequence number delivered, per writing node. */
  readonly #delivered = new Map<string, number>()
  /** The `CLIENT ID` of the reading connection; `null` when Redis refuses it; `undefined` when not known yet. */
  #readerId: number | null | undefined
  #blocked = false
  #unblocking = false
  /** The last blocking read had a batch of `maxLen` entries or more: the next read is a transaction with the counts. */
  #behind = false
  #loop: Promise<void> = Promise.resolve()
  /** Ends a wait of the reading loop early. */
  #wake: () => void = noop
  readonly #stopped: Promise<never>
  readonly #stop: () => void

  constructor (connect: (options: RedisOptions) => Redis, base: (route: string) => string, settings: DurableSettings) {
    this.#connect = connect
    this.#base = base
    this.#maxLen = settings.maxLen
    this.#maxBuffered = settings.maxBuffered
    let stop!: () => void
    this.#stopped = new Promise<never>((_resolve, reject) => { stop = () => reject(new Stopped()) })
    this.#stopped.catch(noop)
    this.#stop = stop
  }

  /** Opens both connections; resolves once the end of the broadcast stream is known, or when Redis cannot be reached (the connections keep retrying). */
  async open (node: AdapterNode): Promise<void> {
    if (this.#links !== undefined) {
      throw new WssAdapterError('a redisAdapter() serves one server: create one for each server')
    }
    const base = this.#base(node.route)
    this.#broadcast = `${base}broadcast`
    this.#topicPrefix = `${base}topic:`
    this.#streams.set(this.#broadcast, { id: undefined, count: 0, refused: false })
    const closing = (): boolean => this.#closing
    const pub = watchOutages(this.#connect(writing), 'publishing', { node, closing, takeUnsent: () => this.#takeDropped() })
    const read = watchOutages(this.#connect(reading), 'reading', { node, closing })
    const links: Links = { node, pub, read }
    this.#links = links
    pub.on('ready', () => this.#flush(pub))
    pub.on('close', () => this.#requeue(node))
    read.on('close', () => { this.#readerId = undefined })
    let started!: () => void
    const first = new Promise<void>((resolve) => { started = resolve })
    this.#loop = this.#read(links, started).finally(started)
    const [, up] = await Promise.all([whenUp(pub), whenUp(read)])
    if (up) await first
  }

  publish (message: ClusterMessage): void {
    const links = this.#links
    if (links === undefined || this.#closing) return
    const { payload } = message
    const data = Buffer.allocUnsafe(HEADER_LENGTH + payload.length)
    data[0] = message.binary ? 1 : 0
    this.#id.copy(data, 1)
    data.writeUIntBE(++this.#seq, 1 + ID_LENGTH, SEQ_LENGTH)
    payload.copy(data, HEADER_LENGTH)
    const pending = { key: message.topic === undefined ? this.#broadcast : this.#topicPrefix + message.topic, data }
    if (this.#canWrite(links.pub)) {
      this.#write(links.pub, pending)
    } else {
      this.#waiting.push(pending)
      this.#bound(links.node)
    }
  }

  subscribe (topic: string): void {
    this.#streams.set(this.#topicPrefix + topic, { id: undefined, count: 0, refused: false })
    this.#changed()
  }

  unsubscribe (topic: string): void {
    this.#streams.delete(this.#topicPrefix + topic)
    this.#changed()
  }

  /**
   * Quits both connections: the writing one after Redis has answered the
   * writes on their way; messages still waiting for Redis are dropped and
   * reported (errCode 503).
   */
  async close (): Promise<void> {
    const links = this.#links
    if (links === undefined) return
    this.#closing = true
    this.#stop()
    this.#wake()
    const { node, pub, read } = links
    read.disconnect()
    const waiting = this.#waiting.length
    if (waiting > 0) {
      node.fail(new WssAdapterError(`closed while the publishing Redis connection was down: ${waiting} message(s) waiting for it were dropped`),
        ErrCode.ADAPTER_MESSAGES_DROPPED)
    }
    if (this.#canWrite(pub)) await Promise.allSettled([pub.quit()])
    else pub.disconnect()
    await this.#loop
  }

  /** Whether a write goes out now on the writing connection (never into ioredis's offline queue, which would put it after later ones). */
  #canWrite (pub: Redis): boolean {
    return this.#writable && pub.status === 'ready' && pub.stream.writable
  }

  #write (pub: Redis, pending: Pending): void {
    this.#inFlight.push(pending)
    const epoch = this.#epoch
    pub.xadd(pending.key, 'MAXLEN', '~', this.#maxLen, '*', FIELD, pending.data).then(() => {
      // the connection answers in order: this is the oldest write on its way
      if (epoch === this.#epoch) this.#inFlight.drop(1)
    }, (error: Error) => {
      if (epoch !== this.#epoch) return
      // Redis refused it (an ACL, a key of another type): writing it again would fail again
      this.#inFlight.drop(1)
      this.#failure('publish to', pending.key)(error)
    })
  }

  /** The writing connection is ready: writes every waiting message, in order, before any new one. */
  #flush (pub: Redis): void {
    for (const pending of this.#waiting.drain()) this.#write(pub, pending)
    this.#writable = true
  }

  /** The writing connection closed: the writes it did not answer wait for the next one, before those waiting already. */
  #requeue (node: AdapterNode): void {
    this.#writable = false
    this.#epoch++
    this.#waiting = new Queue([...this.#inFlight.drain(), ...this.#waiting.drain()])
    if (!this.#closing) this.#bound(node)
  }

  /** Keeps at most `maxBuffered` messages waiting, dropping the oldest; the first drop since the connection was last ready is reported. */
  #bound (node: AdapterNode): void {
    const excess = this.#waiting.length - this.#maxBuffered
    if (excess <= 0) return
    if (this.#dropped === 0) {
      node.fail(new WssAdapterError(`more than maxBuffered (${this.#maxBuffered}) messages are waiting for the publishing Redis connection: the oldest are dropped`),
        ErrCode.ADAPTER_MESSAGES_DROPPED)
    }
    this.#dropped += excess
    this.#waiting.drop(excess)
  }

  /** The streams to read changed: a blocking read is interrupted, to be made again with them. */
  #changed (): void {
    this.#generation++
    this.#wake()
    if (!this.#blocked || this.#unblocking || typeof this.#readerId !== 'number') return
    const { pub } = this.#links as Links
    if (!this.#canWrite(pub)) return
    this.#unblocking = true
    pub.client('UNBLOCK', this.#readerId).then(noop, noop)
  }

  /**
   * The reading loop, until the adapter closes: a blocking read of all the
   * streams; after a batch of `maxLen` entries or more, a transaction that
   * reads them again with the count of entries each stream has trimmed.
   */
  async #read (links: Links, started: () => void): Promise<void> {
    const { node, read } = links
    while (!this.#closing) {
      try {
        if (this.#readerId === undefined) this.#readerId = await this.#ask(read.client('ID').catch(() => null))
        await this.#resolve(read)
        started()
        const keys: string[] = []
        const ids: string[] = []
        for (const [key, stream] of this.#streams) {
          if (stream.id === undefined) continue
          keys.push(key)
          ids.push(stream.id)
        }
        if (keys.length === 0) {
          await this.#idle(BLOCK_MS)
          continue
        }
        const generation = this.#generation
        const [error, reply, infos] = this.#behind ? await this.#readAgain(read, keys, ids) : await this.#readBlocking(read, keys, ids)
        // the streams to read changed meanwhile: a new one may hold messages older than some of this answer
        if (generation !== this.#generation) continue
        if (error !== null) throw error
        const batches = reply ?? []
        if (infos !== undefined) {
          this.#behind = false
          this.#catchUp(node, keys, batches, infos)
        } else if (batches.some(([, entries]) => entries.length >= this.#maxLen)) {
          // some may have been trimmed away before this read: read again, with the counts
          this.#behind = true
        } else {
          for (const [key, entries] of batches) {
            const stream = this.#streams.get(key.toString()) as Stream
            stream.id = entries[entries.length - 1][0].toString()
            stream.count += entries.length
          }
          this.#deliver(node, batches)
        }
      } catch (error) {
        if (this.#closing) return
        node.fail(new WssAdapterError(`read the streams: ${(error as Error).message}`, { cause: error }))
        await this.#idle(BLOCK_MS)
      }
    }
  }

  /** Waits for new entries, `BLOCK_MS` at most; interrupted by a change of the streams to read. */
  async #readBlocking (read: Redis, keys: string[], ids: string[]): Promise<Outcome> {
    this.#blocked = true
    this.#unblocking = false
    try {
      return await this.#ask(read.xreadBuffer('BLOCK', BLOCK_MS, 'STREAMS', ...keys, ...ids).then((reply) => [null, reply], (error: Error) => [error, null]))
    } finally {
      this.#blocked = false
    }
  }

  /** Reads without waiting, in one transaction with `XINFO STREAM` of each stream. */
  async #readAgain (read: Redis, keys: string[], ids: string[]): Promise<Outcome> {
    const transaction = read.multi()
    for (const key of keys) transaction.xinfo('STREAM', key)
    transaction.xreadBuffer('STREAMS', ...keys, ...ids)
    const results = await this.#ask(transaction.exec()) as Array<[Error | null, unknown]>
    const [error, reply] = results[keys.length] as [Error | null, Batch[] | null]
    return [error, reply, results.slice(0, keys.length) as Array<[Error | null, unknown[]]>]
  }

  /** Takes the end of each stream the node has not started reading: it reads the messages written after that. */
  async #resolve (read: Redis): Promise<void> {
    const fresh = Array.from(this.#streams).filter(([, stream]) => stream.id === undefined && !stream.refused)
    if (fresh.length === 0) return
    const infos = await this.#ask(Promise.all(fresh.map(async ([key]) => await read.xinfo('STREAM', key).then((info) => info as unknown[], (error: Error) => error))))
    for (const [i, [key, stream]] of fresh.entries()) {
      const info = infos[i]
      if (!(info instanceof Error)) {
        stream.id = field(info, 'last-generated-id') as string
        stream.count = Number(field(info, 'entries-added'))
      } else if (/no such key/i.test(info.message)) {
        stream.id = '0-0'
      } else {
        stream.refused = true
        this.#failure('subscribe to', key)(info)
      }
    }
  }

  /**
   * Delivers a batch read again after a large one: a stream of which Redis
   * has trimmed more entries than the node had read has a gap; its entries are
   * skipped, and the node goes on from its newest.
   */
  #catchUp (node: AdapterNode, keys: string[], batches: Batch[], infos: Array<[Error | null, unknown[]]>): void {
    const byKey = new Map(batches.map(([key, entries]) => [key.toString(), entries]))
    const take: Batch[] = []
    for (const [i, key] of keys.entries()) {
      const stream = this.#streams.get(key) as Stream
      const [missing, info] = infos[i]
      // a stream that does not exist (any more) has no entries and trimmed none
      const added = missing === null ? Number(field(info, 'entries-added')) : 0
      const trimmed = missing === null ? added - Number(field(info, 'length')) : 0
      const entries = byKey.get(key)
      if (trimmed > stream.count) {
        node.fail(new WssAdapterError(`${added - stream.count} message(s) written to "${key}" were not delivered: ` +
          `more than maxLen (${this.#maxLen}) were written while this node could not read them; it goes on from the newest`),
        ErrCode.ADAPTER_MESSAGES_MISSED)
        stream.id = field(info, 'last-generated-id') as string
      } else if (entries !== undefined) {
        stream.id = entries[entries.length - 1][0].toString()
        take.push([Buffer.from(key), entries])
      }
      // every entry up to the newest is read or skipped
      stream.count = added
    }
    this.#deliver(node, take)
  }

  /** Delivers the entries of other nodes, each node's in its sequence order, skipping what was delivered already. */
  #deliver (node: AdapterNode, batches: Batch[]): void {
    const byNode = new Map<string, Decoded[]>()
    for (const [name, entries] of batches) {
      const key = name.toString()
      const topic = key === this.#broadcast ? undefined : key.slice(this.#topicPrefix.length)
      for (const [, fields] of entries) {
        const value = fields[1]
        if (fields.length !== 2 || fields[0].toString() !== FIELD || value.length < HEADER_LENGTH || value[0] > 1) {
          node.fail(new WssAdapterError(`ignored an entry of "${key}" that no fastify-wss node wrote`))
          continue
        }
        const from = value.toString('latin1', 1, 1 + ID_LENGTH)
        if (from === this.#self) continue
        let list = byNode.get(from)
        if (list === undefined) byNode.set(from, list = [])
        list.push({ topic, payload: value.subarray(HEADER_LENGTH), binary: value[0] === 1, seq: value.readUIntBE(1 + ID_LENGTH, SEQ_LENGTH) })
      }
    }
    for (const [from, list] of byNode) {
      list.sort((a, b) => a.seq - b.seq)
      let last = this.#delivered.get(from) ?? 0
      for (const message of list) {
        if (message.seq <= last) continue
        last = message.seq
        node.deliver({ topic: message.topic, payload: message.payload, binary: message.binary })
      }
      this.#delivered.set(from, last)
    }
  }

  /** A command of the reading connection, given up (rejected with `Stopped`) when the adapter closes. */
  async #ask<T> (command: Promise<T>): Promise<T> {
    return await Promise.race([command, this.#stopped])
  }

  /** Waits `ms`, or until the streams to read change or the adapter closes. */
  async #idle (ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.#wake(), ms)
      this.#wake = () => {
        clearTimeout(timer)
        this.#wake = noop
        resolve()
      }
    })
  }

  #takeDropped (): number {
    const dropped = this.#dropped
    this.#dropped = 0
    return dropped
  }

  #failure (what: string, key: string): (error: Error) => void {
    return (error) => {
      if (!this.#closing) (this.#links as Links).node.fail(new WssAdapterError(`${what} "${key}": ${error.message}`, { cause: error }))
    }
  }
}

/** A first-in first-out list with an O(1) removal of the oldest: its items from `#head` on, compacted now and then. */
class Queue<T> {
  #items: Array<T | undefined>
  #head = 0

  constructor (items: T[] = []) {
    this.#items = items
  }

  get length (): number {
    return this.#items.length - this.#head
  }

  push (item: T): void {
    this.#items.push(item)
  }

  /** Removes the `count` oldest items. */
  drop (count: number): void {
    this.#items.fill(undefined, this.#head, this.#head + count)
    this.#head += count
    if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
  }

  /** Removes and returns every item, oldest first. */
  drain (): T[] {
    const items = this.#items.slice(this.#head) as T[]
    this.#items = []
    this.#head = 0
    return items
  }
}

/** The value of a field of an `XINFO STREAM` reply. */
function field (info: unknown[], name: string): unknown {
  return info[info.indexOf(name) + 1]
}

/** Resolves `true` when the connection is ready, `false` at its first error. */
async function whenUp (connection: Redis): Promise<boolean> {
  return await new Promise((resolve) => {
    const up = (): void => {
      connection.off('error', down)
      resolve(true)
    }
    const down = (): void => {
      connection.off('ready', up)
      resolve(false)
    }
    connection.once('ready', up)
    connection.once('error', down)
  })
}

function describe (value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : typeof value === 'object' && value !== null ? 'an object' : String(value)
}

function noop (): void {}

import { getHeapStatistics } from 'node:v8'
import type { FastifySchema, FastifyTypeProvider, FastifyTypeProviderDefault, RouteShorthandOptions } from 'fastify'
import type { PerMessageDeflateOptions } from 'ws'
import type { WssAdapter } from './adapter.js'
import { dataTypes, type DataType } from './codec.js'
import { WssInvalidOptionError } from './errors.js'
import type { MessageSchemas } from './schema.js'
import type { MessageTypes, TypesOf, WSSHandler } from './types.js'

/** An origin rule: exact origins (case-insensitive) and RegExps, a RegExp, or a function of the `Origin` header. */
export type AllowedOrigins = string | RegExp | ReadonlyArray<string | RegExp> | ((origin: string) => boolean)

/**
 * The options of the plugin. Only `handler` is required, and `dataType`
 * when it is not `'text'`. `D` is the dataType, `S` the `schema` option and
 * `P` the app's type provider: together they type the handler's messages
 * (see {@link TypesOf}).
 */
export type WssPluginOptions<D extends DataType = DataType, S extends MessageSchemas = MessageSchemas, P extends FastifyTypeProvider = FastifyTypeProviderDefault, R extends FastifySchema = FastifySchema> =
  WssCommonOptions<S, R> & DataTypeOption<D> & {
    /** The server handler: an object with an `onConnection` method. */
    handler: WSSHandler<D, TypesOf<D, S, P, R>>
  }

/** `dataType` may be left out for `'text'` only: a handler written for another must say so. */
type DataTypeOption<D extends DataType> = D extends 'text'
  ? { /** `'text'` (default), `'blob'` or `'object'`. */ dataType?: D }
  : { /** `'text'` (default), `'blob'` or `'object'`. */ dataType: D }

/** The options of the plugin but `handler` and `dataType`. */
export interface WssCommonOptions<S extends MessageSchemas = MessageSchemas, R extends FastifySchema = FastifySchema> {
  /** A Fastify route pattern (`/chat`, `/rooms/:room`); absent: every upgrade no other route takes. */
  path?: string
  /** Largest message in bytes; a larger one closes the connection with 1009. Default 1 MiB. */
  maxPayload?: number
  /** Ping interval; a peer that missed the previous ping is destroyed. Default `{ interval: 30000 }`; `false` turns it off. */
  heartbeat?: boolean | { interval: number }
  /** Most connections at once (open, closing, and handshakes under way); further upgrades get 503. Default unlimited. */
  maxConnections?: number
  /** Most messages waiting for `onMessage` before the socket stops being read. Default 100. */
  maxPendingMessages?: number
  /** Most unsent outbound bytes of a connection before it is dropped. Default 16 MiB. */
  maxBackpressure?: number
  /** How long `terminate()` waits for the peer's close frame before destroying the socket, in ms. Default 5000. */
  closeTimeout?: number
  /**
   * Most time in ms from an upgrade request to its 101 (hooks and
   * onConnection included); then its socket is destroyed. With several
   * servers on one app, the shortest applies to all. Default 10000.
   */
  handshakeTimeout?: number
  /** Origins allowed to connect; others get 403. Requests without `Origin` are let through. Default: any. */
  allowedOrigins?: AllowedOrigins
  /** permessage-deflate, as `ws` takes it. Default off. */
  perMessageDeflate?: boolean | PerMessageDeflateOptions
  /** A cluster adapter (`redisAdapter(...)` from `fastify-wss/redis`): broadcast and publish reach every node. Default: none, all local. */
  adapter?: WssAdapter
  /**
   * Most bytes of messages waiting for `onMessage` (inflated size) before the
   * socket stops being read. Default 8 MiB.
   */
  maxPendingBytes?: number
  /** At most `max` messages per connection per `timeWindow` ms; `action` `'pause'` (default) or `'close'` (1008). Default off. */
  rateLimit?: RateLimit
  /**
   * Most bytes held for all connections together (inbound queues and
   * outbound buffers); past it new upgrades get 503 and the connections
   * holding the most are paused, then dropped. Default: an eighth of V8's
   * heap limit, at most 256 MiB.
   */
  maxBufferedBytes?: number
  /** How long `terminate()` and `app.close()` wait for pending callbacks after the sockets are closed, in ms. Default 10000. */
  shutdownTimeout?: number
  /**
   * How `terminate()` and `app.close()` close the connections: at random
   * moments spread uniformly over `spread` ms (default 0: all at once), with
   * close `code` 1001 (Going Away, default) or 1012 (Service Restart).
   */
  shutdown?: ShutdownOptions
  /** Deepest nesting of arrays and objects in a message under dataType `'object'`; deeper is invalid JSON (errCode 300). Default 64. */
  maxDepth?: number
  /**
   * Fastify route options of the upgrade route, as on any route: `schema`
   * (`params`, `querystring`, `headers`, validated before onConnection),
   * `config` (`config.rateLimit` of `@fastify/rate-limit`), route hooks,
   * `constraints`, `logLevel`... The plugin owns `method`, `url`, `handler`.
   */
  route?: WssRouteOptions<R>
  /**
   * JSON Schemas of the messages, under `dataType: 'object'`: `message`
   * validates what arrives (errCode 301 when it does not match), `send`
   * serialises what `send`, `broadcast` and `publish` get. Compiled once,
   * when the app is ready, with the app's validator and serializer compilers.
   */
  schema?: S
  /**
   * What a message that is invalid JSON or does not match `schema.message`
   * does besides its report to onError: `'report'` only (default), or
   * `'close'` the connection with 1008.
   */
  invalidMessage?: 'report' | 'close'
}

/** The route options the plugin takes: those of any Fastify route but the ones it owns. */
export type WssRouteOptions<R extends FastifySchema = FastifySchema> = Omit<RouteShorthandOptions, 'websocket' | 'schema'> & { schema?: R } & Record<string, unknown>

/** The route options the plugin sets itself. */
const ownedRouteKeys = ['method', 'url', 'path', 'handler', 'websocket', 'wsHandler', 'exposeHeadRoute'] as const

/** The `rateLimit` option: the names `@fastify/rate-limit` uses. */
export interface RateLimit {
  /** Most messages per window. */
  max: number
  /** The window, in ms. */
  timeWindow: number
  /** `'pause'` stops reading until the window allows more; `'close'` closes with 1008. Default `'pause'`. */
  action?: 'pause' | 'close'
}

/** How the server closes its connections when it is terminated: the `shutdown` option, and the argument of `wss.terminate()`. */
export interface ShutdownOptions {
  /**
   * Closes the connections at random moments spread uniformly over this many
   * ms, instead of all at once, so that their clients do not all reconnect
   * at the same moment. Default 0 (all at once).
   */
  spread?: number
  /** The close code sent to every client: 1001 (Going Away, default) or 1012 (Service Restart). */
  code?: 1001 | 1012
}

/** The close codes a shutdown may send. */
const shutdownCodes: readonly number[] = [1001, 1012]

/** The defaults of every option past `handler`. */
export const defaults = {
  dataType: 'text',
  maxPayload: 1024 * 1024,
  heartbeat: { interval: 30_000 },
  maxConnections: Infinity,
  maxPendingMessages: 100,
  maxBackpressure: 16 * 1024 * 1024,
  closeTimeout: 5000,
  handshakeTimeout: 10_000,
  perMessageDeflate: false,
  maxPendingBytes: 8 * 1024 * 1024,
  maxBufferedBytes: Math.min(256 * 1024 * 1024, Math.floor(getHeapStatistics().heap_size_limit / 8)),
  shutdownTimeout: 10_000,
  shutdown: { spread: 0, code: 1001 },
  maxDepth: 64
} as const

/** The longest duration Node's timers take (2^31 - 1 ms); a larger one would fire at once. */
export const MAX_DURATION = 2 ** 31 - 1

/** @internal Options after validation, with defaults filled in. */
export interface ResolvedOptions<D extends DataType, M extends MessageTypes = TypesOf<D>> {
  handler: WSSHandler<D, M>
  path: string | undefined
  dataType: D
  maxPayload: number
  heartbeatInterval: number
  maxConnections: number
  maxPendingMessages: number
  maxBackpressure: number
  closeTimeout: number
  handshakeTimeout: number
  originAllowed: ((origin: string) => boolean) | undefined
  perMessageDeflate: boolean | PerMessageDeflateOptions
  adapter: WssAdapter | undefined
  maxPendingBytes: number
  rateLimit: Required<RateLimit> | undefined
  maxBufferedBytes: number
  shutdownTimeout: number
  shutdown: Required<ShutdownOptions>
  maxDepth: number
  route: WssRouteOptions
  schema: MessageSchemas | undefined
  closeOnInvalid: boolean
}

function positiveInteger (name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new WssInvalidOptionError(name, `must be a positive integer, got ${describe(value)}`)
  }
  return value
}

function required (name: string, value: unknown): unknown {
  if (value === undefined) throw new WssInvalidOptionError(name, 'is required')
  return value
}

/** A duration in ms: a positive integer Node's timers can take. */
function duration (name: string, value: unknown, fallback: number): number {
  const ms = positiveInteger(name, value, fallback)
  if (ms > MAX_DURATION) throw new WssInvalidOptionError(name, `must be at most ${MAX_DURATION} ms (2^31 - 1), got ${ms}`)
  return ms
}

function describe (value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : typeof value === 'object' || typeof value === 'function' ? typeof value : String(value)
}

/** @internal Validates the options once, at register; throws a coded error naming the option. */
export function resolveOptions<D extends DataType> (opts: WssPluginOptions<D>): ResolvedOptions<D> {
  const { handler, path } = opts
  const dataType = (opts.dataType ?? defaults.dataType) as D
  if (handler === null || (typeof handler !== 'object' && typeof handler !== 'function')) {
    throw new WssInvalidOptionError('handler', `is required: an object with an onConnection method, got ${describe(handler)}`)
  }
  if (typeof handler.onConnection !== 'function') {
    throw new WssInvalidOptionError('handler', 'must have an onConnection method')
  }
  for (const name of ['onOpen', 'onTerminate', 'onError'] as const) {
    if (handler[name] !== undefined && typeof handler[name] !== 'function') {
      throw new WssInvalidOptionError(`handler.${name}`, 'must be a function when present')
    }
  }
  if (path !== undefined && (typeof path !== 'string' || !path.startsWith('/'))) {
    throw new WssInvalidOptionError('path', `must be a string starting with "/", got ${describe(path)}`)
  }
  if (!dataTypes.includes(dataType)) {
    throw new WssInvalidOptionError('dataType', `must be one of ${dataTypes.join(', ')}, got ${describe(dataType)}`)
  }
  const perMessageDeflate = opts.perMessageDeflate ?? defaults.perMessageDeflate
  if (typeof perMessageDeflate !== 'boolean' && (perMessageDeflate === null || typeof perMessageDeflate !== 'object')) {
    throw new WssInvalidOptionError('perMessageDeflate', `must be a boolean or an object of ws options, got ${describe(perMessageDeflate)}`)
  }
  const { adapter } = opts
  if (adapter !== undefined) {
    for (const method of ['open', 'publish', 'subscribe', 'unsubscribe', 'close'] as const) {
      if (typeof adapter?.[method] !== 'function') {
        throw new WssInvalidOptionError('adapter', `must be a cluster adapter with a ${method} method`)
      }
    }
  }
  return {
    adapter,
    handler,
    path,
    dataType,
    maxPayload: positiveInteger('maxPayload', opts.maxPayload, defaults.maxPayload),
    heartbeatInterval: heartbeatInterval(opts.heartbeat),
    maxConnections: opts.maxConnections === Infinity ? Infinity : positiveInteger('maxConnections', opts.maxConnections, defaults.maxConnections),
    maxPendingMessages: positiveInteger('maxPendingMessages', opts.maxPendingMessages, defaults.maxPendingMessages),
    maxBackpressure: positiveInteger('maxBackpressure', opts.maxBackpressure, defaults.maxBackpressure),
    closeTimeout: duration('closeTimeout', opts.closeTimeout, defaults.closeTimeout),
    handshakeTimeout: duration('handshakeTimeout', opts.handshakeTimeout, defaults.handshakeTimeout),
    originAllowed: originMatcher(opts.allowedOrigins),
    perMessageDeflate,
    maxPendingBytes: positiveInteger('maxPendingBytes', opts.maxPendingBytes, defaults.maxPendingBytes),
    rateLimit: rateLimit(opts.rateLimit),
    maxBufferedBytes: positiveInteger('maxBufferedBytes', opts.maxBufferedBytes, defaults.maxBufferedBytes),
    shutdownTimeout: duration('shutdownTimeout', opts.shutdownTimeout, defaults.shutdownTimeout),
    shutdown: resolveShutdown(opts.shutdown, defaults.shutdown, (field, problem) => new WssInvalidOptionError(field === undefined ? 'shutdown' : `shutdown.${field}`, problem)),
    maxDepth: positiveInteger('maxDepth', opts.maxDepth, defaults.maxDepth),
    route: routeOptions(opts.route),
    schema: schemas(opts.schema, dataType),
    closeOnInvalid: invalidMessage(opts.invalidMessage)
  }
}

/**
 * @internal Validates a `shutdown` option or the argument of `wss.terminate()`:
 * what it leaves out is taken from `fallback`; `fail` makes the coded error
 * of a bad `field` (`spread`, `code`, or `undefined` for the whole value).
 */
export function resolveShutdown (value: unknown, fallback: Required<ShutdownOptions>,
  fail: (field: 'spread' | 'code' | undefined, problem: string) => Error): Required<ShutdownOptions> {
  if (value === undefined) return fallback
  if (value === null || typeof value !== 'object') throw fail(undefined, `must be { spread?, code? }, got ${describe(value)}`)
  const { spread = fallback.spread, code = fallback.code } = value as ShutdownOptions
  if (typeof spread !== 'number' || !Number.isSafeInteger(spread) || spread < 0 || spread > MAX_DURATION) {
    throw fail('spread', `must be an integer from 0 to ${MAX_DURATION} ms, got ${describe(spread)}`)
  }
  if (!shutdownCodes.includes(code)) {
    throw fail('code', `must be 1001 (Going Away) or 1012 (Service Restart), got ${describe(code)}`)
  }
  return { spread, code }
}

/** 0 means no heartbeat. */
function heartbeatInterval (heartbeat: WssPluginOptions['heartbeat']): number {
  if (heartbeat === undefined || heartbeat === true) return defaults.heartbeat.interval
  if (heartbeat === false) return 0
  if (heartbeat === null || typeof heartbeat !== 'object') {
    throw new WssInvalidOptionError('heartbeat', `must be a boolean or { interval }, got ${describe(heartbeat)}`)
  }
  return duration('heartbeat.interval', heartbeat.interval, defaults.heartbeat.interval)
}

function schemas (schema: MessageSchemas | undefined, dataType: DataType): MessageSchemas | undefined {
  if (schema === undefined) return undefined
  if (schema === null || typeof schema !== 'object') {
    throw new WssInvalidOptionError('schema', `must be an object { message?, send? }, got ${describe(schema)}`)
  }
  for (const key of Object.keys(schema)) {
    if (key !== 'message' && key !== 'send') throw new WssInvalidOptionError(`schema.${key}`, 'is not a schema of messages: give message and send only')
  }
  if (dataType !== 'object') throw new WssInvalidOptionError('schema', `needs dataType 'object', got ${describe(dataType)}`)
  return schema
}

function invalidMessage (action: unknown): boolean {
  if (action === undefined || action === 'report') return false
  if (action === 'close') return true
  throw new WssInvalidOptionError('invalidMessage', `must be "report" or "close", got ${describe(action)}`)
}

function routeOptions (route: WssRouteOptions | undefined): WssRouteOptions {
  if (route === undefined) return {}
  if (route === null || typeof route !== 'object') {
    throw new WssInvalidOptionError('route', `must be an object of Fastify route options, got ${describe(route)}`)
  }
  for (const key of ownedRouteKeys) {
    if (key in route) throw new WssInvalidOptionError(`route.${key}`, 'is set by the plugin and cannot be given')
  }
  return route
}

function rateLimit (limit: RateLimit | undefined): Required<RateLimit> | undefined {
  if (limit === undefined) return undefined
  if (limit === null || typeof limit !== 'object') {
    throw new WssInvalidOptionError('rateLimit', `must be { max, timeWindow, action? }, got ${describe(limit)}`)
  }
  const action = limit.action ?? 'pause'
  if (action !== 'pause' && action !== 'close') {
    throw new WssInvalidOptionError('rateLimit.action', `must be "pause" or "close", got ${describe(action)}`)
  }
  return {
    max: positiveInteger('rateLimit.max', required('rateLimit.max', limit.max), 0),
    timeWindow: duration('rateLimit.timeWindow', required('rateLimit.timeWindow', limit.timeWindow), 0),
    action
  }
}

function originMatcher (allowed: AllowedOrigins | undefined): ((origin: string) => boolean) | undefined {
  if (allowed === undefined) return undefined
  if (typeof allowed === 'function') return allowed
  const rules = Array.isArray(allowed) ? allowed : [allowed]
  const exact = new Set<string>()
  const patterns: RegExp[] = []
  for (const rule of rules as unknown[]) {
    if (typeof rule === 'string') exact.add(rule.toLowerCase())
    else if (rule instanceof RegExp) patterns.push(rule)
    else throw new WssInvalidOptionError('allowedOrigins', `takes origin strings, RegExps or a function, got ${describe(rule)}`)
  }
  return (origin) => exact.has(origin.toLowerCase()) || patterns.some((pattern) => {
    pattern.lastIndex = 0 // a /g or /y RegExp keeps state between tests
    return pattern.test(origin)
  })
}

// The types a user gets from `import wssPlugin from 'fastify-wss'`: they are
// checked against the declarations that ship (dist/, through the "exports"
// map), so `npm run build` must run first.
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { describe, expect, test } from 'tstyche'
// @fastify/websocket types injectWS with the CommonJS declaration of ws
import type WebSocket from 'ws' with { 'resolution-mode': 'require' }
import wssPlugin, {
  ErrCode,
  WebSocketConnection,
  WebSocketServer,
  WssCloseMessageTooLongError,
  WssInvalidCloseCodeError,
  WssInvalidOptionError,
  componentSignature,
  defaults,
  wssPlugin as namedPlugin,
  type ConnectionHandler,
  type ConnectionRequest,
  type DataType,
  type MessageData,
  type RateLimit,
  type WSSHandler,
  type WssAdapter,
  type WssErrorEntry,
  type WssPlugin,
  type WssPluginOptions
} from 'fastify-wss'
import { redisAdapter, type RedisDurableOptions } from 'fastify-wss/redis'
import { Cluster, Redis } from 'ioredis'

const app = Fastify()

const echo: WSSHandler = {
  onConnection () {
    return { onMessage (ws, event) { ws.send(event.data) } }
  }
}

describe('the package', () => {
  test('exports the plugin as the default export and as wssPlugin', () => {
    expect(wssPlugin).type.toBe(namedPlugin)
    expect(wssPlugin).type.toBe<WssPlugin>()
    expect(wssPlugin).type.not.toBeAssignableTo<FastifyPluginAsync<WssPluginOptions>>()
  })

  test('exports the two classes', () => {
    expect<InstanceType<typeof WebSocketServer<'text'>>>().type.toBe<WebSocketServer<'text'>>()
    expect<InstanceType<typeof WebSocketConnection<'blob'>>>().type.toBe<WebSocketConnection<'blob'>>()
  })

  test('DataType is the three data types', () => {
    expect<DataType>().type.toBe<'text' | 'blob' | 'object'>()
  })

  test('MessageData maps each data type to what onMessage receives', () => {
    expect<MessageData<'text'>>().type.toBe<string>()
    expect<MessageData<'blob'>>().type.toBe<Buffer>()
    expect<MessageData<'object'>>().type.toBe<unknown>()
  })

  test('an error entry has a numeric errCode, a message, the component signature and maybe the error', () => {
    expect<WssErrorEntry>().type.toBe<{ errCode: number, message: string, componentSignature: 'fastify-wss', error?: Error }>()
    expect(componentSignature).type.toBe<'fastify-wss'>()
  })

  test('ErrCode is a table of literal numbers', () => {
    expect(ErrCode.CONNECTION_FAILED).type.toBe<100>()
    expect(ErrCode.INVALID_JSON).type.toBe<300>()
    expect(ErrCode.MESSAGE_TOO_BIG).type.toBe<401>()
    expect(ErrCode.INVALID_JSON).type.toBeAssignableTo<WssErrorEntry['errCode']>()
  })

  test('the coded error constructors take their arguments and give FastifyErrors with a code', () => {
    const invalid = new WssInvalidOptionError('path', 'must start with "/"')
    expect(invalid).type.toBeAssignableTo<Error>()
    expect(invalid.code).type.toBe<'FST_WSS_INVALID_OPTION'>()
    expect(invalid.statusCode).type.toBe<500>()
    expect(new WssInvalidCloseCodeError(42)).type.toBeAssignableTo<Error>()
    expect(new WssCloseMessageTooLongError(200)).type.toBeAssignableTo<Error>()
    expect(new WssInvalidOptionError('path')).type.toRaiseError('Expected 2 arguments')
  })

  test('defaults are read-only literals', () => {
    expect(defaults.dataType).type.toBe<'text'>()
    expect(defaults.maxPendingMessages).type.toBe<100>()
    expect(defaults.maxConnections).type.toBe<number>()
    expect(defaults.shutdownTimeout).type.toBe<10000>()
  })

  test('every default can be passed back as an option', () => {
    expect(app.register).type.toBeCallableWith(wssPlugin, { handler: { onConnection: () => null }, ...defaults, heartbeat: { interval: defaults.heartbeat.interval } })
  })

  test('shutdown takes an optional spread and a code of 1001 or 1012', () => {
    const handler = { onConnection: () => null }
    expect(app.register).type.toBeCallableWith(wssPlugin, { handler, shutdown: { spread: 30_000, code: 1012 } })
    expect(app.register).type.toBeCallableWith(wssPlugin, { handler, shutdown: {} })
    expect(app.register).type.not.toBeCallableWith(wssPlugin, { handler, shutdown: { code: 1000 } })
    expect(app.register).type.not.toBeCallableWith(wssPlugin, { handler, shutdown: 30_000 })
    expect(defaults.shutdown).type.toBe<{ readonly spread: 0, readonly code: 1001 }>()
  })

  test('rateLimit takes max, timeWindow and an optional action', () => {
    const limit: RateLimit = { max: 10, timeWindow: 1000 }
    expect(limit.action).type.toBe<'pause' | 'close' | undefined>()
    expect<RateLimit>().type.not.toBeAssignableFrom({ max: 10, timeWindow: 1000, action: 'drop' })
  })
})

describe('registration', () => {
  test('fastify.wss is a WebSocketServer of any data type', () => {
    expect(app.wss).type.toBe<WebSocketServer<DataType>>()
    expect(app.wss.dataType).type.toBe<DataType>()
  })

  test('app.injectWS comes with the plugin', async () => {
    expect(app.injectWS('/chat')).type.toBeAssignableTo<Promise<WebSocket>>()
    expect(app.injectWS('/chat', { headers: { origin: 'http://a.example' } })).type.toBeAssignableTo<Promise<WebSocket>>()
    expect(app.injectWS(42)).type.toRaiseError()
    const ws = await app.injectWS('/chat')
    expect(ws.send).type.toBeCallableWith('hi')
    expect(ws.readyState).type.toBe<0 | 1 | 2 | 3>()
  })

  test('register takes the handler and the documented options', () => {
    expect(app.register(wssPlugin, { handler: echo })).type.not.toRaiseError()
    expect(app.register(wssPlugin, {
      handler: echo,
      path: '/chat',
      dataType: 'text',
      maxPayload: 1024,
      heartbeat: { interval: 50 },
      maxConnections: 10,
      maxPendingMessages: 10,
      maxBackpressure: 1024,
      closeTimeout: 100,
      allowedOrigins: ['https://a.example', /\.b\.example$/],
      perMessageDeflate: { threshold: 1024 }
    })).type.not.toRaiseError()
    expect(app.register(wssPlugin, { handler: echo, heartbeat: false, allowedOrigins: (origin) => origin.length > 0 })).type.not.toRaiseError()
  })

  test('the options of a register call type the handler it declares inline', () => {
    app.register(wssPlugin, {
      path: '/rooms/:room',
      handler: {
        onConnection (wss, event) {
          // no dataType: 'text'
          expect(wss).type.toBe<WebSocketServer<'text'>>()
          expect(event.request).type.toBe<ConnectionRequest>()
          return {
            onMessage (ws, event) {
              expect(ws).type.toBe<WebSocketConnection<'text'>>()
              expect(event.data).type.toBe<string>()
            }
          }
        }
      }
    })
  })

  test('a handler declared for a data type keeps its types when registered with it', () => {
    const blobs = {
      onConnection () {
        return {
          onMessage (_ws, event) {
            expect(event.data).type.toBe<Buffer>()
          }
        } satisfies ConnectionHandler<'blob'>
      }
    } satisfies WSSHandler<'blob'>
    expect(app.register(wssPlugin, { handler: blobs, dataType: 'blob' })).type.not.toRaiseError()
  })

  test('the adapter option takes a Redis adapter from fastify-wss/redis', () => {
    expect(app.register(wssPlugin, { handler: echo, adapter: redisAdapter({ url: 'redis://127.0.0.1:6379' }) })).type.not.toRaiseError()
    expect(app.register(wssPlugin, { handler: echo, adapter: { url: 'redis://127.0.0.1:6379' } })).type.toRaiseError()
  })

  test('durable delivery takes maxLen, and maxBuffered optionally', () => {
    expect(redisAdapter({ url: 'redis://127.0.0.1:6379', durable: { maxLen: 10_000 } })).type.not.toRaiseError()
    expect(redisAdapter({ url: 'redis://127.0.0.1:6379', durable: { maxLen: 10_000, maxBuffered: 0 } })).type.not.toRaiseError()
    expect(redisAdapter({ url: 'redis://127.0.0.1:6379', durable: {} })).type.toRaiseError("Property 'maxLen' is missing")
    expect(redisAdapter({ url: 'redis://127.0.0.1:6379', durable: { maxLen: '10' } })).type.toRaiseError()
    expect<RedisDurableOptions>().type.toBe<{ maxLen: number, maxBuffered?: number }>()
  })

  test('redisAdapter takes a Redis Cluster: an ioredis Cluster or its startup nodes', () => {
    expect(redisAdapter({ cluster: new Cluster([{ host: '127.0.0.1', port: 7000 }]) })).type.toBe<WssAdapter>()
    expect(redisAdapter({ cluster: [{ host: '127.0.0.1', port: 7000 }, 7001, '127.0.0.1:7002'], channelPrefix: 'my-app:' })).type.toBe<WssAdapter>()
    expect(redisAdapter({ cluster: new Redis() })).type.toRaiseError()
    expect(redisAdapter({ cluster: 'redis://127.0.0.1:7000' })).type.toRaiseError()
  })

  test('a handler is required and needs onConnection', () => {
    expect<WssPluginOptions>().type.not.toBeAssignableFrom({})
    expect(app.register(wssPlugin, {})).type.toRaiseError()
    expect(app.register(wssPlugin)).type.toRaiseError()
    expect(app.register(wssPlugin, { handler: {} })).type.toRaiseError()
    expect(app.register(wssPlugin, { handler: { onMessage () {} } })).type.toRaiseError()
  })

  test('onConnection must return a connection handler with onMessage, or nothing', () => {
    expect(app.register(wssPlugin, { handler: { onConnection () { return {} } } })).type.toRaiseError()
    expect(app.register(wssPlugin, { handler: { onConnection () { return { onOpen () {} } } } })).type.toRaiseError()
    expect(app.register(wssPlugin, { handler: { onConnection () { return null } } })).type.not.toRaiseError()
    expect(app.register(wssPlugin, { handler: { onConnection () { return undefined } } })).type.not.toRaiseError()
    expect(app.register(wssPlugin, { handler: { async onConnection () { return null } } })).type.not.toRaiseError()
  })

  test('an unknown dataType or a mistyped option is an error', () => {
    expect(app.register(wssPlugin, { handler: echo, dataType: 'binary' })).type.toRaiseError()
    expect(app.register(wssPlugin, { handler: echo, path: 42 })).type.toRaiseError()
    expect(app.register(wssPlugin, { handler: echo, maxPayload: '1mb' })).type.toRaiseError()
    expect(app.register(wssPlugin, { handler: echo, heartbeat: { every: 10 } })).type.toRaiseError()
    expect(app.register(wssPlugin, { handler: echo, allowedOrigins: 42 })).type.toRaiseError()
  })
})

import { describe, expect, test } from 'tstyche'
import type {
  ConnectionHandler,
  ConnectionRequest,
  ConnectionStatus,
  ShutdownOptions,
  TerminateOptions,
  WebSocketConnection,
  WebSocketServer,
  WSSHandler,
  WssDiagnostics,
  WssStats
} from 'fastify-wss'
import type { FastifyRequest } from 'fastify'

declare const ws: WebSocketConnection<'text'>
declare const wss: WebSocketServer<'blob'>

describe('WebSocketConnection', () => {
  test('send accepts any value and returns whether it was sent', () => {
    expect<Parameters<typeof ws.send>>().type.toBe<[message: unknown]>()
    expect(ws.send('hi')).type.toBe<boolean>()
    expect(ws.send(Buffer.from('hi'))).type.toBe<boolean>()
    expect(ws.send(new Uint8Array(2))).type.toBe<boolean>()
    expect(ws.send({ any: ['json', 1, null] })).type.toBe<boolean>()
    expect(ws.send()).type.toRaiseError('Expected 1 arguments')
  })

  test('terminate takes an optional code and message and returns nothing', () => {
    expect(ws.terminate()).type.toBe<void>()
    expect(ws.terminate({})).type.toBe<void>()
    expect(ws.terminate({ code: 4000, message: 'x' })).type.toBe<void>()
    expect<TerminateOptions>().type.toBe<{ code?: number, message?: string }>()
    expect(ws.terminate({ code: '4000' })).type.toRaiseError()
    expect(ws.terminate({ reason: 'x' })).type.toRaiseError()
    expect(ws.terminate(4000)).type.toRaiseError()
  })

  test('status is Connected, Closing or Closed', () => {
    expect(ws.status).type.toBe<'Connected' | 'Closing' | 'Closed'>()
    expect<ConnectionStatus>().type.toBe<'Connected' | 'Closing' | 'Closed'>()
  })

  test('the other members have their documented types', () => {
    expect(ws.id).type.toBe<number>()
    expect(ws.wss).type.toBe<WebSocketServer<'text'>>()
    expect(ws.handler).type.toBe<ConnectionHandler<'text'>>()
    expect(ws.request).type.toBe<ConnectionRequest>()
    expect(ws.bufferedAmount).type.toBe<number>()
  })

  test('its properties are read-only', () => {
    expect(ws.status = 'Closed').type.toRaiseError("Cannot assign to 'status' because it is a read-only property")
    expect(ws.id = 1).type.toRaiseError("Cannot assign to 'id' because it is a read-only property")
    expect(ws.wss = wss as never).type.toRaiseError("Cannot assign to 'wss' because it is a read-only property")
  })
})

describe('WebSocketServer', () => {
  test('connections is an array of the connections of its data type', () => {
    expect(wss.connections).type.toBe<Array<WebSocketConnection<'blob'>>>()
  })

  test('terminate takes optional shutdown options and returns a Promise of nothing', () => {
    expect(wss.terminate()).type.toBe<Promise<void>>()
    expect(wss.terminate({ spread: 30_000, code: 1012 })).type.toBe<Promise<void>>()
    expect(wss.terminate).type.toBeCallableWith({})
    expect(wss.terminate).type.toBeCallableWith({ code: 1001 })
    expect(wss.terminate).type.not.toBeCallableWith(1000)
    expect(wss.terminate).type.not.toBeCallableWith({ code: 1000 })
    expect(wss.terminate).type.not.toBeCallableWith({ spread: '1s' })
    expect<Parameters<typeof wss.terminate>>().type.toBe<[options?: ShutdownOptions]>()
    expect<ShutdownOptions>().type.toBe<{ spread?: number, code?: 1001 | 1012 }>()
  })

  test('the other members have their documented types', () => {
    expect(wss.dataType).type.toBe<'blob'>()
    expect(wss.handler).type.toBe<WSSHandler<'blob'>>()
    expect(wss.path).type.toBe<string | undefined>()
    expect(wss.terminated).type.toBe<boolean>()
  })

  test('stats() returns the counters as plain numbers, the keyed ones as records of numbers', () => {
    expect(wss.stats()).type.toBe<WssStats>()
    expect(wss.stats).type.not.toBeCallableWith({})
    expect<WssStats>().type.toBe<{
      connections: number
      accepted: number
      refused: Record<number, number>
      closed: Record<number, number>
      messagesIn: number
      messagesOut: number
      bytesIn: number
      bytesOut: number
      dropped: number
      rateLimited: number
      errors: Record<number, number>
    }>()
    expect(wss.stats().refused[503]).type.toBe<number>()
    expect(wss.stats().errors[300]).type.toBe<number>()
  })

  test('its properties are read-only', () => {
    expect(wss.connections = []).type.toRaiseError("Cannot assign to 'connections' because it is a read-only property")
    expect(wss.path = '/x').type.toRaiseError("Cannot assign to 'path' because it is a read-only property")
    expect(wss.terminated = true).type.toRaiseError("Cannot assign to 'terminated' because it is a read-only property")
    expect(wss.dataType = 'blob').type.toRaiseError("Cannot assign to 'dataType' because it is a read-only property")
  })

  test('internal members are not part of the declared API', () => {
    expect<WebSocketServer>().type.not.toHaveProperty('_admit')
    expect<WebSocketServer>().type.not.toHaveProperty('_meter')
    expect<WebSocketConnection>().type.not.toHaveProperty('_receive')
  })
})

describe('WssDiagnostics', () => {
  test('is keyed by the names of the channels', () => {
    expect<keyof WssDiagnostics>().type.toBe<
      'fastify-wss:connection:opened' | 'fastify-wss:connection:closed' | 'fastify-wss:connection:dropped' |
      'fastify-wss:handshake:refused' | 'fastify-wss:message:received' | 'fastify-wss:message:sent' | 'fastify-wss:error'
    >()
  })

  test('types the message of each channel, with the server and connection of a data type', () => {
    type Of<K extends keyof WssDiagnostics> = WssDiagnostics<'blob'>[K]
    expect<Of<'fastify-wss:connection:opened'>>().type.toBe<{ wss: WebSocketServer<'blob'>, connection: WebSocketConnection<'blob'> }>()
    expect<Of<'fastify-wss:connection:closed'>>().type.toBe<{
      wss: WebSocketServer<'blob'>, connection: WebSocketConnection<'blob'>, code: number, reason: string | undefined, duration: number
    }>()
    expect<Of<'fastify-wss:connection:dropped'>>().type.toBe<{
      wss: WebSocketServer<'blob'>, connection: WebSocketConnection<'blob'>, bufferedAmount: number, maxBackpressure: number
    }>()
    expect<Of<'fastify-wss:handshake:refused'>>().type.toBe<{ wss: WebSocketServer<'blob'>, request: FastifyRequest, status: number }>()
    expect<Of<'fastify-wss:message:received'>>().type.toBe<{
      wss: WebSocketServer<'blob'>, connection: WebSocketConnection<'blob'>, data: Buffer, binary: boolean
    }>()
    expect<Of<'fastify-wss:message:sent'>>().type.toBe<{
      wss: WebSocketServer<'blob'>, connection: WebSocketConnection<'blob'>, data: string | Buffer | ArrayBuffer | ArrayBufferView, binary: boolean
    }>()
    expect<Of<'fastify-wss:error'>>().type.toBe<{
      wss: WebSocketServer<'blob'>, connection: WebSocketConnection<'blob'> | undefined, errCode: number, error: Error
    }>()
  })
})

// The error classes as the declarations that ship type them (NodeNext here;
// test-d/bundler/ checks them under moduleResolution "bundler").
import type { FastifyError } from '@fastify/error'
import { describe, expect, test } from 'tstyche'
import {
  WssAdapterError,
  WssAlreadyRegisteredError,
  WssCallbackError,
  WssCloseMessageTooLongError,
  WssConnectionRefusedError,
  WssInvalidCloseCodeError,
  WssInvalidConnectionHandlerError,
  WssInvalidJsonError,
  WssInvalidOptionError,
  WssInvalidShutdownError,
  WssInvalidTopicError,
  WssNotSerializableError,
  WssNotWebSocketError,
  WssOriginNotAllowedError,
  WssUnavailableError
} from 'fastify-wss'

describe('error classes', () => {
  test('no error class or instance is any', () => {
    expect(WssInvalidOptionError).type.not.toBe<any>()
    expect(new WssInvalidOptionError('path', 'x')).type.not.toBe<any>()
    expect(new WssAlreadyRegisteredError()).type.not.toBe<any>()
    expect(new WssConnectionRefusedError()).type.not.toBe<any>()
    expect(new WssOriginNotAllowedError('https://evil.test')).type.not.toBe<any>()
    expect(new WssUnavailableError('is terminated')).type.not.toBe<any>()
    expect(new WssNotWebSocketError()).type.not.toBe<any>()
    expect(new WssInvalidConnectionHandlerError()).type.not.toBe<any>()
    expect(new WssCallbackError('x')).type.not.toBe<any>()
    expect(new WssInvalidJsonError('x')).type.not.toBe<any>()
    expect(new WssNotSerializableError('x')).type.not.toBe<any>()
    expect(new WssInvalidCloseCodeError(42)).type.not.toBe<any>()
    expect(new WssCloseMessageTooLongError(200)).type.not.toBe<any>()
    expect(new WssInvalidTopicError('""')).type.not.toBe<any>()
    expect(new WssAdapterError('x')).type.not.toBe<any>()
    expect(new WssInvalidShutdownError('"code"', 'x')).type.not.toBe<any>()
  })

  test('an instance is a FastifyError with its own code and, where set, its status', () => {
    expect(new WssInvalidOptionError('path', 'x')).type.toBe<FastifyError & { code: 'FST_WSS_INVALID_OPTION', statusCode: 500 }>()
    expect(new WssAlreadyRegisteredError()).type.toBe<FastifyError & { code: 'FST_WSS_ALREADY_REGISTERED' }>()
    expect(new WssConnectionRefusedError()).type.toBe<FastifyError & { code: 'FST_WSS_CONNECTION_REFUSED', statusCode: 403 }>()
    expect(new WssOriginNotAllowedError('o')).type.toBe<FastifyError & { code: 'FST_WSS_ORIGIN_NOT_ALLOWED', statusCode: 403 }>()
    expect(new WssUnavailableError('x')).type.toBe<FastifyError & { code: 'FST_WSS_UNAVAILABLE', statusCode: 503 }>()
    expect(new WssNotWebSocketError()).type.toBe<FastifyError & { code: 'FST_WSS_NOT_WEBSOCKET', statusCode: 400 }>()
    expect(new WssInvalidConnectionHandlerError()).type.toBe<FastifyError & { code: 'FST_WSS_INVALID_CONNECTION_HANDLER', statusCode: 500 }>()
    expect(new WssCallbackError('x')).type.toBe<FastifyError & { code: 'FST_WSS_CALLBACK_ERROR' }>()
    expect(new WssInvalidJsonError('x')).type.toBe<FastifyError & { code: 'FST_WSS_INVALID_JSON' }>()
    expect(new WssNotSerializableError('x')).type.toBe<FastifyError & { code: 'FST_WSS_NOT_SERIALIZABLE', statusCode: 500 }>()
    expect(new WssInvalidCloseCodeError(42)).type.toBe<FastifyError & { code: 'FST_WSS_INVALID_CLOSE_CODE', statusCode: 500 }>()
    expect(new WssCloseMessageTooLongError(200)).type.toBe<FastifyError & { code: 'FST_WSS_CLOSE_MESSAGE_TOO_LONG', statusCode: 500 }>()
    expect(new WssInvalidTopicError('x')).type.toBe<FastifyError & { code: 'FST_WSS_INVALID_TOPIC', statusCode: 500 }>()
    expect(new WssAdapterError('x')).type.toBe<FastifyError & { code: 'FST_WSS_ADAPTER_ERROR' }>()
    expect(new WssInvalidShutdownError('"code"', 'x')).type.toBe<FastifyError & { code: 'FST_WSS_INVALID_SHUTDOWN', statusCode: 500 }>()
  })

  test('code is a string literal and message a string', () => {
    const error = new WssInvalidOptionError('path', 'x')
    expect(error.code).type.toBe<'FST_WSS_INVALID_OPTION'>()
    expect(error.code).type.toBeAssignableTo<string>()
    expect(error.message).type.toBe<string>()
    expect(error).type.toBeAssignableTo<Error>()
    expect(error).type.not.toBeAssignableTo<number>()
  })

  test('the constructors take their documented parameters', () => {
    expect<ConstructorParameters<typeof WssInvalidOptionError>>().type.toBe<[option: string, problem: string]>()
    expect<ConstructorParameters<typeof WssAlreadyRegisteredError>>().type.toBe<[]>()
    expect<ConstructorParameters<typeof WssConnectionRefusedError>>().type.toBe<[]>()
    expect<ConstructorParameters<typeof WssOriginNotAllowedError>>().type.toBe<[origin: string]>()
    expect<ConstructorParameters<typeof WssUnavailableError>>().type.toBe<[state: string]>()
    expect<ConstructorParameters<typeof WssNotWebSocketError>>().type.toBe<[]>()
    expect<ConstructorParameters<typeof WssInvalidConnectionHandlerError>>().type.toBe<[]>()
    expect<ConstructorParameters<typeof WssCallbackError>>().type.toBe<[message: string, options?: { cause: unknown }]>()
    expect<ConstructorParameters<typeof WssInvalidJsonError>>().type.toBe<[reason: string, options?: { cause: unknown }]>()
    expect<ConstructorParameters<typeof WssNotSerializableError>>().type.toBe<[reason: string, options?: { cause: unknown }]>()
    expect<ConstructorParameters<typeof WssInvalidCloseCodeError>>().type.toBe<[code: unknown]>()
    expect<ConstructorParameters<typeof WssCloseMessageTooLongError>>().type.toBe<[bytes: number]>()
    expect<ConstructorParameters<typeof WssInvalidTopicError>>().type.toBe<[topic: string]>()
    expect<ConstructorParameters<typeof WssAdapterError>>().type.toBe<[reason: string, options?: { cause: unknown }]>()
    expect<ConstructorParameters<typeof WssInvalidShutdownError>>().type.toBe<[what: string, problem: string]>()
  })

  test('wrong arguments are compile errors', () => {
    expect(new WssInvalidOptionError('path')).type.toRaiseError('Expected 2 arguments')
    expect(new WssInvalidOptionError('path', 42)).type.toRaiseError("Argument of type 'number' is not assignable")
    expect(new WssAlreadyRegisteredError('x')).type.toRaiseError('Expected 0 arguments')
    expect(new WssCloseMessageTooLongError('200')).type.toRaiseError("Argument of type 'string' is not assignable")
    expect(new WssAdapterError('x', { reason: 1 })).type.toRaiseError()
  })

  test('a class can be called without new', () => {
    expect(WssUnavailableError('is terminated')).type.toBe<FastifyError & { code: 'FST_WSS_UNAVAILABLE', statusCode: 503 }>()
  })
})

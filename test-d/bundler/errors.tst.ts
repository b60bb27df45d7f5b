// Under moduleResolution "bundler" (with skipLibCheck, as test-d/ has it) the
// error classes once came out as `any`: each must keep its type here too.
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
  WssInvalidTopicError,
  WssNotSerializableError,
  WssNotWebSocketError,
  WssOriginNotAllowedError,
  WssUnavailableError
} from 'fastify-wss'

describe('error classes under moduleResolution bundler', () => {
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
  })

  test('an instance has its code, and is not assignable to number', () => {
    const error = new WssInvalidOptionError('path', 'x')
    expect(error.code).type.toBe<'FST_WSS_INVALID_OPTION'>()
    expect(error).type.not.toBeAssignableTo<number>()
    expect<ConstructorParameters<typeof WssInvalidOptionError>>().type.toBe<[option: string, problem: string]>()
  })
})

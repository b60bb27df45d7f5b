// Typed messages under moduleResolution "bundler": the declaration merging
// that types register, and the type providers, resolve here too.
import Fastify from 'fastify'
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { describe, expect, test } from 'tstyche'
import wssPlugin, { type WSSHandler } from 'fastify-wss'

const app = Fastify()

describe('under bundler resolution', () => {
  test('dataType types an inline handler', () => {
    app.register(wssPlugin, {
      dataType: 'blob',
      handler: { onConnection: () => ({ onMessage (_ws, event) { expect(event.data).type.toBe<Buffer>() } }) }
    })
  })

  test('TypeBox schemas type event.data and send', () => {
    app.withTypeProvider<TypeBoxTypeProvider>().register(wssPlugin, {
      dataType: 'object',
      schema: { message: Type.Object({ text: Type.String() }), send: Type.Object({ n: Type.Number() }) },
      handler: {
        onConnection: () => ({
          onMessage (ws, event) {
            expect(event.data).type.toBe<{ text: string }>()
            expect(ws.send).type.toBeCallableWith({ n: 1 })
            expect(ws.send).type.not.toBeCallableWith({ n: '1' })
          }
        })
      }
    })
  })

  test('json-schema-to-ts schemas type event.data', () => {
    app.withTypeProvider<JsonSchemaToTsProvider>().register(wssPlugin, {
      dataType: 'object',
      schema: { message: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'], additionalProperties: false } },
      handler: { onConnection: () => ({ onMessage (_ws, event) { expect(event.data).type.toBe<{ n: number }>() } }) }
    })
  })

  test("a handler annotated for 'object' does not compile without dataType 'object'", () => {
    const handler: WSSHandler<'object'> = { onConnection: () => ({ onMessage () {} }) }
    expect(app.register(wssPlugin, { dataType: 'object', handler })).type.not.toRaiseError()
    expect(app.register(wssPlugin, { handler })).type.toRaiseError()
  })
})

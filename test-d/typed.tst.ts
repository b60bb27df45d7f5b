// Typed messages (SPEC §10): register infers the handler's types from
// dataType, schema and the app's type provider; handler classes are checked
// against them. test-d/bundler/typed.tst.ts asserts the same under
// moduleResolution "bundler".
import Fastify from 'fastify'
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { Type } from 'typebox'
import { describe, expect, test } from 'tstyche'
import { z } from 'zod'
import wssPlugin, { type Bytes, type MessageEvent, type TypesOf, type WebSocketConnection, type WebSocketServer, type WSSHandler } from 'fastify-wss'

const app = Fastify()

const chat = {
  message: Type.Union([
    Type.Object({ type: Type.Literal('join'), name: Type.String() }),
    Type.Object({ type: Type.Literal('say'), text: Type.String() })
  ]),
  send: Type.Object({ type: Type.String(), from: Type.String(), text: Type.Optional(Type.String()) })
}
type Chat = TypesOf<'object', typeof chat, TypeBoxTypeProvider>
type Received = { type: 'join', name: string } | { type: 'say', text: string }
type Sent = { type: string, from: string, text?: string }

describe('an inline handler is typed by dataType, without annotations', () => {
  test("'text' (the default) gives strings", () => {
    app.register(wssPlugin, {
      handler: { onConnection: () => ({ onMessage (ws, event) { expect(event.data).type.toBe<string>(); expect(ws.wss.dataType).type.toBe<'text'>() } }) }
    })
  })

  test("'blob' gives Buffers", () => {
    app.register(wssPlugin, {
      dataType: 'blob',
      handler: { onConnection: () => ({ onMessage (_ws, event) { expect(event.data).type.toBe<Buffer>() } }) }
    })
  })

  test("'object' without schemas gives unknown, and send takes anything", () => {
    app.register(wssPlugin, {
      dataType: 'object',
      handler: {
        onConnection: () => ({
          onMessage (ws, event) {
            expect(event.data).type.toBe<unknown>()
            expect(ws.send).type.toBeCallableWith({ any: 'thing' })
          }
        })
      }
    })
  })

  test('JSON Schemas without a type provider leave the data unknown, as Fastify leaves a body', () => {
    app.register(wssPlugin, {
      dataType: 'object',
      schema: { message: { type: 'object', properties: { n: { type: 'number' } } } },
      handler: { onConnection: () => ({ onMessage (_ws, event) { expect(event.data).type.toBe<unknown>() } }) }
    })
  })
})

describe('with a type provider, the schemas type the messages', () => {
  test('TypeBox: event.data is the type of schema.message, send / broadcast / publish take the type of schema.send', () => {
    const typed = app.withTypeProvider<TypeBoxTypeProvider>()
    typed.register(wssPlugin, {
      dataType: 'object',
      schema: chat,
      handler: {
        onConnection (wss) {
          expect(wss).type.toBe<WebSocketServer<'object', Chat>>()
          return {
            onMessage (ws, event) {
              expect(event.data).type.toBe<Received>()
              if (event.data.type === 'say') expect(event.data.text).type.toBe<string>()
              expect(ws.send).type.toBeCallableWith({ type: 'said', from: 'ann' })
              expect(ws.send).type.toBeCallableWith(Buffer.from('bytes go as they are'))
              expect(ws.send).type.not.toBeCallableWith({ type: 'said' })
              expect(ws.send).type.not.toBeCallableWith('a string')
              expect(ws.wss.broadcast).type.toBeCallableWith({ type: 'x', from: 'y' })
              expect(ws.wss.broadcast).type.not.toBeCallableWith({ from: 1 })
              expect(ws.wss.publish).type.toBeCallableWith('room', { type: 'x', from: 'y', text: 'z' })
              expect(ws.wss.publish).type.not.toBeCallableWith('room', { text: 'z' })
            }
          }
        }
      }
    })
  })

  test('json-schema-to-ts: plain JSON Schemas, without `as const`', () => {
    app.withTypeProvider<JsonSchemaToTsProvider>().register(wssPlugin, {
      dataType: 'object',
      schema: {
        message: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'], additionalProperties: false },
        send: { type: 'object', properties: { total: { type: 'number' } }, required: ['total'] }
      },
      handler: {
        onConnection: () => ({
          onMessage (ws, event) {
            expect(event.data).type.toBe<{ n: number }>()
            expect(ws.send).type.toBeCallableWith({ total: 1 })
            expect(ws.send).type.not.toBeCallableWith({ total: 'one' })
          }
        })
      }
    })
  })

  test('Zod: the schemas are Zod types', () => {
    app.withTypeProvider<ZodTypeProvider>().register(wssPlugin, {
      dataType: 'object',
      schema: { message: z.object({ text: z.string() }), send: z.object({ echo: z.string() }) },
      handler: {
        onConnection: () => ({
          onMessage (ws, event) {
            expect(event.data).type.toBe<{ text: string }>()
            expect(ws.send).type.toBeCallableWith({ echo: event.data.text })
            expect(ws.send).type.not.toBeCallableWith({ echo: 1 })
          }
        })
      }
    })
  })

  test('without schema.send, send takes anything; without schema.message, data is unknown', () => {
    app.withTypeProvider<TypeBoxTypeProvider>().register(wssPlugin, {
      dataType: 'object',
      schema: { message: Type.Object({ n: Type.Number() }) },
      handler: { onConnection: () => ({ onMessage (ws, event) { expect(event.data).type.toBe<{ n: number }>(); expect(ws.send).type.toBeCallableWith('anything') } }) }
    })
    app.withTypeProvider<TypeBoxTypeProvider>().register(wssPlugin, {
      dataType: 'object',
      schema: { send: Type.Object({ n: Type.Number() }) },
      handler: { onConnection: () => ({ onMessage (ws, event) { expect(event.data).type.toBe<unknown>(); expect(ws.send).type.not.toBeCallableWith('anything') } }) }
    })
  })
})

describe('handler classes are checked against the options they are registered with', () => {
  class TextConnection { onMessage (_ws: WebSocketConnection<'text'>, event: { data: string }) { return event.data.length } }
  class TextServer implements WSSHandler<'text'> { onConnection () { return new TextConnection() } }
  class ObjectConnection { onMessage (ws: WebSocketConnection<'object'>, event: MessageEvent<'object'>) { ws.send({ echo: event.data }) } }
  class ObjectServer implements WSSHandler<'object'> { onConnection () { return new ObjectConnection() } }
  const annotated: WSSHandler<'object'> = { onConnection: () => ({ onMessage () {} }) }

  class ChatConnection { onMessage (ws: WebSocketConnection<'object', Chat>, event: { data: Received }) { ws.send({ type: event.data.type, from: 'server' }) } }
  class ChatServer implements WSSHandler<'object', Chat> { onConnection () { return new ChatConnection() } }

  test("a 'text' handler with dataType 'object' does not compile", () => {
    expect(app.register(wssPlugin, { handler: new TextServer() })).type.not.toRaiseError()
    expect(app.register(wssPlugin, { dataType: 'object', handler: new TextServer() })).type.toRaiseError()
  })

  test("an 'object' handler needs dataType 'object'", () => {
    expect(app.register(wssPlugin, { dataType: 'object', handler: new ObjectServer() })).type.not.toRaiseError()
    expect(app.register(wssPlugin, { handler: new ObjectServer() })).type.toRaiseError()
    expect(app.register(wssPlugin, { dataType: 'object', handler: annotated })).type.not.toRaiseError()
    expect(app.register(wssPlugin, { handler: annotated })).type.toRaiseError()
    expect(app.register(wssPlugin, { dataType: 'text', handler: annotated })).type.toRaiseError()
  })

  test('a handler written for schemas compiles with them, under their type provider only', () => {
    const typed = app.withTypeProvider<TypeBoxTypeProvider>()
    expect(typed.register(wssPlugin, { dataType: 'object', schema: chat, handler: new ChatServer() })).type.not.toRaiseError()
    expect(typed.register(wssPlugin, { dataType: 'object', schema: { message: chat.message, send: Type.Object({ n: Type.Number() }) }, handler: new ChatServer() })).type.toRaiseError()
    expect(app.register(wssPlugin, { dataType: 'object', schema: chat, handler: new ChatServer() })).type.toRaiseError()
  })

  test('TypesOf spells out the types of a server', () => {
    expect<Chat['data']>().type.toBe<Received>()
    expect<Chat['send']>().type.toBe<Sent | Bytes>()
    expect<TypesOf<'text'>['data']>().type.toBe<string>()
    expect<TypesOf<'object'>['send']>().type.toBe<unknown>()
  })
})

describe('the route schema types the request', () => {
  test('TypeBox params and querystring type event.request and ws.request', () => {
    app.withTypeProvider<TypeBoxTypeProvider>().register(wssPlugin, {
      path: '/rooms/:room',
      route: { schema: { params: Type.Object({ room: Type.String() }), querystring: Type.Object({ since: Type.Optional(Type.Integer()) }) } },
      handler: {
        onConnection (_wss, event) {
          expect(event.request.params).type.toBe<{ room: string }>()
          expect(event.request.query).type.toBe<{ since?: number }>()
          return { onMessage (ws) { expect(ws.request.params.room).type.toBe<string>() } }
        }
      }
    })
  })

  test('without a route schema, params and query are records of strings', () => {
    app.register(wssPlugin, {
      path: '/rooms/:room',
      handler: {
        onConnection (_wss, event) {
          expect(event.request.params).type.toBe<Record<string, string>>()
          expect(event.request.query).type.toBe<Record<string, string | string[]>>()
          return null
        }
      }
    })
  })
})

describe('fastify.wss', () => {
  test('is the server of any dataType: its broadcast takes any message', () => {
    expect(app.wss.broadcast).type.toBeCallableWith({ any: 'thing' })
    expect(app.wss.dataType).type.toBe<'text' | 'blob' | 'object'>()
  })
})

import type { FastifyRequest } from 'fastify'
import { describe, expect, test } from 'tstyche'
import type {
  ConnectionEvent,
  ConnectionHandler,
  ConnectionRequest,
  DataType,
  DrainEvent,
  ErrorEvent,
  MessageEvent,
  OpenEvent,
  ServerErrorEvent,
  ServerTerminateEvent,
  TerminateEvent,
  WebSocketConnection,
  WebSocketServer,
  WSSHandler,
  WssErrorEntry
} from 'fastify-wss'

describe('ConnectionHandler', () => {
  test('event.data is a string by default and for text', () => {
    const byDefault: ConnectionHandler = {
      onMessage (ws, event) {
        expect(ws).type.toBe<WebSocketConnection<'text'>>()
        expect(event).type.toBe<MessageEvent<'text'>>()
        expect(event.type).type.toBe<'message'>()
        expect(event.data).type.toBe<string>()
      }
    }
    const text: ConnectionHandler<'text'> = {
      onMessage (_ws, event) {
        expect(event.data).type.toBe<string>()
        expect(event.binary).type.toBe<boolean>()
      }
    }
    expect(byDefault).type.toBe(text)
  })

  test('event.data is a Buffer for blob', () => {
    const blob: ConnectionHandler<'blob'> = {
      onMessage (ws, event) {
        expect(ws).type.toBe<WebSocketConnection<'blob'>>()
        expect(event.data).type.toBe<Buffer>()
      }
    }
    expect(blob.onMessage).type.toBeCallableWith({} as WebSocketConnection<'blob'>, { type: 'message', data: Buffer.from('x'), binary: false })
  })

  test('event.data is unknown for object', () => {
    const object: ConnectionHandler<'object'> = {
      onMessage (ws, event) {
        expect(ws).type.toBe<WebSocketConnection<'object'>>()
        expect(event.data).type.toBe<unknown>()
      }
    }
    expect(object.onMessage).type.toBeCallableWith({} as WebSocketConnection<'object'>, { type: 'message', data: { any: ['json'] }, binary: false })
  })

  test('this in the methods of a connection handler literal is the handler', () => {
    const handler: ConnectionHandler<'blob'> = {
      onMessage () {
        expect(this).type.toBe<ConnectionHandler<'blob'>>()
      },
      onOpen () {
        expect(this).type.toBe<ConnectionHandler<'blob'>>()
      },
      onTerminate () {
        expect(this).type.toBe<ConnectionHandler<'blob'>>()
      }
    }
    expect(handler.onMessage).type.toBeCallableWith({} as WebSocketConnection<'blob'>, { type: 'message', data: Buffer.alloc(0), binary: false })
  })

  test('onOpen, onTerminate, onError and onDrain get the connection and their event', () => {
    const handler: ConnectionHandler = {
      onMessage () {},
      onOpen (ws, event) {
        expect(ws).type.toBe<WebSocketConnection<'text'>>()
        expect(event).type.toBe<OpenEvent>()
        expect(event.type).type.toBe<'open'>()
      },
      onTerminate (ws, event) {
        expect(ws).type.toBe<WebSocketConnection<'text'>>()
        expect(event).type.toBe<TerminateEvent>()
        expect(event.type).type.toBe<'terminate'>()
        expect(event.code).type.toBe<number>()
        expect(event.reason).type.toBe<string | undefined>()
      },
      onError (ws, event) {
        expect(ws).type.toBe<WebSocketConnection<'text'>>()
        expect(event).type.toBe<ErrorEvent>()
        expect(event.type).type.toBe<'error'>()
        expect(event.errors).type.toBe<WssErrorEntry[]>()
        expect(event).type.not.toHaveProperty('connection')
      },
      onDrain (ws, event) {
        expect(ws).type.toBe<WebSocketConnection<'text'>>()
        expect(event).type.toBe<DrainEvent>()
      }
    }
    expect(handler).type.toHaveProperty('onDrain')
  })

  test('callbacks may return a Promise', () => {
    const handler: ConnectionHandler<'object'> = {
      async onMessage (ws, event) { ws.send(await Promise.resolve(event.data)) },
      async onOpen () {},
      async onTerminate () {},
      async onError () {}
    }
    expect(handler.onMessage({} as WebSocketConnection<'object'>, { type: 'message', data: 1, binary: false })).type.toBe<unknown>()
  })

  test('onMessage is required and every callback is a function', () => {
    expect<ConnectionHandler>().type.not.toBeAssignableFrom({})
    expect<ConnectionHandler>().type.not.toBeAssignableFrom({ onOpen () {} })
    expect<ConnectionHandler>().type.not.toBeAssignableFrom({ onMessage: 'x' })
    expect<ConnectionHandler>().type.not.toBeAssignableFrom({ onMessage () {}, onTerminate: true })
  })

  test('a handler written for one data type is not one for another', () => {
    const blob: ConnectionHandler<'blob'> = {
      onMessage (_ws, event: MessageEvent<'blob'>) { event.data.readUInt8(0) }
    }
    expect<ConnectionHandler<'text'>>().type.not.toBeAssignableFrom(blob)
  })

  test('a class implementing ConnectionHandler with annotated methods compiles, and this is the class', () => {
    class Upper implements ConnectionHandler<'text'> {
      count = 0

      onMessage (ws: WebSocketConnection<'text'>, event: MessageEvent<'text'>): void {
        expect(this).type.toBeAssignableTo<Upper>()
        this.count++
        ws.send(event.data.toUpperCase())
      }

      async onTerminate (_ws: WebSocketConnection<'text'>, event: TerminateEvent): Promise<void> {
        expect(event.code).type.toBe<number>()
      }
    }
    expect(new Upper()).type.toBeAssignableTo<ConnectionHandler<'text'>>()
    expect(new Upper().count).type.toBe<number>()
  })

  test('a class whose onMessage takes the wrong data type does not implement ConnectionHandler', () => {
    class Wrong {
      onMessage (_ws: WebSocketConnection<'text'>, event: MessageEvent<'text'>): void { event.data.toUpperCase() }
    }
    expect(new Wrong()).type.not.toBeAssignableTo<ConnectionHandler<'blob'>>()
  })
})

describe('WSSHandler', () => {
  test('onConnection gets the server and the connection event with the request', () => {
    const handler: WSSHandler<'object'> = {
      onConnection (wss, event) {
        expect(wss).type.toBe<WebSocketServer<'object'>>()
        expect(event).type.toBe<ConnectionEvent>()
        expect(event.type).type.toBe<'connection'>()
        expect(event.request).type.toBe<ConnectionRequest>()
        expect(event.fastifyRequest).type.toBe<FastifyRequest>()
        return null
      }
    }
    expect(handler.onConnection).type.toBeCallableWith({} as WebSocketServer<'object'>, { type: 'connection', request: {} as ConnectionRequest, fastifyRequest: {} as FastifyRequest })
  })

  test('the request has headers, query, url, remoteAddress and params', () => {
    expect<ConnectionRequest['headers']>().type.toBe<Record<string, string | string[]>>()
    expect<ConnectionRequest['query']>().type.toBe<Record<string, string | string[]>>()
    expect<ConnectionRequest['url']>().type.toBe<string>()
    expect<ConnectionRequest['remoteAddress']>().type.toBe<string>()
    expect<ConnectionRequest['params']>().type.toBe<Record<string, string>>()
  })

  test('onConnection returns a connection handler of the same data type, nothing, or a Promise of either', () => {
    expect<WSSHandler<'blob'>>().type.toBeAssignableFrom({
      onConnection () {
        return { onMessage (_ws: WebSocketConnection<'blob'>, event: MessageEvent<'blob'>) { event.data.readUInt8(0) } }
      }
    })
    expect<WSSHandler>().type.toBeAssignableFrom({ onConnection () { return undefined } })
    expect<WSSHandler>().type.toBeAssignableFrom({ async onConnection () { return null } })
    expect<WSSHandler>().type.toBeAssignableFrom({ async onConnection () { return { onMessage () {} } } })
    const inline: WSSHandler<'blob'> = {
      onConnection () {
        return {
          onMessage (ws, event) {
            expect(ws).type.toBe<WebSocketConnection<'blob'>>()
            expect(event.data).type.toBe<Buffer>()
          }
        }
      }
    }
    expect(inline).type.toHaveProperty('onConnection')
  })

  test('a handler without onConnection, or whose onConnection returns no onMessage, is an error', () => {
    expect<WSSHandler>().type.not.toBeAssignableFrom({})
    expect<WSSHandler>().type.not.toBeAssignableFrom({ onOpen () {} })
    expect<WSSHandler>().type.not.toBeAssignableFrom({ onConnection () { return {} } })
    expect<WSSHandler>().type.not.toBeAssignableFrom({ onConnection () { return { onOpen () {} } } })
    expect<WSSHandler>().type.not.toBeAssignableFrom({ onConnection () { return 'yes' } })
  })

  test('this in the methods of a server handler literal is the handler', () => {
    const handler: WSSHandler<'text'> = {
      onConnection () {
        expect(this).type.toBe<WSSHandler<'text'>>()
        return null
      },
      onOpen () {
        expect(this).type.toBe<WSSHandler<'text'>>()
      },
      onError () {
        expect(this).type.toBe<WSSHandler<'text'>>()
      }
    }
    expect(handler).type.toHaveProperty('onOpen')
  })

  test('onOpen, onTerminate and onError get the server and their event', () => {
    const handler: WSSHandler<'blob'> = {
      onConnection () { return null },
      onOpen (wss, event) {
        expect(wss).type.toBe<WebSocketServer<'blob'>>()
        expect(event).type.toBe<OpenEvent>()
      },
      onTerminate (wss, event) {
        expect(wss).type.toBe<WebSocketServer<'blob'>>()
        expect(event).type.toBe<ServerTerminateEvent>()
        expect(event).type.not.toHaveProperty('code')
      },
      onError (wss, event) {
        expect(wss).type.toBe<WebSocketServer<'blob'>>()
        expect(event).type.toBe<ServerErrorEvent<'blob'>>()
        expect(event.errors).type.toBe<WssErrorEntry[]>()
        expect(event.connection).type.toBe<WebSocketConnection<'blob'> | undefined>()
      }
    }
    expect(handler).type.toHaveProperty('onTerminate')
  })

  test('a server handler class can call its own helpers, and this is the class', () => {
    class Chat implements WSSHandler<'object'> {
      readonly rooms = new Map<string, number>()

      onConnection (wss: WebSocketServer<'object'>, event: ConnectionEvent): ConnectionHandler<'object'> | null {
        expect(this).type.toBeAssignableTo<Chat>()
        const room = event.request.params.room
        if (room === undefined) return null
        this.join(room)
        const server = this
        return {
          onMessage (ws, message) {
            expect(ws).type.toBe<WebSocketConnection<'object'>>()
            expect(message.data).type.toBe<unknown>()
            expect(this).type.toBe<ConnectionHandler<'object'>>()
            server.join(room)
            for (const other of wss.connections) if (other !== ws) other.send(message.data)
          }
        }
      }

      onError (_wss: WebSocketServer<'object'>, event: ServerErrorEvent<'object'>): void {
        expect(event.connection?.id).type.toBe<number | undefined>()
      }

      join (room: string): void {
        this.rooms.set(room, (this.rooms.get(room) ?? 0) + 1)
      }
    }
    expect(new Chat()).type.toBeAssignableTo<WSSHandler<'object'>>()
    expect(new Chat()).type.not.toBeAssignableTo<WSSHandler<'text'>>()
  })

  test('a handler of one data type fits the options of any data type', () => {
    expect<WSSHandler<'blob'>>().type.toBeAssignableTo<WSSHandler<DataType>>()
    expect<WSSHandler<'object'>>().type.toBeAssignableTo<WSSHandler<DataType>>()
  })
})

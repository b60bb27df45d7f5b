import Fastify, { type FastifyServerOptions } from 'fastify'
import ajvFormats from 'ajv-formats'
import t, { type Test } from 'tap'
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod'
import { z } from 'zod'
import wssPlugin, { ErrCode, type WebSocketConnection, type WssErrorEntry, type WssPluginOptions } from '../lib/index.js'
import { closed, connect, listen, messages } from './helpers/index.js'
import { until } from './helpers/until.js'

type Connection = WebSocketConnection<any, any>

/** The chat protocol of the examples: a union on `type`, as chat protocols are written. */
const chatMessage = {
  oneOf: [
    {
      type: 'object',
      properties: { type: { const: 'join' }, name: { type: 'string', minLength: 1, maxLength: 20 } },
      required: ['type', 'name'],
      additionalProperties: false
    },
    {
      type: 'object',
      properties: { type: { const: 'say' }, text: { type: 'string', minLength: 1, maxLength: 500 } },
      required: ['type', 'text'],
      additionalProperties: false
    }
  ]
}

const chatSend = {
  type: 'object',
  properties: { type: { type: 'string' }, from: { type: 'string' }, text: { type: 'string' } },
  required: ['type']
}

interface Served {
  base: string
  received: unknown[]
  errors: WssErrorEntry[]
  /** The open connections, in order. */
  connections: Connection[]
}

/**
 * An object server on `/s` with the given options, collecting what onMessage
 * receives and what onError reports; `reply` answers each message.
 */
async function serve (t: Test, options: Partial<WssPluginOptions<any>>, fastifyOptions: FastifyServerOptions = {}, setup?: (app: ReturnType<typeof Fastify>) => void, reply?: (ws: Connection, data: unknown) => void): Promise<Served> {
  const received: unknown[] = []
  const errors: WssErrorEntry[] = []
  const connections: Connection[] = []
  const app = Fastify(fastifyOptions)
  t.teardown(() => app.close())
  setup?.(app)
  await app.register(wssPlugin, {
    path: '/s',
    dataType: 'object',
    ...options,
    handler: {
      onConnection: () => ({
        onOpen (ws: Connection) { connections.push(ws) },
        onMessage (ws: Connection, event: { data: unknown }) {
          received.push(event.data)
          reply?.(ws, event.data)
        },
        onError (_ws: Connection, event: { errors: WssErrorEntry[] }) { errors.push(...event.errors) }
      })
    }
  })
  const base = await listen(app)
  return { base: `${base}/s`, received, errors, connections }
}

t.test('schema.message: a matching message is delivered; one that does not is reported with 301 naming each failing path, and later messages flow', async (t) => {
  const schema = {
    type: 'object',
    properties: { items: { type: 'array', items: { type: 'object', properties: { id: { type: 'integer' } }, required: ['id'] } }, name: { type: 'string', maxLength: 3 } },
    required: ['items']
  }
  const { base, received, errors } = await serve(t, { schema: { message: schema } }, { ajv: { customOptions: { allErrors: true } } })
  const client = await connect(t, base)
  client.send(JSON.stringify({ items: [{ id: 1 }] }))
  client.send(JSON.stringify({ items: [{ id: 'x' }], name: 'toolong' }))
  client.send(JSON.stringify({ items: [] }))
  await until(() => received.length === 2 && errors.length === 1, 'two messages and one report')
  t.same(received, [{ items: [{ id: 1 }] }, { items: [] }], 'the invalid message was not delivered, the next one was')
  t.equal(errors[0].errCode, ErrCode.INVALID_MESSAGE)
  t.equal(errors[0].error?.name, 'FastifyError')
  t.equal((errors[0].error as { code?: string }).code, 'FST_WSS_INVALID_MESSAGE')
  t.match(errors[0].message, 'The message does not match schema.message:')
  t.match(errors[0].message, '/items/0/id must be integer')
  t.match(errors[0].message, '/name must NOT have more than 3 characters')
  t.equal((errors[0].error as { validation?: unknown[] }).validation?.length, 2, 'the failures are on the error too')
  t.equal(client.readyState, client.OPEN, 'the connection stays open')
})

t.test('schema.message: a oneOf union on type, as chat protocols use, takes each kind and refuses the others', async (t) => {
  const { base, received, errors } = await serve(t, { schema: { message: chatMessage } })
  const client = await connect(t, base)
  client.send(JSON.stringify({ type: 'join', name: 'ann' }))
  client.send(JSON.stringify({ type: 'say', text: 'hi' }))
  client.send(JSON.stringify({ type: 'say', name: 'ann' }))
  client.send(JSON.stringify({ type: 'shout', text: 'HI' }))
  client.send(JSON.stringify({ type: 'join', name: '' }))
  await until(() => received.length === 2 && errors.length === 3, 'two messages and three reports')
  t.same(received, [{ type: 'join', name: 'ann' }, { type: 'say', text: 'hi' }])
  t.same(errors.map((e) => e.errCode), [301, 301, 301])
  t.match(errors[2].message, '/name must NOT have fewer than 1 characters')
})

t.test("schema.message is compiled with the app's Ajv: its plugins (ajv-formats), custom keywords and shared schemas apply", async (t) => {
  const even = (ajv: any): any => ajv.addKeyword({ keyword: 'even', type: 'number', validate: (_schema: unknown, value: number) => value % 2 === 0 })
  const { base, received, errors } = await serve(t, {
    schema: { message: { $ref: 'signup#' } }
  }, { ajv: { plugins: [ajvFormats, even] } }, (app) => {
    app.addSchema({
      $id: 'signup',
      type: 'object',
      properties: { email: { type: 'string', format: 'email' }, seats: { type: 'number', even: true } },
      required: ['email', 'seats']
    })
  })
  const client = await connect(t, base)
  client.send(JSON.stringify({ email: 'ann@example.com', seats: 2 }))
  client.send(JSON.stringify({ email: 'not an email', seats: 2 }))
  client.send(JSON.stringify({ email: 'bob@example.com', seats: 3 }))
  await until(() => received.length === 1 && errors.length === 2, 'one message and two reports')
  t.same(received, [{ email: 'ann@example.com', seats: 2 }])
  t.match(errors[0].message, '/email must match format "email"')
  t.match(errors[1].message, '/seats must pass "even" keyword validation')
})

t.test('registered in a child context, the schemas are compiled in that context: its shared schemas apply', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const received: unknown[] = []
  const errors: WssErrorEntry[] = []
  await app.register(async (child) => {
    child.addSchema({ $id: 'point', type: 'object', properties: { x: { type: 'number' } }, required: ['x'] })
    await child.register(wssPlugin, {
      path: '/s',
      dataType: 'object',
      schema: { message: { $ref: 'point#' } },
      handler: {
        onConnection: () => ({
          onMessage (_ws, event) { received.push(event.data) },
          onError (_ws, event) { errors.push(...event.errors) }
        })
      }
    })
  })
  const client = await connect(t, `${await listen(app)}/s`)
  client.send('{"y":1}')
  client.send('{"x":1}')
  await until(() => received.length === 1 && errors.length === 1, 'one message and one report')
  t.same(received, [{ x: 1 }])
  t.match(errors[0].message, "must have required property 'x'")
})

t.test("with invalidMessage: 'close', a message that does not match is reported, then the connection is closed with 1008", async (t) => {
  const { base, received, errors } = await serve(t, { schema: { message: chatMessage }, invalidMessage: 'close' })
  const client = await connect(t, base)
  const closing = closed(client)
  client.send(JSON.stringify({ type: 'say', text: 'hi' }))
  client.send(JSON.stringify({ type: 'say' }))
  t.equal((await closing).code, 1008)
  t.same(received, [{ type: 'say', text: 'hi' }])
  t.same(errors.map((e) => e.errCode), [ErrCode.INVALID_MESSAGE])
})

t.test("with invalidMessage: 'close', invalid JSON closes the connection with 1008 too, without any schema", async (t) => {
  const { base, errors } = await serve(t, { invalidMessage: 'close' })
  const client = await connect(t, base)
  const closing = closed(client)
  client.send('{not json')
  t.equal((await closing).code, 1008)
  t.same(errors.map((e) => e.errCode), [ErrCode.INVALID_JSON])
})

t.test('schema.send: send, broadcast and publish of objects go through the serializer compiler; strings and bytes as they are', async (t) => {
  const { base, connections } = await serve(t, { schema: { send: chatSend } }, {}, undefined, (ws, data) => {
    if ((data as { type: string }).type === 'broadcast') ws.wss.broadcast({ type: 'news', text: 'all', secret: 'no' })
    else if ((data as { type: string }).type === 'publish') ws.wss.publish('room', { type: 'room', from: 'ann', extra: 1 })
    else ws.send({ type: 'echo', text: 'x', password: 'hidden' })
  })
  const client = await connect(t, base)
  await until(() => connections.length === 1, 'the connection opens')
  connections[0].subscribe('room')
  client.send(JSON.stringify({ type: 'send' }))
  client.send(JSON.stringify({ type: 'broadcast' }))
  client.send(JSON.stringify({ type: 'publish' }))
  t.same((await messages(client, 3)).map((text) => JSON.parse(text)), [
    { type: 'echo', text: 'x' },
    { type: 'news', text: 'all' },
    { type: 'room', from: 'ann' }
  ], 'properties the schema does not name are left out, as Fastify does for replies')
  connections[0].send('plain')
  connections[0].send(Buffer.from([1, 2]))
  const [text, bytes] = await messages(client, 2)
  t.equal(text, '"plain"', 'a string is JSON-encoded, as under dataType object without a schema')
  t.same([...Buffer.from(bytes, 'latin1')], [1, 2])
})

t.test('schema.send: an object the serializer cannot encode throws a coded TypeError at the call, and nothing is sent', async (t) => {
  const { base, connections } = await serve(t, { schema: { send: chatSend } })
  const client = await connect(t, base)
  await until(() => connections.length === 1, 'the connection opens')
  const ws = connections[0]
  t.ok((() => { try { ws.send({ text: 'no type' }) } catch (err) { return err instanceof TypeError } })(), 'a TypeError')
  t.throws(() => ws.send({ text: 'no type' }), { code: 'FST_WSS_NOT_SERIALIZABLE', message: /"type" is required/ })
  t.throws(() => ws.wss.broadcast({ text: 'no type' }), { code: 'FST_WSS_NOT_SERIALIZABLE' })
  t.throws(() => ws.wss.publish('room', { text: 'no type' }), { code: 'FST_WSS_NOT_SERIALIZABLE' })
  ws.send({ type: 'after' })
  t.same(await messages(client, 1), ['{"type":"after"}'])
})

t.test("a Zod type provider's compilers are used as they are, for schema.message and schema.send", async (t) => {
  const { base, received, errors } = await serve(t, {
    schema: {
      message: z.object({ type: z.literal('say'), text: z.string().min(1) }),
      send: z.object({ type: z.string(), text: z.string() })
    }
  }, {}, (app) => {
    app.setValidatorCompiler(validatorCompiler)
    app.setSerializerCompiler(serializerCompiler)
  }, (ws, data) => ws.send({ type: 'echo', text: (data as { text: string }).text }))
  const client = await connect(t, base)
  client.send(JSON.stringify({ type: 'say', text: '' }))
  client.send(JSON.stringify({ type: 'say', text: 'hi' }))
  t.same(await messages(client, 1), ['{"type":"echo","text":"hi"}'])
  t.same(received, [{ type: 'say', text: 'hi' }])
  t.equal(errors.length, 1)
  t.equal(errors[0].errCode, ErrCode.INVALID_MESSAGE)
  t.match(errors[0].message, 'The message does not match schema.message:')
})

t.test("a custom validator's answers are read as Fastify reads them: { value } replaces the message, { error } and a Promise refuse it, nothing lets it through", async (t) => {
  const { base, received, errors } = await serve(t, { schema: { message: { custom: true } } }, {}, (app) => {
    app.setValidatorCompiler(() => (data: any) => {
      if (data.kind === 'value') return { value: { replaced: true } }
      if (data.kind === 'error') return { error: new Error('kind must not be error') }
      if (data.kind === 'string') return { error: 'a plain reason' }
      if (data.kind === 'async') return Promise.resolve(true)
      if (data.kind === 'throw') throw new Error('the validator threw')
      return undefined
    })
  })
  const client = await connect(t, base)
  for (const kind of ['value', 'error', 'string', 'async', 'throw', 'plain']) client.send(JSON.stringify({ kind }))
  await until(() => received.length === 2 && errors.length === 4, 'two messages and four reports')
  t.same(received, [{ replaced: true }, { kind: 'plain' }])
  t.same(errors.map((e) => e.errCode), [301, 301, 301, 301])
  t.match(errors[0].message, 'kind must not be error')
  t.match(errors[1].message, 'a plain reason')
  t.match(errors[2].message, 'asynchronous')
  t.equal(errors[3].message, 'the validator threw')
})

t.test('a schema that does not compile fails app.ready() with a coded error naming schema.message or schema.send', async (t) => {
  for (const key of ['message', 'send'] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(wssPlugin, {
      path: '/s',
      dataType: 'object',
      schema: { [key]: { type: 'no such type' } },
      handler: { onConnection: () => ({ onMessage () {} }) }
    })
    await t.rejects(app.ready(), { code: 'FST_WSS_INVALID_OPTION', message: new RegExp(`option "schema.${key}" does not compile`) })
  }
})

t.test('the schema and invalidMessage options are checked at register', async (t) => {
  const handler = { onConnection: () => ({ onMessage () {} }) }
  const cases: Array<[Partial<WssPluginOptions<any>>, RegExp]> = [
    [{ schema: { message: {} } }, /option "schema" needs dataType 'object', got "text"/],
    [{ dataType: 'object', schema: null as any }, /option "schema" must be an object/],
    [{ dataType: 'object', schema: { body: {} } as any }, /option "schema.body" is not a schema of messages/],
    [{ invalidMessage: 'drop' as any }, /option "invalidMessage" must be "report" or "close", got "drop"/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(wssPlugin, { path: '/s', handler, ...options }) }, { code: 'FST_WSS_INVALID_OPTION', message })
  }
})

t.test('a message that does not match is logged at warn like other client errors when no onError takes it', async (t) => {
  const lines: Array<{ level: number, errCode?: number }> = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  t.teardown(() => app.close())
  await app.register(wssPlugin, {
    path: '/s',
    dataType: 'object',
    schema: { message: chatMessage },
    handler: { onConnection: () => ({ onMessage () {} }) }
  })
  const client = await connect(t, `${await listen(app)}/s`)
  client.send('{"type":"nope"}')
  await until(() => lines.some((line) => line.errCode === 301), 'the warn line')
  t.equal(lines.find((line) => line.errCode === 301)?.level, 40)
})

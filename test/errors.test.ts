import t from 'tap'
import { WebSocketConnection, componentSignature } from '../lib/index.js'
import { closed, connect, deferred, messages, start } from './helpers/index.js'
import { captureLog } from './helpers/log.js'

type How = 'throw' | 'reject'
type Callback = 'onOpen' | 'onMessage' | 'onTerminate'

const errCodes: Record<Callback, number> = { onOpen: 200, onMessage: 201, onTerminate: 202 }

/** A callback that throws, or returns a rejected Promise, with `error`. */
function failing (how: How, error: unknown): () => unknown {
  return how === 'throw'
    ? () => { throw error }
    : async () => { throw error }
}

/**
 * A connection handler whose `callback` fails with `error`; every other
 * message is echoed. Make it fail with `trigger()` on the client.
 */
function failingHandler (callback: Callback, how: How, error: unknown): Record<string, any> {
  const handler: Record<string, any> = {
    onMessage (ws: any, event: any) { ws.send(`echo:${event.data}`) }
  }
  handler[callback] = failing(how, error)
  return handler
}

/** Makes the failing callback run: onOpen ran at connect, onMessage needs a message, onTerminate a close. */
function trigger (client: import('ws').WebSocket, callback: Callback): void {
  if (callback === 'onMessage') client.send('fail')
  if (callback === 'onTerminate') client.close()
}

for (const callback of ['onOpen', 'onMessage', 'onTerminate'] as const) {
  for (const how of ['throw', 'reject'] as const) {
    const errCode = errCodes[callback]

    t.test(`a ${how} in a connection ${callback} reaches the connection handler's onError with errCode ${errCode}`, async (t) => {
      const thrown = new Error(`${callback} broke`)
      const got = deferred<{ self: unknown, args: any[] }>()
      let serverErrors = 0
      const handler = failingHandler(callback, how, thrown)
      handler.onError = function (...args: any[]) { got.resolve({ self: this, args }) }
      const { base } = await start(t, {
        handler: {
          onConnection () { return handler as any },
          onError () { serverErrors++ }
        }
      })
      const client = await connect(t, base)
      trigger(client, callback)

      const { self, args } = await got.promise
      t.equal(self, handler, '`this` is the connection handler')
      t.type(args[0], WebSocketConnection)
      t.equal(args[0].handler, handler)
      t.same(args[1], {
        type: 'error',
        errors: [{ errCode, message: `${callback} broke`, componentSignature: 'fastify-wss', error: thrown }]
      })
      t.equal(args[1].errors[0].error, thrown, 'the error is the one thrown')
      t.equal(serverErrors, 0, 'the server onError is not called')
    })

    t.test(`a ${how} in a connection ${callback} without a connection onError reaches the server handler's onError with the connection`, async (t) => {
      const thrown = new Error(`${callback} broke`)
      const got = deferred<{ self: unknown, args: any[] }>()
      const serverHandler = {
        onConnection () { return failingHandler(callback, how, thrown) as any },
        onError (...args: any[]) { got.resolve({ self: this, args }) }
      }
      const { app, base } = await start(t, { handler: serverHandler })
      const client = await connect(t, base)
      const [connection] = app.wss.connections
      trigger(client, callback)

      const { self, args } = await got.promise
      t.equal(self, serverHandler, '`this` is the server handler')
      t.equal(args[0], app.wss)
      t.same(args[1], {
        type: 'error',
        errors: [{ errCode, message: `${callback} broke`, componentSignature, error: thrown }],
        connection
      })
      t.equal(args[1].connection, connection, 'connection is the WebSocketConnection')
      t.equal(args[1].errors[0].error, thrown)
    })

    t.test(`a ${how} in a connection ${callback} without any onError is logged through fastify.log.error`, async (t) => {
      const log = captureLog()
      const thrown = new Error(`${callback} broke, ${how}`)
      const { base } = await start(t, {
        handler: { onConnection () { return failingHandler(callback, how, thrown) as any } }
      }, { logger: { level: 'error', stream: log.stream } })
      const client = await connect(t, base)
      trigger(client, callback)

      const line = await log.next((line) => line.errCode === errCode)
      t.equal(line.level, 50, 'at level error')
      t.match(line.msg, `${callback} broke, ${how}`)
      t.equal(line.err.message, `${callback} broke, ${how}`)
      t.type(line.connectionId, 'number')
    })
  }
}

for (const where of ['connection', 'server'] as const) {
  for (const how of ['throw', 'reject'] as const) {
    t.test(`a ${how} inside a ${where} handler's onError is logged and goes no further`, async (t) => {
      const log = captureLog()
      const reached = deferred()
      let serverErrors = 0
      const connectionHandler: Record<string, any> = {
        onMessage (ws: any, event: any) {
          if (event.data === 'fail') throw new Error('onMessage broke')
          ws.send(`echo:${event.data}`)
        }
      }
      const serverHandler: Record<string, any> = {
        onConnection () { return connectionHandler },
        onError () { serverErrors++ }
      }
      const target = where === 'connection' ? connectionHandler : serverHandler
      const broken = failing(how, new Error(`${where} onError broke`))
      target.onError = function (...args: unknown[]) {
        if (where === 'server') serverErrors++
        reached.resolve()
        return broken.apply(this, args as [])
      }
      const { app, base } = await start(t, { handler: serverHandler as any }, { logger: { level: 'error', stream: log.stream } })
      const client = await connect(t, base)
      client.send('fail')
      await reached.promise

      const line = await log.next((line) => line.err?.message === `${where} onError broke`)
      t.equal(line.level, 50)
      t.match(line.msg, 'an onError callback failed')
      t.equal(serverErrors, where === 'server' ? 1 : 0, 'no other onError is called')

      client.send('again')
      t.same(await messages(client, 1), ['echo:again'], 'the connection still works')
      t.equal(app.wss.connections.length, 1)
      t.equal(app.wss.terminated, false)
      t.equal(log.lines.filter((line) => line.err?.message === `${where} onError broke`).length, 1, 'logged once')
    })
  }
}

for (const how of ['throw', 'reject'] as const) {
  t.test(`a ${how} in the server handler's onOpen reaches the server onError with errCode 110 and no connection`, async (t) => {
    const thrown = new Error('server onOpen broke')
    const calls: Array<{ self: unknown, args: any[] }> = []
    const handler = {
      onConnection () { return { onMessage (ws: any, e: any) { ws.send(e.data) } } },
      onOpen: failing(how, thrown),
      onError (...args: any[]) { calls.push({ self: this, args }) }
    }
    const { app, base } = await start(t, { handler })
    t.equal(calls.length, 1)
    t.equal(calls[0].self, handler)
    t.equal(calls[0].args[0], app.wss)
    t.same(calls[0].args[1], {
      type: 'error',
      errors: [{ errCode: 110, message: 'server onOpen broke', componentSignature, error: thrown }]
    })
    t.notOk('connection' in calls[0].args[1], 'no connection field')

    const client = await connect(t, base)
    client.send('still open')
    t.same(await messages(client, 1), ['still open'], 'the server still accepts connections')
  })

  t.test(`a ${how} in the server handler's onTerminate reaches the server onError with errCode 111 and no connection`, async (t) => {
    const thrown = new Error('server onTerminate broke')
    const calls: Array<{ self: unknown, args: any[] }> = []
    const handler = {
      onConnection () { return { onMessage () {} } },
      onTerminate: failing(how, thrown),
      onError (...args: any[]) { calls.push({ self: this, args }) }
    }
    const { app, base } = await start(t, { handler })
    const client = await connect(t, base)
    const clientClosed = closed(client)
    await app.wss.terminate()
    t.equal((await clientClosed).code, 1001)
    t.equal(calls.length, 1)
    t.equal(calls[0].self, handler)
    t.equal(calls[0].args[0], app.wss)
    t.same(calls[0].args[1], {
      type: 'error',
      errors: [{ errCode: 111, message: 'server onTerminate broke', componentSignature, error: thrown }]
    })
    t.notOk('connection' in calls[0].args[1], 'no connection field')
  })
}

t.test('a server onOpen error without a server onError is logged through fastify.log.error', async (t) => {
  const log = captureLog()
  await start(t, {
    handler: {
      onConnection () { return { onMessage () {} } },
      onOpen () { throw new Error('server onOpen broke') }
    }
  }, { logger: { level: 'error', stream: log.stream } })
  const line = await log.next((line) => line.errCode === 110)
  t.equal(line.level, 50)
  t.match(line.msg, 'server onOpen broke')
  t.equal(line.connectionId, undefined, 'no connection')
})

for (const [kind, value, message] of [
  ['a string', 'plain words', 'plain words'],
  ['an object', { reason: 'not an Error' }, '[object Object]'],
  ['a number', 42, '42']
] as const) {
  t.test(`${kind} thrown by a callback becomes an Error whose message is its string form`, async (t) => {
    const got = deferred<any>()
    const { base } = await start(t, {
      handler: {
        onConnection () {
          return {
            onMessage () { throw value },
            onError (_ws: unknown, event: any) { got.resolve(event) }
          }
        }
      }
    })
    const client = await connect(t, base)
    client.send('x')
    const event = await got.promise
    const [entry] = event.errors
    t.type(entry.error, Error)
    t.equal(entry.error.message, message)
    t.equal(entry.message, message)
    t.equal(entry.errCode, 201)
    t.equal(entry.componentSignature, 'fastify-wss')
  })
}

t.test('no callback error closes the server: while one connection onMessage throws on every message, another connection gets its replies', async (t) => {
  let errors = 0
  const allFailed = deferred()
  const { app, base } = await start(t, {
    handler: {
      onConnection (_wss: unknown, event: any) {
        const failing = event.request.query.fail === '1'
        return {
          onMessage (ws: any, e: any) {
            if (failing) throw new Error('always broken')
            ws.send(`echo:${e.data}`)
          },
          onError () { if (++errors === 6) allFailed.resolve() }
        }
      }
    }
  })
  const broken = await connect(t, `${base}/?fail=1`)
  const healthy = await connect(t, base)
  for (let i = 0; i < 5; i++) {
    broken.send(`bad ${i}`)
    healthy.send(`good ${i}`)
    t.same(await messages(healthy, 1), [`echo:good ${i}`])
  }
  broken.send('last')
  await allFailed.promise
  t.equal(errors, 6)
  t.equal(app.wss.terminated, false)
  t.equal(app.wss.connections.length, 2, 'both connections are still open')
  t.equal(broken.readyState, broken.OPEN)
})

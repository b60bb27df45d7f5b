// A load generator process, driven by bench/run.js over IPC.
//   node bench/client.js <variant> <port>
// Commands ({ id, cmd, ... }):
//   connect { n, batch }        open n connections, batch at a time
//   echo { inflight, payload }  each connection keeps `inflight` messages in flight
//   mark                        messages echoed and their latencies since the last mark
//   stop                        stop sending; replies once nothing is in flight
//   expect { count }            replies when every connection has received count messages
//   exit
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { io } from 'socket.io-client'

const [variant, port] = process.argv.slice(2)
const now = () => performance.now()

/** A connection, the same shape for every variant: send(string | object), onMessage(fn). */
function open (variant) {
  return new Promise((resolve, reject) => {
    if (variant === 'socket.io') {
      const socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], forceNew: true, reconnection: false })
      socket.once('connect', () => resolve({
        send: (message) => socket.send(message),
        onMessage: (fn) => socket.on('message', fn),
        close: () => socket.disconnect()
      }))
      socket.once('connect_error', reject)
      return
    }
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false })
    ws.once('open', () => resolve({
      send: (message) => ws.send(message),
      onMessage: (fn) => ws.on('message', fn),
      close: () => ws.terminate()
    }))
    ws.once('error', reject)
  })
}

const connections = []
let running = false
let count = 0
let latencies = []
let markedAt = now()
let whenIdle
let expected = 0
let whenReceived

async function connect (n, batch) {
  const start = now()
  for (let done = 0; done < n; done += batch) {
    const opened = await Promise.all(Array.from({ length: Math.min(batch, n - done) }, () => open(variant)))
    for (const connection of opened) {
      connection.sentAt = []
      connection.received = 0
      connection.onMessage(() => onMessage(connection))
      connections.push(connection)
    }
  }
  return now() - start
}

function onMessage (connection) {
  connection.received++
  if (whenReceived !== undefined && connection.received === expected && ++whenReceived.done === connections.length) {
    whenReceived.resolve()
  }
  const sentAt = connection.sentAt.shift()
  if (sentAt === undefined) return
  const t = now()
  count++
  latencies.push(t - sentAt)
  if (running) {
    connection.sentAt.push(t)
    connection.send(connection.payload)
  } else if (connection.sentAt.length === 0 && whenIdle !== undefined && connections.every((c) => c.sentAt.length === 0)) {
    whenIdle()
  }
}

function echo (inflight, payload) {
  running = true
  for (const connection of connections) {
    connection.payload = payload
    for (let i = 0; i < inflight; i++) {
      connection.sentAt.push(now())
      connection.send(payload)
    }
  }
}

function mark () {
  const t = now()
  const result = { count, ms: t - markedAt, latencies: Float64Array.from(latencies) }
  count = 0
  latencies = []
  markedAt = t
  return result
}

function stop () {
  running = false
  if (connections.every((c) => c.sentAt.length === 0)) return Promise.resolve()
  return new Promise((resolve) => { whenIdle = resolve })
}

function expect (n) {
  expected = n
  for (const connection of connections) connection.received = 0
  return new Promise((resolve) => { whenReceived = { done: 0, resolve } })
}

process.on('message', async (message) => {
  const { id, cmd } = message
  switch (cmd) {
    case 'connect':
      process.send({ id, ms: await connect(message.n, message.batch) })
      break
    case 'echo':
      echo(message.inflight, message.payload)
      process.send({ id })
      break
    case 'mark':
      process.send({ id, ...mark() })
      break
    case 'stop':
      await stop()
      process.send({ id })
      break
    case 'expect':
      // Answers at once that it is armed, then again when everything has arrived.
      process.send({ id, armed: true })
      await expect(message.count)
      process.send({ id: `${id}:done` })
      break
    case 'exit':
      for (const connection of connections) connection.close()
      process.exit(0)
  }
})
process.on('disconnect', () => process.exit(0))
process.send({ ready: true })

// Loads the built package (dist/) by its name, as a user would, from a
// separate node process: once with require() and once with import.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('..', import.meta.url))

type Test = typeof t

interface Result {
  resolved: string
  redisResolved: string
  redisAdapter: string
  defaultIsWssPlugin: boolean
  exports: Record<string, string>
  invalidJsonCode: number
  wssIsWebSocketServer: boolean
  reply: string
  closeCode: number
  connectionsAfterClose: number
}

// Shared by both children: `mod` is the package's exports, `plugin` what is
// given to app.register, `resolved` the file the package name resolved to.
const check = `
async function check (mod, plugin, resolved, redis, Fastify, WebSocket, once) {
  const app = Fastify()
  await app.register(plugin, {
    path: '/upper',
    handler: {
      onConnection () {
        return { onMessage (ws, event) { ws.send(event.data.toUpperCase()) } }
      }
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const ws = new WebSocket('ws://127.0.0.1:' + app.server.address().port + '/upper')
  await once(ws, 'open')
  const message = once(ws, 'message')
  ws.send('hi')
  const [reply] = await message
  ws.close(1000)
  const [closeCode] = await once(ws, 'close')
  await app.close()
  const exports = {}
  for (const name of ['default', 'wssPlugin', 'WebSocketServer', 'WebSocketConnection', 'ErrCode', 'WssInvalidOptionError']) {
    exports[name] = typeof mod[name]
  }
  return {
    resolved,
    redisResolved: redis.resolved,
    redisAdapter: typeof redis.mod.redisAdapter,
    defaultIsWssPlugin: mod.default === mod.wssPlugin,
    exports,
    invalidJsonCode: mod.ErrCode.INVALID_JSON,
    wssIsWebSocketServer: app.wss instanceof mod.WebSocketServer,
    reply: reply.toString(),
    closeCode,
    connectionsAfterClose: app.wss.connections.length
  }
}
const print = (result) => console.log(JSON.stringify(result))
// an error while the server listens would keep the process alive
const fail = (err) => { console.error(err); process.exit(1) }
`

const commonjs = `${check}
const { once } = require('node:events')
const Fastify = require('fastify')
const WebSocket = require('ws')
const mod = require('fastify-wss')
const redis = { mod: require('fastify-wss/redis'), resolved: require.resolve('fastify-wss/redis') }
// the module object itself: Fastify takes its .default
check(mod, mod, require.resolve('fastify-wss'), redis, Fastify, WebSocket, once).then(print, fail)
`

const esm = `${check}
import { once } from 'node:events'
import Fastify from 'fastify'
import WebSocket from 'ws'
import * as mod from 'fastify-wss'
import wssPlugin from 'fastify-wss'
import * as redisMod from 'fastify-wss/redis'
const redis = { mod: redisMod, resolved: import.meta.resolve('fastify-wss/redis') }
check(mod, wssPlugin, import.meta.resolve('fastify-wss'), redis, Fastify, WebSocket, once).then(print, fail)
`

/** Runs a script with node in the repository, without the coverage and loaders of the test run. */
async function node (args: string[]): Promise<Result> {
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  delete env.NODE_V8_COVERAGE
  // tap follows child processes itself: this keeps the built files (mapped back to lib/) out of the coverage of lib
  env._TAPJS_PROCESSINFO_COVERAGE_ = '0'
  return await new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd: root, env, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${err.message}\n${stderr}`))
      else resolve(JSON.parse(stdout) as Result)
    })
  })
}

function built (t: Test): boolean {
  const missing = ['dist/cjs/index.js', 'dist/cjs/package.json', 'dist/esm/index.js', 'dist/cjs/adapters/redis.js', 'dist/esm/adapters/redis.js'].filter((file) => !existsSync(join(root, file)))
  if (missing.length === 0) return true
  t.fail(`${missing.join(', ')} missing: run npm run build first`)
  return false
}

const exportTypes = {
  default: 'function',
  wssPlugin: 'function',
  WebSocketServer: 'function',
  WebSocketConnection: 'function',
  ErrCode: 'object',
  WssInvalidOptionError: 'function'
}

t.test('require("fastify-wss") and require("fastify-wss/redis") load the CommonJS build, and the module object registers and answers in uppercase', async (t) => {
  if (!built(t)) return
  const result = await node(['-e', commonjs])
  t.equal(result.resolved, join(root, 'dist', 'cjs', 'index.js'))
  t.equal(result.redisResolved, join(root, 'dist', 'cjs', 'adapters', 'redis.js'))
  t.equal(result.redisAdapter, 'function', 'fastify-wss/redis exports redisAdapter')
  t.equal(result.defaultIsWssPlugin, true, 'default and wssPlugin are the same function')
  t.same(result.exports, exportTypes)
  t.equal(result.invalidJsonCode, 300)
  t.equal(result.wssIsWebSocketServer, true, 'app.wss is an instance of the exported WebSocketServer')
  t.equal(result.reply, 'HI')
  t.equal(result.closeCode, 1000)
  t.equal(result.connectionsAfterClose, 0)
})

t.test('import from "fastify-wss" and "fastify-wss/redis" loads the ESM build, and the default export registers and answers in uppercase', async (t) => {
  if (!built(t)) return
  const result = await node(['--input-type=module', '-e', esm])
  t.equal(result.resolved, pathToFileURL(join(root, 'dist', 'esm', 'index.js')).href)
  t.equal(result.redisResolved, pathToFileURL(join(root, 'dist', 'esm', 'adapters', 'redis.js')).href)
  t.equal(result.redisAdapter, 'function', 'fastify-wss/redis exports redisAdapter')
  t.equal(result.defaultIsWssPlugin, true, 'default and wssPlugin are the same function')
  t.same(result.exports, exportTypes)
  t.equal(result.invalidJsonCode, 300)
  t.equal(result.wssIsWebSocketServer, true, 'app.wss is an instance of the exported WebSocketServer')
  t.equal(result.reply, 'HI')
  t.equal(result.closeCode, 1000)
  t.equal(result.connectionsAfterClose, 0)
})

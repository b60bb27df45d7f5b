// Scale-out benchmark: three nodes sharing Redis, publishing across nodes,
// fastify-wss beside socket.io with the adapter of the same kind, side by side
// in one run.
//   npm run bench:cluster        (builds, then runs this file with the defaults)
//   SECONDS=2 CLIENTS=30 ROUNDS=1 node bench/scale.js          a smoke run
//   SETUPS=pubsub,sio-redis node bench/scale.js                 some setups
//
// Setups (SETUPS, comma-separated keys; all by default):
//   pubsub       fastify-wss, redisAdapter({ url })
//   durable      fastify-wss, redisAdapter({ url, durable: { maxLen: 10000 } })
//   sio-redis    socket.io, @socket.io/redis-adapter
//   sio-streams  socket.io, @socket.io/redis-streams-adapter (maxLen 10000)
//   cluster-1    fastify-wss, redisAdapter({ cluster }) on a Redis Cluster of 1 shard
//   cluster-3    the same on 3 shards
// A setup whose adapter option this build does not have (the adapter throws,
// the server fails to start, or `durable` is accepted but writes no Redis
// stream) is reported as "not available", and the run goes on.
//
// Environment: SECONDS (measured window of each phase, 5), CLIENTS (300,
// spread evenly over the three nodes), TOPICS (6), BATCH (messages per
// throughput round, 96), WARMUP (seconds before each window, 1), ROUNDS (3;
// the setups alternate, each round starting with the next one), SIZE (64).
//
// It starts its own redis-servers (a standalone one, and Redis Clusters of 1
// and 3 masters, from redis-server and redis-cli on the PATH, Redis 7) on free
// loopback ports with their files in a temporary directory, and stops every
// process it started by its PID. Each node is a child process
// (bench/scale-node.js); the clients, all in this process, connect with
// ?topic=<topic>: client i of a node subscribes to topic i mod TOPICS, so that
// every topic has subscribers on every node. Topic names are picked so that
// their fastify-wss channels fall evenly on the shards of the 3-shard cluster.
//
// A message is "<kind><node> <seq> <µs> <pad>": the publishing node stamps it
// with process.hrtime (CLOCK_MONOTONIC, shared by the processes of a machine),
// and a client records its arrival. Per setup, after every client has received
// a message from every node:
//   latency     one message at a time, the publishing node taking turns; the
//               next once every subscriber has the previous one
//   throughput  rounds of BATCH messages, a third published by each node at
//               once, over the topics in turn; the next round once every
//               subscriber has all of them
// The compared figure is the nodes' CPU time (the sum of their
// process.cpuUsage(), asked over IPC before and after the throughput window,
// so the clients' work is not in it) per delivery, and its inverse,
// deliveries per server CPU second; Redis's CPU (INFO cpu) is given beside it.
//
// Writes bench/scale-results.json and bench/scale-results.md (the tables) and
// bench/scale-chart.svg; a run with the default settings also writes
// docs/scale-chart.svg.
import { execFileSync, fork } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { io } from 'socket.io-client'
import WebSocket from 'ws'
import { keySlot, startRedis, startRedisCluster } from './redis-servers.js'
import { renderScaleChart, renderScaleMarkdown } from './scale-report.js'

const here = (file) => fileURLToPath(new URL(file, import.meta.url))
const NODES = 3
const MAX_LEN = 10_000

// ---------------------------------------------------------------- settings

const defaults = { SECONDS: 5, CLIENTS: 300, TOPICS: 6, BATCH: 96, WARMUP: 1, ROUNDS: 3, SIZE: 64 }
const limits = { SECONDS: 600, CLIENTS: 10_000, TOPICS: 1000, BATCH: 10_000, WARMUP: 60, ROUNDS: 20, SIZE: 1 << 20 }
const settings = {}
for (const [name, value] of Object.entries(defaults)) {
  const raw = process.env[name]
  const number = raw === undefined ? value : Number(raw)
  if (!(number > 0 && number <= limits[name])) {
    console.error(`${name}=${raw}: a number above 0, at most ${limits[name]}`)
    process.exit(1)
  }
  settings[name] = number
}
const perNode = Math.ceil(settings.CLIENTS / NODES)
const notes = []
if (settings.TOPICS > perNode) {
  notes.push(`${settings.TOPICS} topics for ${perNode} clients per node: ${perNode} topics instead, so that every topic has subscribers on every node`)
  settings.TOPICS = perNode
}
const fdLimit = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim().replace('unlimited', 'Infinity'))
if (perNode * NODES + 200 > fdLimit) {
  console.error(`CLIENTS=${settings.CLIENTS} needs more file descriptors than ulimit -n (${fdLimit}) allows`)
  process.exit(1)
}

const SETUPS = [
  { key: 'pubsub', name: 'fastify-wss Pub/Sub', server: 'fastify-wss', redis: 'standalone', options: {} },
  { key: 'durable', name: 'fastify-wss durable', server: 'fastify-wss', redis: 'standalone', options: { durable: { maxLen: MAX_LEN } }, streams: true },
  { key: 'sio-redis', name: 'socket.io + @socket.io/redis-adapter', server: 'socket.io', redis: 'standalone', adapter: 'redis-adapter' },
  { key: 'sio-streams', name: 'socket.io + @socket.io/redis-streams-adapter', server: 'socket.io', redis: 'standalone', adapter: 'redis-streams-adapter' },
  { key: 'cluster-1', name: 'fastify-wss, Redis Cluster, 1 shard', server: 'fastify-wss', redis: 'cluster', shards: 1, options: {} },
  { key: 'cluster-3', name: 'fastify-wss, Redis Cluster, 3 shards', server: 'fastify-wss', redis: 'cluster', shards: 3, options: {} }
]
/** fastify-wss against socket.io with the adapter of the same kind: deliveries per server CPU second. */
const COMPARISONS = [
  { name: 'Pub/Sub', ours: 'pubsub', theirs: 'sio-redis', target: 2 },
  { name: 'durable / Streams', ours: 'durable', theirs: 'sio-streams', target: 2 }
]
const SHARDS = { one: 'cluster-1', three: 'cluster-3' }

const selected = process.env.SETUPS ? process.env.SETUPS.split(',').map((key) => key.trim()) : SETUPS.map((s) => s.key)
for (const key of selected) {
  if (!SETUPS.some((s) => s.key === key)) {
    console.error(`unknown setup ${key}; one of ${SETUPS.map((s) => s.key).join(', ')}`)
    process.exit(1)
  }
}
const setups = SETUPS.filter((s) => selected.includes(s.key))

// ---------------------------------------------------------------- processes

/** Everything started, stopped by PID even when the run fails or is interrupted. */
const started = new Set()
const dir = mkdtempSync(join(os.tmpdir(), 'fastify-wss-scale-'))
process.on('exit', () => {
  for (const proc of started) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  }
  rmSync(dir, { recursive: true, force: true })
})
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => process.exit(130))

function track (procs) {
  for (const proc of procs) {
    started.add(proc)
    proc.once('exit', () => started.delete(proc))
  }
}

/** A node process; `ready` resolves with { port } or { error }. */
function startNode (config) {
  const proc = fork(here('scale-node.js'), [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  track([proc])
  const waiting = new Map()
  let lastId = 0
  const node = { proc, errors: [] }
  let answered = false
  node.ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('a node did not start within 30 s')), 30_000)
    proc.on('message', (message) => {
      if (message.runtimeError !== undefined) {
        node.errors.push(message.runtimeError)
      } else if (message.id !== undefined) {
        waiting.get(message.id)?.resolve(message)
        waiting.delete(message.id)
      } else if (!answered) {
        answered = true
        clearTimeout(timer)
        resolve(message)
      }
    })
    proc.once('exit', (code, signal) => {
      clearTimeout(timer)
      const error = new Error(`a node exited (${code ?? signal})`)
      if (!answered) reject(error)
      for (const { reject } of waiting.values()) reject(error)
      waiting.clear()
    })
  })
  node.cpu = () => new Promise((resolve, reject) => {
    const id = ++lastId
    waiting.set(id, { resolve: ({ cpu }) => resolve((cpu.user + cpu.system) / 1e6), reject })
    proc.send({ id, cmd: 'cpu' })
  })
  node.publish = (kind, seq, topics) => proc.send({ cmd: 'publish', kind, seq, topics })
  node.stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise((resolve) => proc.once('exit', resolve))
    try { proc.send({ cmd: 'exit' }) } catch {}
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
  return node
}

/** One client: resolves with its close function once connected. */
function connect (server, port, topic, onText) {
  return new Promise((resolve, reject) => {
    if (server === 'socket.io') {
      const socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], query: { topic }, forceNew: true, reconnection: false, timeout: 10_000 })
      socket.on('m', onText)
      socket.once('connect', () => resolve(() => socket.disconnect()))
      socket.once('connect_error', reject)
    } else {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/?topic=${encodeURIComponent(topic)}`, { perMessageDeflate: false, handshakeTimeout: 10_000 })
      ws.on('message', (data) => onText(data.toString()))
      ws.on('error', reject) // after the opening, a node that exits shows as a stalled round
      ws.once('open', () => resolve(() => ws.terminate()))
    }
  })
}

/** process.hrtime in whole µs, as the nodes stamp their messages. */
function micros () {
  const [s, ns] = process.hrtime()
  return s * 1e6 + Math.floor(ns / 1e3)
}

// ---------------------------------------------------------------- one setup, one round

const redis = {}
let topics = []

/** The admin connections of the Redis server(s) a setup uses. */
const adminsOf = (setup) => setup.redis === 'cluster' ? redis[`cluster${setup.shards}`].admins : redis.standalone.admins

async function redisCpu (setup) {
  const infos = await Promise.all(adminsOf(setup).map((admin) => admin.info('cpu')))
  return infos.reduce((sum, info) => sum + Number(info.match(/used_cpu_sys:([\d.]+)/)[1]) + Number(info.match(/used_cpu_user:([\d.]+)/)[1]), 0)
}

/** Whether any key of type stream exists (SCAN, bounded). */
async function hasStream (admin) {
  let cursor = '0'
  for (let i = 0; i < 1000; i++) {
    const [next, keys] = await admin.scan(cursor, 'TYPE', 'stream', 'COUNT', 1000)
    if (keys.length > 0) return true
    cursor = next
    if (cursor === '0') return false
  }
  return false
}

async function measure (setup) {
  await Promise.all(adminsOf(setup).map((admin) => admin.flushall()))
  const base = { server: setup.server, size: settings.SIZE }
  const config = setup.server === 'socket.io'
    ? { ...base, url: redis.standalone.url, adapter: setup.adapter, maxLen: MAX_LEN }
    : setup.redis === 'cluster'
      ? { ...base, cluster: redis[`cluster${setup.shards}`].nodes, options: setup.options }
      : { ...base, url: redis.standalone.url, options: setup.options }
  const nodes = Array.from({ length: NODES }, (_, index) => startNode({ ...config, index }))
  const closers = []
  let watchdog
  try {
    const answers = await Promise.all(nodes.map((node) => node.ready))
    const refused = answers.find((answer) => answer.error !== undefined)
    if (refused) return { unavailable: refused.error }

    // clients: client i of each node subscribes to topic i mod TOPICS
    let received = 0 // every message
    let arrivals = 0 // measured messages
    let expected = 0
    let recording = false
    let latencies = []
    let pending
    const clients = []
    const subscribers = new Array(topics.length).fill(0)
    for (const { port } of answers) {
      for (let first = 0; first < perNode; first += 50) {
        const batch = []
        for (let i = first; i < Math.min(perNode, first + 50); i++) {
          const client = { seen: 0 }
          const t = i % topics.length
          subscribers[t]++
          clients.push(client)
          batch.push(connect(setup.server, port, topics[t], (text) => {
            received++
            if (text.charCodeAt(0) === 112) { // 'p': a probe, from node <digit>
              client.seen |= 1 << (text.charCodeAt(1) - 48)
              return
            }
            arrivals++
            if (recording) {
              const a = text.indexOf(' ')
              const b = text.indexOf(' ', a + 1)
              latencies.push(micros() - Number(text.slice(b + 1, text.indexOf(' ', b + 1))))
            }
            if (pending !== undefined && arrivals >= expected) {
              const { resolve } = pending
              pending = undefined
              resolve()
            }
          }))
        }
        closers.push(...await Promise.all(batch))
      }
    }

    /** Resolves once `received` has not moved for 300 ms (at most 10 s). */
    const quiet = async () => {
      for (let i = 0; i < 33; i++) {
        const before = received
        await sleep(300)
        if (received === before) return
      }
    }

    // every client has a message from every node: the subscriptions are in place across the nodes
    const all = (1 << NODES) - 1
    const deadline = Date.now() + 30_000
    while (!clients.every((c) => c.seen === all)) {
      if (Date.now() > deadline) throw new Error('not every client received a message from every node within 30 s')
      for (const node of nodes) node.publish('p', 0, topics)
      await sleep(100)
    }
    await quiet()

    const checks = {}
    if (setup.streams && !await hasStream(redis.standalone.admins[0])) {
      return { unavailable: 'redisAdapter accepted the durable option but wrote no Redis stream: this build carries messages over Pub/Sub only' }
    }
    if (setup.redis === 'cluster') {
      checks.shardChannels = await Promise.all(adminsOf(setup).map(async (admin) => (await admin.call('PUBSUB', 'SHARDCHANNELS')).length))
    }

    // a round stalls when no measured message arrives for 10 s
    let lastArrivals = -1
    let stalledSince = Date.now()
    watchdog = setInterval(() => {
      if (pending === undefined || arrivals !== lastArrivals) {
        lastArrivals = arrivals
        stalledSince = Date.now()
      } else if (Date.now() - stalledSince > 10_000) {
        const { reject } = pending
        pending = undefined
        reject(new Error(`deliveries stopped: ${expected - arrivals} missing for 10 s`))
      }
    }, 500)

    let seq = 0
    let nextTopic = 0
    /** Publishes `count` messages from each listed node; resolves once every subscriber has them. */
    const round = (plan) => {
      for (const [n, count] of plan) {
        const list = []
        for (let i = 0; i < count; i++) {
          const t = nextTopic++ % topics.length
          list.push(topics[t])
          expected += subscribers[t]
        }
        nodes[n].publish('m', seq, list)
        seq += count
      }
      if (arrivals >= expected) return
      return new Promise((resolve, reject) => { pending = { resolve, reject } })
    }
    const phase = async (plan, seconds) => {
      const end = performance.now() + seconds * 1000
      for (let r = 0; performance.now() < end; r++) await round(plan(r))
    }
    const cpuOfNodes = async () => (await Promise.all(nodes.map((node) => node.cpu()))).reduce((a, b) => a + b, 0)
    const window = async (plan) => {
      await phase(plan, settings.WARMUP)
      const [cpu0, redis0] = await Promise.all([cpuOfNodes(), redisCpu(setup)])
      latencies = []
      recording = true
      const from = arrivals
      const start = performance.now()
      await phase(plan, settings.SECONDS)
      const seconds = (performance.now() - start) / 1000
      recording = false
      const [cpu1, redis1] = await Promise.all([cpuOfNodes(), redisCpu(setup)])
      const deliveries = arrivals - from
      const sorted = Float64Array.from(latencies).sort()
      const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] / 1000
      return { deliveries, seconds, cpu: cpu1 - cpu0, redisCpu: redis1 - redis0, p50: at(0.5), p99: at(0.99) }
    }

    const third = Math.max(1, Math.round(settings.BATCH / NODES))
    const latency = await window((r) => [[r % NODES, 1]])
    const loaded = await window(() => Array.from({ length: NODES }, (_, n) => [n, third]))
    await quiet()
    if (arrivals !== expected) notes.push(`${setup.name}: ${arrivals - expected} deliveries more than published to the subscribers`)
    const errors = nodes.flatMap((node) => node.errors)
    if (errors.length) notes.push(`${setup.name}: ${errors.length} onError report(s) in the nodes, the first: ${errors[0]}`)
    return {
      rate: loaded.deliveries / loaded.seconds,
      cost: loaded.cpu / loaded.deliveries * 1e6,
      perCpuSecond: loaded.deliveries / loaded.cpu,
      redisCost: loaded.redisCpu / loaded.deliveries * 1e6,
      p50: latency.p50,
      p99: latency.p99,
      loadedP50: loaded.p50,
      loadedP99: loaded.p99,
      deliveries: loaded.deliveries,
      cpuSeconds: loaded.cpu,
      ...checks
    }
  } finally {
    clearInterval(watchdog)
    for (const close of closers) close()
    await Promise.all(nodes.map((node) => node.stop()))
  }
}

// ---------------------------------------------------------------- statistics

function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

function summarize (samples) {
  const fields = ['rate', 'cost', 'perCpuSecond', 'redisCost', 'p50', 'p99', 'loadedP50', 'loadedP99']
  return setups.map((setup) => {
    const runs = samples.filter((s) => s.key === setup.key)
    const unavailable = runs.find((r) => r.unavailable !== undefined)
    const measured = runs.filter((r) => r.unavailable === undefined && r.failed === undefined)
    const row = { key: setup.key, name: setup.name, rounds: measured.length }
    if (unavailable) row.unavailable = unavailable.unavailable
    else if (measured.length === 0) row.failed = runs[0]?.failed ?? 'not run'
    for (const field of fields) {
      const values = measured.map((r) => r[field]).filter((v) => Number.isFinite(v))
      if (values.length) row[field] = { median: median(values), min: Math.min(...values), max: Math.max(...values) }
    }
    const channels = measured.find((r) => r.shardChannels)?.shardChannels
    if (channels) row.shardChannels = channels
    return row
  })
}

function compare (rows) {
  const value = (key, field) => rows.find((r) => r.key === key && r.unavailable === undefined)?.[field]?.median
  const comparisons = COMPARISONS
    .filter(({ ours, theirs }) => selected.includes(ours) && selected.includes(theirs))
    .map((c) => {
      const ours = value(c.ours, 'perCpuSecond')
      const theirs = value(c.theirs, 'perCpuSecond')
      const ratio = ours !== undefined && theirs !== undefined ? ours / theirs : undefined
      return { ...c, oursValue: ours, theirsValue: theirs, ratio, met: ratio === undefined ? undefined : ratio >= c.target }
    })
  let shards
  if (selected.includes(SHARDS.one) && selected.includes(SHARDS.three)) {
    const figure = (field) => {
      const one = value(SHARDS.one, field)
      const three = value(SHARDS.three, field)
      return { one, three, ratio: one !== undefined && three !== undefined ? three / one : undefined }
    }
    shards = { rate: figure('rate'), cost: figure('cost'), redisCost: figure('redisCost'), loadedP99: figure('loadedP99') }
  }
  return { comparisons, shards }
}

// ---------------------------------------------------------------- main

function versionOf (name) {
  try {
    return createRequire(import.meta.url)(`${name}/package.json`).version
  } catch {
    return '?'
  }
}

const runStarted = performance.now()
const machine = {
  cpus: os.availableParallelism(),
  cpu: os.cpus()[0]?.model,
  memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
  node: process.version,
  platform: `${os.type()} ${os.release()}`,
  loadBefore: os.loadavg().map((l) => l.toFixed(2)).join(' '),
  versions: Object.fromEntries(['fastify', 'ws', 'ioredis', 'socket.io', 'socket.io-client', '@socket.io/redis-adapter', '@socket.io/redis-streams-adapter']
    .map((name) => [name, versionOf(name)]))
}

if (setups.some((s) => s.redis === 'standalone')) {
  redis.standalone = await startRedis(dir)
  track(redis.standalone.procs)
}
for (const shards of new Set(setups.filter((s) => s.redis === 'cluster').map((s) => s.shards))) {
  redis[`cluster${shards}`] = await startRedisCluster(shards, dir)
  track(redis[`cluster${shards}`].procs)
}
machine.redis = redis.standalone?.version ?? (await Object.values(redis)[0].admins[0].info('server')).match(/redis_version:(\S+)/)[1]

// Topic names whose fastify-wss channels ("fastify-wss:/#topic:<name>") fall
// evenly on the shards of a 3-shard cluster: in the cluster's own slot map
// when it runs, else in the map redis-cli would make.
{
  const shardOf = redis.cluster3?.shardOf ?? ((slot) => Math.min(2, Math.floor(slot / (16384 / 3))))
  const each = Math.ceil(settings.TOPICS / 3)
  const taken = [0, 0, 0]
  for (let k = 0; topics.length < settings.TOPICS; k++) {
    const name = `room-${k}`
    const shard = shardOf(keySlot(`fastify-wss:/#topic:${name}`))
    if (taken[shard] < each) {
      taken[shard]++
      topics.push(name)
    }
  }
  topics = topics.sort()
}

console.log(`${machine.cpus} × ${machine.cpu}, Node.js ${machine.node}, Redis ${machine.redis}, load ${machine.loadBefore}`)
console.log(`${perNode * NODES} clients (${perNode} per node), ${topics.length} topics, ${settings.SIZE}-byte pad, ` +
  `${settings.SECONDS} s per window after ${settings.WARMUP} s of warm-up, ${settings.ROUNDS} round(s); setups: ${selected.join(', ')}\n`)

const samples = []
for (let round = 0; round < settings.ROUNDS; round++) {
  const order = setups.map((_, i) => setups[(i + round) % setups.length])
  for (const setup of order) {
    if (samples.some((s) => s.key === setup.key && s.unavailable !== undefined)) continue
    const label = `  round ${round + 1} ${setup.name.padEnd(44)}`
    try {
      const result = await measure(setup)
      samples.push({ key: setup.key, round, ...result })
      if (result.unavailable !== undefined) {
        console.log(`${label} not available: ${result.unavailable}`)
      } else {
        console.log(`${label} ${Math.round(result.rate).toLocaleString('en-US').padStart(9)} deliveries/s  ${result.cost.toFixed(2).padStart(6)} µs server CPU per delivery  ` +
          `p50 ${result.p50.toFixed(2)} ms  p99 ${result.p99.toFixed(2)} ms`)
      }
    } catch (err) {
      samples.push({ key: setup.key, round, failed: err.message })
      notes.push(`${setup.name}, round ${round + 1}: ${err.message}`)
      console.error(`${label} FAILED: ${err.message}`)
    }
  }
}

for (const server of Object.values(redis)) await server.stop()
machine.loadAfter = os.loadavg().map((l) => l.toFixed(2)).join(' ')

const rows = summarize(samples)
const defaultRun = setups.length === SETUPS.length && Object.entries(defaults).every(([name, value]) => settings[name] === value)
const results = {
  date: new Date().toISOString(),
  command: defaultRun
    ? 'npm run bench:cluster'
    : `${Object.entries(settings).filter(([name, value]) => value !== defaults[name]).map(([name, value]) => `${name}=${value} `).join('')}` +
      `${process.env.SETUPS ? `SETUPS=${selected.join(',')} ` : ''}node bench/scale.js`,
  settings: { ...settings, nodes: NODES, clients: perNode * NODES, topics },
  machine,
  seconds: Math.round((performance.now() - runStarted) / 1000),
  rows,
  ...compare(rows),
  notes,
  samples
}
const markdown = renderScaleMarkdown(results)
console.log('\n' + markdown)
writeFileSync(here('scale-results.json'), JSON.stringify(results, null, 2) + '\n')
writeFileSync(here('scale-results.md'), markdown)
const svg = renderScaleChart(results)
writeFileSync(here('scale-chart.svg'), svg)
if (defaultRun) {
  mkdirSync(here('../docs'), { recursive: true })
  writeFileSync(here('../docs/scale-chart.svg'), svg)
}
console.log(`bench/scale-results.json, bench/scale-results.md, bench/scale-chart.svg${defaultRun ? ', docs/scale-chart.svg' : ''} written (${results.seconds} s)`)

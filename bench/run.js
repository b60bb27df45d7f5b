// Throughput, latency and memory of fastify-wss beside raw ws, @fastify/websocket
// and socket.io. Each server runs in its own process, driven by load-generator
// processes on 127.0.0.1; variants alternate over ROUNDS rounds.
//
//   npm run bench                    every scenario (build first)
//   node bench/run.js echo memory    some scenarios: echo, broadcast, memory, object, nobufferutil
//
// Environment: ROUNDS (5), DURATION (measured window of an echo, ms, 3000),
// WARMUP (ms, 300), VARIANTS (comma-separated subset), PROFILE=1 (the V8
// profiler records each server's measured windows into bench/profiles/).
//
// The compared figure is the server process's CPU time (user + system, from
// process.cpuUsage() read before and after each measured window) per
// operation: per message echoed, per message delivered, per handshake; and
// the server's RSS per idle connection.
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { buildBaseline } from './baseline.js'
import { child } from './ipc.js'
import { renderChart, renderMarkdown } from './report.js'

const here = (file) => fileURLToPath(new URL(file, import.meta.url))
const ROUNDS = Number(process.env.ROUNDS ?? 5)
const DURATION = Number(process.env.DURATION ?? 3000)
const WARMUP = Number(process.env.WARMUP ?? 300)
const PROFILE = process.env.PROFILE === '1'
const allVariants = ['fastify-wss', 'ws', '@fastify/websocket', 'socket.io']
// BASELINE=<commit>: fastify-wss as built from that commit runs beside the working tree
const BASELINE = process.env.BASELINE
const variants = process.env.VARIANTS
  ? process.env.VARIANTS.split(',')
  : BASELINE ? ['fastify-wss', 'fastify-wss (baseline)', 'ws'] : allVariants
const notes = []

const TEXT = 'x'.repeat(64)
const OBJECT = { id: 12345, user: 'alice', text: 'hello, world', tags: ['a', 'b'], n: 1 }
const OBJECT_JSON = JSON.stringify(OBJECT)

// ---------------------------------------------------------------- processes

const fdLimit = readFdLimit()
let raiseFdLimitTo = 0

function readFdLimit () {
  const read = (flag) => {
    const value = execFileSync('sh', ['-c', `ulimit ${flag} -n`], { encoding: 'utf8' }).trim()
    return value === 'unlimited' ? Infinity : Number(value)
  }
  return { soft: read('-S'), hard: read('-H') }
}

/** The connections a process may hold: raises the soft limit of the children when needed, else reduces with a note. */
function fitConnections (wanted, what) {
  const need = wanted + 200
  if (fdLimit.soft >= need) return wanted
  if (fdLimit.hard >= need) {
    raiseFdLimitTo = Math.max(raiseFdLimitTo, need)
    return wanted
  }
  const fitted = Math.max(100, Math.floor(fdLimit.hard - 200))
  notes.push(`${what}: ${fitted} connections instead of ${wanted} (ulimit -n is ${fdLimit.hard})`)
  return fitted
}

async function startServer (variant, dataType, env) {
  const execArgv = ['--expose-gc']
  if (PROFILE) {
    mkdirSync(here('profiles'), { recursive: true })
    env = { ...process.env, ...env, PROFILE_DIR: here('profiles') }
  }
  const server = child(here('server.js'), [variant, dataType], { env, execArgv, raiseFdLimitTo })
  const { port } = await server.ready
  return { server, port }
}

async function startClients (variant, port, count, env) {
  const clients = Array.from({ length: count }, () => child(here('client.js'), [variant, String(port)], { env, raiseFdLimitTo }))
  await Promise.all(clients.map((c) => c.ready))
  return clients
}

/** Opens `total` connections spread over the load generators; resolves with the wall time. */
async function connectAll (clients, total, batch) {
  const start = performance.now()
  await Promise.all(clients.map((c, i) => {
    const n = Math.floor(total / clients.length) + (i < total % clients.length ? 1 : 0)
    return c.request({ cmd: 'connect', n, batch }, 300_000)
  }))
  return performance.now() - start
}

const cpuTime = ({ cpu }) => cpu.user + cpu.system

// ---------------------------------------------------------------- scenarios

/** Echo windows: each connection keeps `inflight` messages in flight; messages/s, latency, server CPU per message. */
async function echoWindows (variant, { dataType, modes, payload, env }) {
  const { server, port } = await startServer(variant, dataType, env)
  const clients = await startClients(variant, port, 1, env)
  try {
    await connectAll(clients, 100, 50)
    const results = []
    for (const [name, inflight] of modes) {
      await Promise.all(clients.map((c) => c.request({ cmd: 'echo', inflight, payload })))
      await sleep(WARMUP)
      const [cpu0] = await Promise.all([server.request({ cmd: 'cpu' }), ...clients.map((c) => c.request({ cmd: 'mark' }))])
      await sleep(DURATION)
      const [cpu1, ...marks] = await Promise.all([server.request({ cmd: 'cpu' }), ...clients.map((c) => c.request({ cmd: 'mark' }))])
      await Promise.all(clients.map((c) => c.request({ cmd: 'stop' })))
      const ops = marks.reduce((sum, m) => sum + m.count, 0)
      const seconds = Math.max(...marks.map((m) => m.ms)) / 1000
      const latencies = Float64Array.from(marks.flatMap((m) => Array.from(m.latencies))).sort()
      results.push({
        name,
        ops,
        rate: ops / seconds,
        cost: (cpuTime(cpu1) - cpuTime(cpu0)) / ops,
        p50: percentile(latencies, 0.5),
        p99: percentile(latencies, 0.99)
      })
    }
    return results
  } finally {
    await Promise.all([...clients, server].map((c) => c.stop()))
  }
}

/** 2,000 clients; one trigger sends 100 messages of 64 bytes to all: time until all delivered, server CPU per delivery. */
async function broadcast (variant, { name = 'broadcast', env } = {}) {
  const total = fitConnections(2000, 'broadcast')
  const { server, port } = await startServer(variant, 'text', env)
  const clients = await startClients(variant, port, 2, env)
  try {
    await connectAll(clients, total, 100)
    const trigger = async (count) => {
      const armed = await Promise.all(clients.map((c) => c.request({ cmd: 'expect', count })))
      const done = armed.map((a, i) => clients[i].wait(`${a.id}:done`, 120_000))
      const cpu0 = await server.request({ cmd: 'cpu' })
      const start = performance.now()
      await server.request({ cmd: 'broadcast', count, size: 64 })
      await Promise.all(done)
      const ms = performance.now() - start
      const cpu1 = await server.request({ cmd: 'cpu' })
      return { ms, cpu: cpuTime(cpu1) - cpuTime(cpu0) }
    }
    await trigger(5) // warm-up
    const { ms, cpu } = await trigger(100)
    const ops = total * 100
    return [{ name, ops, rate: ops / (ms / 1000), cost: cpu / ops, ms }]
  } finally {
    await Promise.all([...clients, server].map((c) => c.stop()))
  }
}

/** 5,000 idle connections: server RSS per connection (after GC) and handshakes/s with server CPU per handshake. */
async function memory (variant) {
  const total = fitConnections(5000, 'memory')
  const { server, port } = await startServer(variant, 'text')
  const clients = await startClients(variant, port, 4)
  try {
    const before = await server.request({ cmd: 'rss' })
    const cpu0 = await server.request({ cmd: 'cpu' })
    const ms = await connectAll(clients, total, 50)
    const cpu1 = await server.request({ cmd: 'cpu' })
    await sleep(500)
    const after = await server.request({ cmd: 'rss' })
    return [
      { name: 'handshake', ops: total, rate: total / (ms / 1000), cost: (cpuTime(cpu1) - cpuTime(cpu0)) / total },
      {
        name: 'memory',
        ops: total,
        cost: (after.rss - before.rss) / total,
        heap: (after.heapUsed - before.heapUsed) / total,
        external: (after.external - before.external) / total
      }
    ]
  } finally {
    await Promise.all([...clients, server].map((c) => c.stop()))
  }
}

const noBufferutil = { WS_NO_BUFFER_UTIL: '1' }
const noBufferutilVariants = ['fastify-wss', 'ws']

const scenarios = {
  echo: (variant) => echoWindows(variant, {
    dataType: 'text',
    payload: TEXT,
    modes: [['echo ping-pong', 1], ['echo pipelined', 16]]
  }),
  broadcast: (variant) => broadcast(variant),
  memory,
  object: async (variant) => [
    ...await echoWindows(variant, {
      dataType: 'object',
      payload: variant === 'socket.io' ? OBJECT : OBJECT_JSON,
      modes: [['object echo', 16]]
    }),
    // fastify-wss with schema.message and schema.send, against the others' object echo without any validation
    ...variant !== 'fastify-wss'
      ? []
      : await echoWindows(variant, {
        dataType: 'object',
        payload: OBJECT_JSON,
        modes: [['validated object echo', 16]],
        env: { BENCH_SCHEMA: '1' }
      })
  ],
  // ws without its native bufferutil (WS_NO_BUFFER_UTIL=1, servers and clients),
  // for fastify-wss and raw ws: compare with echo pipelined and broadcast
  nobufferutil: async (variant) => {
    if (!noBufferutilVariants.includes(variant)) return []
    return [
      ...await echoWindows(variant, {
        dataType: 'text',
        payload: TEXT,
        modes: [['echo pipelined, no bufferutil', 16]],
        env: noBufferutil
      }),
      ...await broadcast(variant, { name: 'broadcast, no bufferutil', env: noBufferutil })
    ]
  }
}

// ---------------------------------------------------------------- statistics

function percentile (sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** A row measured on fastify-wss only, compared with raw ws in another row. */
const baseRows = { 'validated object echo': 'object echo' }

function summarize (samples) {
  const fields = ['rate', 'cost', 'p50', 'p99', 'ms', 'heap', 'external']
  const rows = []
  for (const name of [...new Set(samples.map((s) => s.name))]) {
    const byVariant = {}
    for (const variant of variants) {
      const runs = samples.filter((s) => s.name === name && s.variant === variant)
      if (runs.length === 0) continue
      const stats = { rounds: runs.length }
      for (const field of fields) {
        const values = runs.map((r) => r[field]).filter((v) => typeof v === 'number' && !Number.isNaN(v))
        if (values.length) stats[field] = { median: median(values), min: Math.min(...values), max: Math.max(...values) }
      }
      byVariant[variant] = stats
    }
    const base = (name in baseRows ? rows.find((row) => row.name === baseRows[name]) : { variants: byVariant })?.variants.ws?.cost?.median
    for (const stats of Object.values(byVariant)) {
      if (base !== undefined && stats.cost) stats.ratio = stats.cost.median / base
    }
    rows.push({ name, variants: byVariant })
  }
  return rows
}

/** The targets, as ratios of fastify-wss's server cost to another variant's, measured in this run. */
const targets = [
  { name: 'echo pipelined', against: 'ws', max: 1.05 },
  { name: 'broadcast', against: 'ws', max: 0.5 },
  { name: 'broadcast', against: 'socket.io', max: 0.7 },
  { name: 'object echo', against: 'ws', max: 1.05 },
  { name: 'validated object echo', against: 'ws', max: 1.0 },
  { name: 'handshake', against: 'ws', max: 1.25 },
  { name: 'memory', against: 'ws', max: 1.25 }
]

function checkTargets (rows) {
  const checked = []
  for (const target of targets) {
    const row = rows.find((r) => r.name === target.name)
    const ours = row?.variants['fastify-wss']?.cost?.median
    const theirs = rows.find((r) => r.name === (baseRows[target.name] ?? target.name))?.variants[target.against]?.cost?.median
    if (ours === undefined || theirs === undefined) continue
    const ratio = ours / theirs
    checked.push({ ...target, ratio, met: ratio <= target.max })
  }
  return checked
}

// ---------------------------------------------------------------- main

const names = process.argv.slice(2)
const selected = names.length ? names : Object.keys(scenarios)
for (const name of selected) {
  if (!(name in scenarios)) {
    console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}`)
    process.exit(1)
  }
}

const machine = {
  cpus: os.availableParallelism(),
  cpu: os.cpus()[0]?.model,
  memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
  node: process.version,
  platform: `${os.type()} ${os.release()}`,
  fdLimit: fdLimit.soft,
  loadBefore: os.loadavg().map((l) => l.toFixed(2)).join(' ')
}
console.log(`${machine.cpus} × ${machine.cpu}, ${machine.memory}, Node ${machine.node}, load ${machine.loadBefore}`)
console.log(`scenarios: ${selected.join(', ')}; variants: ${variants.join(', ')}; ${ROUNDS} rounds\n`)

if (BASELINE) {
  buildBaseline(BASELINE)
  machine.baseline = execFileSync('git', ['rev-parse', '--short', BASELINE], { encoding: 'utf8' }).trim()
  console.log(`baseline: fastify-wss at ${machine.baseline}, built into bench/baseline/dist`)
}

const started = performance.now()
const samples = []
for (const name of selected) {
  for (let round = 0; round < ROUNDS; round++) {
    // alternate: each round starts with the next variant
    const order = variants.map((_, i) => variants[(i + round) % variants.length])
    for (const variant of order) {
      try {
        // one retry: a server that fails to start (say, while dist/ is being rebuilt) gets a second chance
        const results = await scenarios[name](variant).catch(async (err) => {
          console.error(`  round ${round + 1} ${name} ${variant}: ${err.message}; retrying`)
          await sleep(2000)
          return scenarios[name](variant)
        })
        for (const result of results) {
          samples.push({ ...result, variant, round })
          const rate = result.rate === undefined ? '' : ` ${Math.round(result.rate)}/s`
          const unit = result.name === 'memory' ? 'bytes/conn' : 'µs CPU/op'
          console.log(`  round ${round + 1} ${result.name.padEnd(32)} ${variant.padEnd(18)}${rate} ${result.cost.toFixed(2)} ${unit}`)
        }
      } catch (err) {
        notes.push(`${name}, ${variant}, round ${round + 1}: ${err.message}`)
        console.error(`  round ${round + 1} ${name} ${variant}: FAILED ${err.message}`)
      }
    }
  }
}

machine.loadAfter = os.loadavg().map((l) => l.toFixed(2)).join(' ')
const rows = summarize(samples)
const results = {
  date: new Date().toISOString(),
  command: `${BASELINE ? `BASELINE=${BASELINE} ` : ''}ROUNDS=${ROUNDS} node bench/run.js${names.length ? ' ' + names.join(' ') : ''}`,
  settings: { rounds: ROUNDS, duration: DURATION, warmup: WARMUP },
  machine,
  seconds: Math.round((performance.now() - started) / 1000),
  rows,
  targets: checkTargets(rows),
  notes,
  samples
}
const markdown = renderMarkdown(results)
console.log('\n' + markdown)
writeFileSync(here('results.json'), JSON.stringify(results, null, 2) + '\n')
writeFileSync(here('results.md'), markdown)
const svg = renderChart(results)
writeFileSync(here('chart.svg'), svg)
if (names.length === 0 && !process.env.VARIANTS && !BASELINE) {
  mkdirSync(here('../docs'), { recursive: true })
  writeFileSync(here('../docs/bench-chart.svg'), svg)
}
console.log(`bench/results.json, bench/results.md, bench/chart.svg written (${results.seconds} s)`)

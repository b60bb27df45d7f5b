// Deploy benchmark: node A closes, its clients reconnect to node B.
//   npm run bench:deploy                 (builds, then runs this file)
//   CLIENTS=2000 SPREAD=0,5000,10000 VARIANTS=fastify-wss,ws node bench/deploy.js
//
// For each setup, node A and node B (the same kind of server, each in its own
// process, on 127.0.0.1) start; CLIENTS WebSocket connections, spread over
// LOADGENS load-generator processes, open on A. Then A closes (`app.close()`
// for the Fastify servers, for raw ws a close with 1001 of each client then
// `wss.close()`), and each client, once its connection to A is closed,
// reconnects to B with the backoff of example/chat/index.html: 250 ms,
// 500 ms, 1 s, ... up to 10 s, times a jitter in [0.8, 1.2), the first try
// after 250 ms. A failed try (an error or an unexpected HTTP response before
// the 101) counts as a failed handshake and waits for the next step.
//
// Measured on B from just before A's close until every client is back
// (or the hard timeout, 60 s + spread): the event-loop delay
// (perf_hooks.monitorEventLoopDelay, resolution 10 ms: max and p99), the CPU
// time of the process (process.cpuUsage: in all, on average, and the busiest
// 100 ms). At the clients: the failed handshakes, the time from A's close
// until the last client is back on B, and each client's reconnect time (from
// its connection to A closed to its connection to B open), p50 and p99.
// Times across processes come from process.hrtime (CLOCK_MONOTONIC, shared by
// the processes of one machine). Beside them, the machine's count of
// connections dropped by a full accept queue (ListenOverflows in
// /proc/net/netstat, Linux) over the window. Every server listens with its
// defaults (backlog 511); the fastify-wss nodes raise Fastify's pluginTimeout
// above the drain's deadline (see runServer).
//
// Environment: CLIENTS (10000), LOADGENS (4), SPREAD (comma-separated
// `shutdown.spread` values of the fastify-wss setups, ms: 0,10000), VARIANTS
// (fastify-wss,@fastify/websocket,ws), ROUNDS (1; setups alternate, figures
// are medians with min–max).
//
// Writes bench/deploy-results.json, bench/deploy-results.md and
// bench/deploy-chart.svg; a run with the default setups and clients (any
// ROUNDS) also writes docs/deploy-chart.svg. `node bench/deploy.js render`
// writes the Markdown and the charts again from bench/deploy-results.json.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { child } from './ipc.js'

const host = '127.0.0.1'
// The backoff of example/chat/index.html.
const BACKOFF_BASE = 250
const BACKOFF_CAP = 10_000
const backoff = (attempt) => Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt) * (0.8 + Math.random() * 0.4)
/** Milliseconds on the clock shared by the processes of the machine. */
const clock = () => Number(process.hrtime.bigint()) / 1e6

const role = process.argv[2]
if (role === 'server') await runServer(process.argv[3], Number(process.argv[4]))
else if (role === 'clients') await runClients(Number(process.argv[3]), Number(process.argv[4]))
else if (role === 'render') write(JSON.parse(readFileSync(new URL('deploy-results.json', import.meta.url), 'utf8')))
else await main()

// ---------------------------------------------------------------- node A or B

/** One server, driven over IPC: start (B's window opens), close (A goes), stop (B's window ends), exit. */
async function runServer (variant, spread) {
  const servers = {
    async 'fastify-wss' () {
      const { default: Fastify } = await import('fastify')
      const { wssPlugin } = await import('fastify-wss')
      // Fastify's pluginTimeout (10 s by default) bounds the preClose hook where the drain
      // runs: app.close() would reject with AVV_ERR_READY_TIMEOUT past it (the drain goes on).
      // Raised to the drain's own deadline, spread + closeTimeout + shutdownTimeout, and more.
      const app = Fastify({ pluginTimeout: spread + 20_000 })
      await app.register(wssPlugin, {
        path: '/',
        shutdown: { spread },
        handler: { onConnection: () => ({ onMessage () {} }) }
      })
      await app.listen({ port: 0, host })
      return { port: app.server.address().port, connections: () => app.wss.stats().connections, close: () => app.close() }
    },

    async '@fastify/websocket' () {
      const { default: Fastify } = await import('fastify')
      const { default: websocket } = await import('@fastify/websocket')
      const app = Fastify()
      await app.register(websocket)
      app.get('/', { websocket: true }, (socket) => { socket.on('error', noop) })
      await app.listen({ port: 0, host })
      return { port: app.server.address().port, connections: () => app.websocketServer.clients.size, close: () => app.close() }
    },

    async ws () {
      const { WebSocketServer } = await import('ws')
      const wss = new WebSocketServer({ port: 0, host })
      wss.on('connection', (ws) => { ws.on('error', noop) })
      await new Promise((resolve) => wss.once('listening', resolve))
      return {
        port: wss.address().port,
        connections: () => wss.clients.size,
        close () {
          for (const client of wss.clients) client.close(1001)
          return new Promise((resolve) => wss.close(resolve))
        }
      }
    }
  }
  const server = await servers[variant]()
  const delay = monitorEventLoopDelay({ resolution: 10 })
  let window
  // Garbage collections during the window: the longest pause and the total.
  const gc = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      window.gcMax = Math.max(window.gcMax, entry.duration)
      window.gcTotal += entry.duration
    }
  })

  process.on('message', async ({ id, cmd }) => {
    switch (cmd) {
      case 'start': {
        delay.reset()
        delay.enable()
        const first = { t: performance.now(), cpu: process.cpuUsage() }
        window = { first, last: first, peak: 0, gcMax: 0, gcTotal: 0 }
        gc.observe({ entryTypes: ['gc'] })
        // The busiest slice of about 100 ms: CPU time over wall time between two samples.
        window.timer = setInterval(() => {
          const sample = { t: performance.now(), cpu: process.cpuUsage() }
          window.peak = Math.max(window.peak, cpuMs(window.last.cpu, sample.cpu) / (sample.t - window.last.t))
          window.last = sample
        }, 100)
        process.send({ id })
        break
      }
      case 'close': {
        process.send({ id, t: clock() })
        const error = await server.close().then(() => undefined, (err) => err.code ?? err.message)
        process.send({ id: 'closed', t: clock(), error })
        break
      }
      case 'stop': {
        delay.disable()
        gc.disconnect()
        clearInterval(window.timer)
        const end = { t: performance.now(), cpu: process.cpuUsage() }
        const cpu = cpuMs(window.first.cpu, end.cpu)
        process.send({
          id,
          delayMax: delay.max / 1e6,
          delayP99: delay.percentile(99) / 1e6,
          cpu,
          cpuAverage: cpu / (end.t - window.first.t),
          cpuPeak: Math.max(window.peak, cpuMs(window.last.cpu, end.cpu) / (end.t - window.last.t)),
          gcMax: window.gcMax,
          gcTotal: window.gcTotal,
          connections: server.connections()
        })
        break
      }
      case 'exit':
        process.exit(0)
    }
  })
  process.on('disconnect', () => process.exit(0))
  process.send({ id: 'ready', port: server.port })
}

function cpuMs (from, to) {
  return (to.user - from.user + to.system - from.system) / 1000
}

function noop () {}

// ---------------------------------------------------------------- load generator

/** Connections to A that move to B once A closes them: connect, report, exit; sends { id: 'back' } once all are on B. */
async function runClients (portA, portB) {
  const { default: WebSocket } = await import('ws')
  const clients = []
  const failures = {}
  const codes = {}
  let attempts = 0
  let back = 0
  let dropped = 0
  let stopped = false

  const openA = () => new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${host}:${portA}/`, { perMessageDeflate: false })
    ws.once('open', () => {
      ws.off('error', reject)
      ws.on('error', noop)
      resolve(ws)
    })
    ws.once('error', reject)
  })

  function leftA (client, code) {
    client.closedAt = clock()
    codes[code] = (codes[code] ?? 0) + 1
    retry(client)
  }

  function retry (client) {
    if (stopped) return
    client.timer = setTimeout(() => reconnect(client), backoff(client.attempt++))
  }

  function reconnect (client) {
    attempts++
    const ws = new WebSocket(`ws://${host}:${portB}/`, { perMessageDeflate: false })
    client.ws = ws
    let open = false
    ws.once('open', () => {
      open = true
      client.openedAt = clock()
      client.attempt = 0
      if (++back === clients.length) process.send({ id: 'back' })
    })
    ws.on('error', (err) => {
      if (open) return
      const status = /Unexpected server response: (\d+)/.exec(err.message)
      const reason = status ? `HTTP ${status[1]}` : err.code ?? err.message
      failures[reason] = (failures[reason] ?? 0) + 1
    })
    ws.once('close', () => {
      if (open) { // B closed it: not expected, counted, and the client tries again
        dropped++
        back--
        client.openedAt = undefined
      }
      retry(client)
    })
  }

  async function connect (n, batch) {
    for (let done = 0; done < n; done += batch) {
      const opened = await Promise.all(Array.from({ length: Math.min(batch, n - done) }, openA))
      for (const ws of opened) {
        const client = { ws, attempt: 0, closedAt: NaN, openedAt: undefined, timer: undefined }
        ws.once('close', (code) => leftA(client, code))
        clients.push(client)
      }
    }
  }

  process.on('message', async ({ id, cmd, n, batch }) => {
    switch (cmd) {
      case 'connect':
        await connect(n, batch)
        process.send({ id })
        break
      case 'report':
        stopped = true
        for (const client of clients) clearTimeout(client.timer)
        process.send({
          id,
          closedAt: Float64Array.from(clients, (c) => c.closedAt),
          openedAt: Float64Array.from(clients, (c) => c.openedAt ?? NaN),
          failures,
          codes,
          attempts,
          dropped
        })
        break
      case 'exit':
        stopped = true
        for (const client of clients) {
          clearTimeout(client.timer)
          try { client.ws.terminate() } catch {}
        }
        process.exit(0)
    }
  })
  process.on('disconnect', () => process.exit(0))
  process.send({ id: 'ready' })
}

// ---------------------------------------------------------------- main

async function main () {
  const CLIENTS = Number(process.env.CLIENTS ?? 10_000)
  const LOADGENS = Number(process.env.LOADGENS ?? 4)
  const SPREADS = (process.env.SPREAD ?? '0,10000').split(',').map(Number)
  const VARIANTS = (process.env.VARIANTS ?? 'fastify-wss,@fastify/websocket,ws').split(',')
  const ROUNDS = Number(process.env.ROUNDS ?? 1)
  const BATCH = 50 // handshakes in flight per load generator while connecting to A
  const defaults = ['CLIENTS', 'LOADGENS', 'SPREAD', 'VARIANTS'].every((name) => process.env[name] === undefined)

  const setups = VARIANTS.flatMap((variant) => variant === 'fastify-wss'
    ? SPREADS.map((spread) => ({ name: `fastify-wss, spread ${spread}`, variant, spread }))
    : [{ name: variant, variant, spread: 0 }])

  // A server holds CLIENTS sockets, a load generator twice its share while A's close and B's handshakes overlap.
  const need = Math.max(CLIENTS, 2 * Math.ceil(CLIENTS / LOADGENS)) + 200
  const fdLimit = { soft: ulimit('-S'), hard: ulimit('-H') }
  if (fdLimit.hard < need) {
    console.error(`${CLIENTS} clients need ${need} file descriptors per process; ulimit -n allows ${fdLimit.hard}: set CLIENTS lower`)
    process.exit(1)
  }
  const raiseTo = fdLimit.soft < need ? need : 0

  const machine = {
    cpus: os.availableParallelism(),
    cpu: os.cpus()[0]?.model,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    platform: `${os.type()} ${os.release()}`,
    fdLimit: fdLimit.soft,
    loadBefore: load()
  }
  console.log(`${machine.cpus} × ${machine.cpu}, ${machine.memory}, Node ${machine.node}, load ${machine.loadBefore}`)
  console.log(`${CLIENTS} clients over ${LOADGENS} load generators; setups: ${setups.map((s) => s.name).join('; ')}; ${ROUNDS} round(s)\n`)

  /** A child process of this file: `server ...` or `clients ...`. */
  const script = fileURLToPath(import.meta.url)
  const worker = (args) => child(script, args, { raiseFdLimitTo: raiseTo, timeout: 30_000 })

  async function run ({ variant, spread }) {
    const a = worker(['server', variant, String(spread)])
    const b = worker(['server', variant, String(spread)])
    const loadgens = []
    try {
      const [{ port: portA }, { port: portB }] = await Promise.all([a.ready, b.ready])
      loadgens.push(...Array.from({ length: LOADGENS }, () => worker(['clients', String(portA), String(portB)])))
      await Promise.all(loadgens.map((l) => l.ready))
      await Promise.all(loadgens.map((l, i) => l.request({
        cmd: 'connect',
        n: Math.floor(CLIENTS / LOADGENS) + (i < CLIENTS % LOADGENS ? 1 : 0),
        batch: BATCH
      }, 180_000)))
      await sleep(1000) // let A, B and the load generators settle

      const timeout = 60_000 + spread
      const overflows = listenOverflows()
      await b.request({ cmd: 'start' })
      const { t: closedAt } = await a.request({ cmd: 'close' })
      const allBack = await Promise.allSettled(loadgens.map((l) => l.wait('back', timeout)))
      const onB = await b.request({ cmd: 'stop' })
      const overflowed = listenOverflows() - overflows
      const reports = await Promise.all(loadgens.map((l) => l.request({ cmd: 'report' })))
      const aClosed = await a.wait('closed', 15_000).catch(() => undefined)

      const openedAt = reports.flatMap((r) => Array.from(r.openedAt))
      const reconnect = reports.flatMap((r) => Array.from(r.openedAt, (t, i) => t - r.closedAt[i])).filter(Number.isFinite).sort((x, y) => x - y)
      const back = openedAt.filter(Number.isFinite)
      const sum = (field) => reports.reduce((all, r) => {
        for (const [key, count] of Object.entries(r[field])) all[key] = (all[key] ?? 0) + count
        return all
      }, {})
      const failures = sum('failures')
      return {
        clients: CLIENTS,
        back: back.length,
        allBack: allBack.every((s) => s.status === 'fulfilled') ? Math.max(...back) - closedAt : NaN,
        reconnectP50: percentile(reconnect, 0.5),
        reconnectP99: percentile(reconnect, 0.99),
        failed: Object.values(failures).reduce((x, y) => x + y, 0),
        failures,
        attempts: reports.reduce((n, r) => n + r.attempts, 0),
        dropped: reports.reduce((n, r) => n + r.dropped, 0),
        codes: sum('codes'),
        delayMax: onB.delayMax,
        delayP99: onB.delayP99,
        cpu: onB.cpu,
        cpuAverage: onB.cpuAverage,
        cpuPeak: onB.cpuPeak,
        gcMax: onB.gcMax,
        gcTotal: onB.gcTotal,
        connectionsOnB: onB.connections,
        closeTook: aClosed === undefined ? NaN : aClosed.t - closedAt,
        closeError: aClosed?.error,
        overflowed,
        // clients off A and back on B against ms since A's close, 200 points each, for the chart
        timeline: {
          off: timeline(reports.flatMap((r) => Array.from(r.closedAt, (t) => t - closedAt)).filter(Number.isFinite)),
          back: timeline(back.map((t) => t - closedAt))
        }
      }
    } finally {
      await Promise.all([a, b, ...loadgens].map((c) => c.stop()))
    }
  }

  const started = performance.now()
  const samples = []
  const notes = []
  for (let round = 0; round < ROUNDS; round++) {
    const order = setups.map((_, i) => setups[(i + round) % setups.length])
    for (const setup of order) {
      const loadAt = load()
      try {
        const result = await run(setup)
        samples.push({ setup: setup.name, round, loadAt, ...result })
        console.log(`  round ${round + 1} ${setup.name.padEnd(26)} all back in ${fmt(result.allBack / 1000)} s,` +
          ` failed ${result.failed}, B loop delay max ${fmt(result.delayMax, 0)} ms, B CPU ${fmt(result.cpu / 1000)} s (load ${loadAt})`)
      } catch (err) {
        notes.push(`${setup.name}, round ${round + 1}: ${err.message}`)
        console.error(`  round ${round + 1} ${setup.name}: FAILED ${err.message}`)
      }
    }
  }
  machine.loadAfter = load()

  const fields = ['back', 'allBack', 'reconnectP50', 'reconnectP99', 'failed', 'delayMax', 'delayP99', 'cpu', 'cpuAverage', 'cpuPeak', 'closeTook']
  const rows = setups.map((setup) => {
    const runs = samples.filter((s) => s.setup === setup.name)
    const stats = { setup: setup.name, rounds: runs.length }
    for (const field of fields) {
      const values = runs.map((r) => r[field]).filter((v) => !Number.isNaN(v))
      if (values.length) stats[field] = { median: median(values), min: Math.min(...values), max: Math.max(...values) }
    }
    return stats
  }).filter((row) => row.rounds > 0)

  const env = ['CLIENTS', 'LOADGENS', 'SPREAD', 'VARIANTS', 'ROUNDS'].filter((name) => process.env[name] !== undefined)
  const results = {
    date: new Date().toISOString(),
    command: `${env.map((name) => `${name}=${process.env[name]} `).join('')}node bench/deploy.js`,
    defaults,
    settings: { clients: CLIENTS, loadgens: LOADGENS, spreads: SPREADS, variants: VARIANTS, rounds: ROUNDS, backoff: { base: BACKOFF_BASE, cap: BACKOFF_CAP, jitter: [0.8, 1.2] } },
    machine,
    seconds: Math.round((performance.now() - started) / 1000),
    rows,
    notes,
    samples
  }
  write(results)
}

/** The results as bench/deploy-results.{json,md}, bench/deploy-chart.svg, and docs/deploy-chart.svg for the default setups. */
function write (results) {
  const here = (file) => fileURLToPath(new URL(file, import.meta.url))
  const markdown = renderMarkdown(results)
  console.log('\n' + markdown)
  writeFileSync(here('deploy-results.json'), JSON.stringify(results, null, 2) + '\n')
  writeFileSync(here('deploy-results.md'), markdown)
  const svg = renderChart(results)
  writeFileSync(here('deploy-chart.svg'), svg)
  if (results.defaults && results.notes.length === 0) {
    mkdirSync(here('../docs'), { recursive: true })
    writeFileSync(here('../docs/deploy-chart.svg'), svg)
  }
  console.log(`bench/deploy-results.json, bench/deploy-results.md, bench/deploy-chart.svg written (${results.seconds} s)`)
}

function ulimit (flag) {
  const value = execFileSync('sh', ['-c', `ulimit ${flag} -n`], { encoding: 'utf8' }).trim()
  return value === 'unlimited' ? Infinity : Number(value)
}

/** The machine's count of connections dropped because a listening socket's accept queue was full (Linux), NaN elsewhere. */
function listenOverflows () {
  try {
    const [names, values] = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((line) => line.startsWith('TcpExt:')).map((line) => line.split(/\s+/))
    return Number(values[names.indexOf('ListenOverflows')])
  } catch {
    return NaN
  }
}

function load () {
  return os.loadavg().map((l) => l.toFixed(2)).join(' ')
}

function percentile (sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** [ms, clients back by then] at 200 moments up to the last one back. */
function timeline (times) {
  const sorted = [...times].sort((a, b) => a - b)
  const end = sorted.at(-1) ?? 0
  const points = []
  let n = 0
  for (let i = 0; i <= 200; i++) {
    const t = (end * i) / 200
    while (n < sorted.length && sorted[n] <= t) n++
    points.push([Math.round(t), n])
  }
  return points
}

// ---------------------------------------------------------------- report

function fmt (value, digits = 2) {
  if (value === undefined || Number.isNaN(value)) return '–'
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US')
  return value.toFixed(digits)
}

/** The median, with min–max when there were several rounds; `scale` converts the unit. */
function cell (stat, digits = 2, scale = 1) {
  if (stat === undefined) return '–'
  if (stat.min === stat.max) return fmt(stat.median * scale, digits)
  return `${fmt(stat.median * scale, digits)} (${fmt(stat.min * scale, digits)}–${fmt(stat.max * scale, digits)})`
}

function renderMarkdown (results) {
  const { rows, machine, settings } = results
  const out = [
    `${settings.clients} clients over ${settings.loadgens} load generators; ${machine.cpus} × ${machine.cpu}, Node ${machine.node};` +
      ` load average ${machine.loadBefore} before, ${machine.loadAfter} after; ${settings.rounds} round(s), ${results.seconds} s.`,
    '',
    '| setup | back on B | all back after, s | reconnect p50 / p99, s | failed handshakes | B loop delay max / p99, ms | B CPU, s | B CPU average / busiest 100 ms | A\'s close took, s |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
  ]
  for (const row of rows) {
    out.push(`| ${row.setup} | ${cell(row.back, 0)} | ${cell(row.allBack, 2, 1 / 1000)} | ${cell(row.reconnectP50, 2, 1 / 1000)} / ${cell(row.reconnectP99, 2, 1 / 1000)}` +
      ` | ${cell(row.failed, 0)} | ${cell(row.delayMax, 0)} / ${cell(row.delayP99, 0)} | ${cell(row.cpu, 2, 1 / 1000)}` +
      ` | ${cell(row.cpuAverage, 0, 100)} % / ${cell(row.cpuPeak, 0, 100)} % | ${cell(row.closeTook, 2, 1 / 1000)} |`)
  }
  out.push('')
  const details = results.samples.map((s) => {
    const failures = Object.entries(s.failures).map(([reason, n]) => `${n} ${reason}`).join(', ') || 'none'
    const codes = Object.entries(s.codes).map(([code, n]) => `${code} × ${n}`).join(', ')
    return `- ${s.setup}${settings.rounds > 1 ? `, round ${s.round + 1}` : ''}: close codes at the clients ${codes}; failed handshakes: ${failures};` +
      ` ${s.attempts} tries for ${s.back} reconnections${s.dropped ? `, ${s.dropped} dropped by B` : ''};` +
      (s.gcMax === undefined ? '' : ` B's longest GC pause ${fmt(s.gcMax, 0)} ms (${fmt(s.gcTotal, 0)} ms in all);`) +
      ` accept-queue overflows (machine-wide) ${fmt(s.overflowed, 0)}${s.closeError ? `; A's close rejected with ${s.closeError}` : ''}; load average ${s.loadAt} at the start`
  })
  out.push(...details, '')
  if (results.notes.length) out.push('Notes:', '', ...results.notes.map((n) => `- ${n}`), '')
  return out.join('\n')
}

function escape (text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** Two bar panels (B's event-loop delay; the time until all are back) and the reconnections over time. */
function renderChart (results) {
  const rows = results.rows
  const palette = ['#1f6feb', '#0a3069', '#54aeff', '#8250df'] // the fastify-wss setups
  const colors = { '@fastify/websocket': '#2da44e', ws: '#6e7781' }
  let spreads = 0
  const color = Object.fromEntries(rows.map((row) => [row.setup, colors[row.setup] ?? palette[spreads++ % palette.length]]))
  const width = 860
  const left = 200
  const plot = width - left - 190
  const bar = 16
  const out = []
  let y = 20
  out.push(`<text x="${left}" y="${y}" font-size="14" font-weight="600">Node A closes, ${results.settings.clients.toLocaleString('en-US')} clients reconnect to node B (lower is better)</text>`)
  y += 18
  out.push(`<text x="${left}" y="${y}" class="v">${escape(results.machine.cpus)} × ${escape(results.machine.cpu)}, Node ${escape(results.machine.node)}, load average ${escape(results.machine.loadBefore)}${results.settings.rounds > 1 ? `; medians of ${results.settings.rounds} rounds` : ''}</text>`)
  y += 14
  out.push(`<text x="${left}" y="${y}" class="v">Reconnection backoff 250 ms × 2^n, at most 10 s, × 0.8–1.2; fastify-wss with shutdown: { spread } in ms</text>`)
  y += 24

  const panel = (title, unit, main, light, lightName) => {
    out.push(`<text x="${left}" y="${y}" font-weight="600">${escape(title)}</text>`)
    y += 10
    const max = Math.max(1e-9, ...rows.map((r) => Math.max(main(r) ?? 0, light(r) ?? 0)))
    const scale = (v) => (Math.max(0, v) / max) * plot
    for (const row of rows) {
      const value = main(row)
      const second = light(row)
      out.push(`<text x="${left - 10}" y="${y + bar - 4}" text-anchor="end">${escape(row.setup)}</text>`)
      if (value !== undefined && !Number.isNaN(value)) {
        out.push(`<rect x="${left}" y="${y}" width="${scale(value).toFixed(1)}" height="${bar - 3}" fill="${color[row.setup]}"><title>${escape(row.setup)}: ${fmt(value)} ${unit}</title></rect>`)
        if (second !== undefined && !Number.isNaN(second)) {
          out.push(`<rect x="${left}" y="${y + 3}" width="${scale(second).toFixed(1)}" height="${bar - 9}" fill="#fff" fill-opacity="0.55"/>`)
        }
        const label = `${fmt(value, 2)} ${unit}${second === undefined ? '' : ` (${lightName} ${fmt(second, 2)})`}`
        out.push(`<text x="${(left + scale(value) + 4).toFixed(1)}" y="${y + bar - 5}" class="v">${escape(label)}</text>`)
      } else {
        out.push(`<text x="${left + 4}" y="${y + bar - 5}" class="v">not all back</text>`)
      }
      y += bar
    }
    y += 22
  }
  panel('Peak event-loop delay on B, max (p99 lighter)', 'ms', (r) => r.delayMax?.median, (r) => r.delayP99?.median, 'p99')
  panel('All clients back on B after (reconnect p99 lighter)', 's', (r) => r.allBack?.median / 1000, (r) => r.reconnectP99?.median / 1000, 'reconnect p99')

  // clients back on B over time, the first round of each setup
  out.push(`<text x="${left}" y="${y}" font-weight="600">Clients off A (dashed) and back on B, seconds after A's close (round 1)</text>`)
  y += 12
  const height = 150
  const firsts = rows.map((row) => results.samples.find((s) => s.setup === row.setup)).filter(Boolean)
  const tMax = Math.max(1, ...firsts.flatMap((s) => [s.timeline.off.at(-1)[0], s.timeline.back.at(-1)[0]])) / 1000
  const step = tMax > 20 ? 5 : tMax > 8 ? 2 : tMax > 3 ? 1 : 0.5
  const x = (t) => left + (t / tMax) * plot
  const yOf = (n) => y + height - (n / results.settings.clients) * height
  for (let t = 0; t <= tMax + 1e-9; t += step) {
    out.push(`<line x1="${x(t).toFixed(1)}" y1="${y}" x2="${x(t).toFixed(1)}" y2="${y + height}" stroke="#d0d7de"/>`)
    out.push(`<text x="${x(t).toFixed(1)}" y="${y + height + 14}" text-anchor="middle" class="v">${t} s</text>`)
  }
  for (const f of [0, 0.5, 1]) {
    out.push(`<text x="${left - 6}" y="${(yOf(f * results.settings.clients) + 4).toFixed(1)}" text-anchor="end" class="v">${Math.round(f * 100)} %</text>`)
  }
  const line = (points) => points.map(([t, n]) => `${x(t / 1000).toFixed(1)},${yOf(n).toFixed(1)}`).join(' ')
  for (const s of firsts) {
    out.push(`<polyline points="${line(s.timeline.off)}" fill="none" stroke="${color[s.setup]}" stroke-width="1.5" stroke-dasharray="4 3"><title>${escape(s.setup)}: off A</title></polyline>`)
    out.push(`<polyline points="${line(s.timeline.back)}" fill="none" stroke="${color[s.setup]}" stroke-width="2"><title>${escape(s.setup)}: back on B</title></polyline>`)
  }
  y += height + 30
  let lx = left
  for (const row of rows) {
    out.push(`<rect x="${lx}" y="${y - 10}" width="12" height="12" fill="${color[row.setup]}"/><text x="${lx + 16}" y="${y}">${escape(row.setup)}</text>`)
    lx += 36 + row.setup.length * 6.5
  }
  y += 14
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">
<style>.v { font-size: 10px; fill: #57606a }</style>
<rect width="100%" height="100%" fill="#fff"/>
${out.join('\n')}
</svg>
`
}

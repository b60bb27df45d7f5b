// Attack suite: hostile clients against a server in its own process, with a
// well-behaved canary client beside them, on 127.0.0.1 only.
//
//   npm run attack              every attack against every server: about 6 minutes
//   ATTACK_SERVERS=fastify-wss ATTACK_CLIENTS=never-read=150 npm run attack
//                               the CI run: about 2 minutes. Shorter attacks are
//                               weaker: ws inflates only about 50 MiB/s per
//                               connection on 2 cores, so deflate-pin needs
//                               5-10 s to pin 512 MiB.
//
// For each attack and server: a fresh server process (scripts/attack-server.js,
// V8 heap limited to 1536 MB) is started and warmed up with the canary; its
// RSS then is the baseline. The attacking clients (scripts/attack-clients.js,
// another process) run for ATTACK_SECONDS while the canary sends a small
// message every 100 ms and times each echo, and the server's RSS is sampled
// from /proc/<pid>/status every 50 ms (and reported by the server over IPC).
// Recorded: peak RSS over the baseline, whether the server crashed (it exited,
// an uncaughtException or unhandledRejection, V8's heap limit, or it was
// killed past ATTACK_RSS_CAP_MB), the canary's p99 and the canary messages
// without an echo 2 s after the attack ended.
//
// fastify-wss runs with its default limits (plus the options an attack
// names); raw ws and @fastify/websocket run with theirs, as references.
// Exits non-zero when an attack against fastify-wss crashes it, takes its RSS
// more than 512 MiB over the baseline, takes the canary's p99 over 500 ms, or
// loses a canary message. The reference rows never change the exit code.
//
// Environment:
//   ATTACK_SECONDS     seconds of each attack (default 10)
//   ATTACK_ONLY        comma list of attacks to run (default all; names below)
//   ATTACK_SERVERS     comma list of fastify-wss, ws, fastify-websocket (default all)
//   ATTACK_CLIENTS     a factor for every attack's client count (0.5 halves them),
//                      or counts by attack: never-read=200,tiny-frames=100
//   ATTACK_RSS_CAP_MB  a server past this RSS is killed and counted as crashed (default 4096)
//   ATTACK_LOG         where the log-flood server's log goes: 'slow', a pipe read at
//                      1 MiB/s (default), or 'null', /dev/null
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { positive } from './common.js'

const MiB = 1024 * 1024
const here = (file) => fileURLToPath(new URL(file, import.meta.url))

/** What fails an attack against fastify-wss. */
const LIMITS = { rssMiB: 512, p99Ms: 500, lost: 0 }
const HEAP_MB = 1536
const WARMUP_MS = 1500
const CANARY_EVERY_MS = 100
const GRACE_MS = 2000
const SLOW_LOG_BYTES_PER_SECOND = MiB

/**
 * The attacks. `server` is what scripts/attack-server.js builds (`options`
 * are fastify-wss plugin options; the references take only perMessageDeflate
 * from them); `plan` is what every client of scripts/attack-clients.js does.
 */
const ATTACKS = [
  {
    name: 'slow-inbound',
    what: 'onMessage takes 1 s (async); clients send 1 MiB messages as fast as they can',
    clients: 20,
    server: { handler: 'slow' },
    plan: { mode: 'flood', frame: { kind: 'binary', size: MiB }, burst: 1 }
  },
  {
    name: 'close-escape',
    what: 'maxConnections 3 (2 + the canary), onMessage takes 1 s; each client: connect, send 99 x 1 MiB, close, again',
    clients: 2,
    server: { handler: 'slow', options: { maxConnections: 3 } },
    plan: { mode: 'cycle', frame: { kind: 'binary', size: MiB }, perCycle: 99 }
  },
  {
    name: 'deflate-pin',
    what: 'as close-escape with perMessageDeflate: each 1 MiB message is ~1 KB compressed; 20 clients race for the 2 slots',
    clients: 20,
    server: { handler: 'slow', options: { maxConnections: 3, perMessageDeflate: true } },
    plan: { mode: 'cycle', frame: { kind: 'compressed', size: MiB }, perCycle: 99, deflate: true }
  },
  {
    name: 'never-read',
    what: 'clients that never read ask for a 256 KiB reply every message (16 requests per 10 ms each)',
    clients: 500,
    server: { handler: 'reply' },
    plan: { mode: 'never-read', frame: { kind: 'requests', count: 16 }, burst: 1, paceMs: 10 }
  },
  {
    name: 'log-flood',
    what: "logger: true to a slow stdout, dataType 'object', no onError; clients send invalid JSON as fast as they can",
    clients: 10,
    server: { handler: 'echo', dataType: 'object', logger: true },
    servers: ['fastify-wss', 'fastify-websocket'], // raw ws has no logger
    plan: { mode: 'flood', frame: { kind: 'invalid-json', count: 256 }, burst: 16 }
  },
  {
    name: 'deep-json',
    what: "dataType 'object'; clients send ~1 MiB of nested arrays ([[[[...]]]]) as fast as they can",
    clients: 10,
    server: { handler: 'echo', dataType: 'object' },
    plan: { mode: 'flood', frame: { kind: 'deep-json', size: MiB - 1024 }, burst: 1 }
  },
  {
    name: 'tiny-frames',
    what: 'onMessage takes 1 s (async); 8,192 frames of 0-1 byte in each TCP write, as fast as they can',
    clients: 200,
    server: { handler: 'slow' },
    plan: { mode: 'flood', frame: { kind: 'tiny', count: 8192 }, burst: 1 }
  },
  {
    name: 'deflate-flood',
    what: 'perMessageDeflate, onMessage takes 1 s (async); small compressed frames, each inflating to just under maxPayload',
    clients: 20,
    server: { handler: 'slow', options: { perMessageDeflate: true } },
    plan: { mode: 'flood', frame: { kind: 'compressed', size: 'maxPayload', count: 16 }, deflate: true, burst: 1 }
  }
]
const SERVERS = ['fastify-wss', 'ws', 'fastify-websocket']

// ---------------------------------------------------------------- settings

/** A comma list from the environment, each item one of `known`; exits with 2 otherwise. */
function list (name, known) {
  const value = process.env[name]
  if (value === undefined || value === '') return known
  const items = value.split(',').map((item) => item.trim()).filter(Boolean)
  const unknown = items.filter((item) => !known.includes(item))
  if (unknown.length !== 0 || items.length === 0) {
    console.error(`${name}: unknown ${unknown.join(', ') || 'empty list'}; known: ${known.join(', ')}`)
    process.exit(2)
  }
  return items
}

/** ATTACK_CLIENTS: a factor (> 0) for all counts, or name=count pairs. */
function clientCounts () {
  const value = process.env.ATTACK_CLIENTS
  const counts = Object.fromEntries(ATTACKS.map((attack) => [attack.name, attack.clients]))
  if (value === undefined || value === '') return counts
  const bad = () => {
    console.error('ATTACK_CLIENTS must be a factor (0.5) or name=count pairs (never-read=200,tiny-frames=100)')
    process.exit(2)
  }
  if (!value.includes('=')) {
    const factor = Number(value)
    if (!(factor > 0) || !Number.isFinite(factor)) bad()
    for (const name of Object.keys(counts)) counts[name] = Math.max(1, Math.round(counts[name] * factor))
    return counts
  }
  for (const pair of value.split(',')) {
    const [name, count] = pair.split('=').map((part) => part.trim())
    if (!(name in counts) || !Number.isSafeInteger(Number(count)) || Number(count) <= 0) bad()
    counts[name] = Number(count)
  }
  return counts
}

const SECONDS = positive('ATTACK_SECONDS', 10)
const RSS_CAP = positive('ATTACK_RSS_CAP_MB', 4096) * MiB
const ONLY = list('ATTACK_ONLY', ATTACKS.map((attack) => attack.name))
const ONLY_SERVERS = list('ATTACK_SERVERS', SERVERS)
const COUNTS = clientCounts()
const LOG = process.env.ATTACK_LOG ?? 'slow'
if (LOG !== 'slow' && LOG !== 'null') {
  console.error("ATTACK_LOG must be 'slow' or 'null'")
  process.exit(2)
}

// ---------------------------------------------------------------- processes

/** Every child still running: killed by PID on any way out. */
const children = new Set()
function killAll () {
  for (const child of children) {
    try { process.kill(child.pid, 'SIGKILL') } catch {}
  }
}
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}

/** A child process, tracked until it exits; `exited` resolves with how it ended. */
function start (script, args, { execArgv = [], stdout = 'pipe' } = {}) {
  const proc = fork(here(script), args, { execArgv, stdio: ['ignore', stdout, 'pipe', 'ipc'] })
  children.add(proc)
  proc.on('error', () => {}) // a send to a process that has just exited: its 'exit' tells the rest
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
    children.delete(proc)
    resolve({ code, signal })
  }))
  return { proc, exited }
}

/** Kills a child by its PID and waits for it to be gone. */
async function kill (child) {
  if (child.proc.exitCode === null && child.proc.signalCode === null) {
    try { process.kill(child.proc.pid, 'SIGKILL') } catch {}
  }
  await child.exited
}

/** Resident set size of a process in bytes, from /proc; undefined when it cannot be read. */
function rssOf (pid) {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))
    return match === null ? undefined : Number(match[1]) * 1024
  } catch {
    return undefined
  }
}

/** Reads a child's stdout no faster than `bytesPerSecond`: a slow log consumer. */
function drainSlowly (stream, bytesPerSecond) {
  const started = Date.now()
  let read = 0
  stream.on('data', (chunk) => {
    read += chunk.length
    const due = started + (read / bytesPerSecond) * 1000
    if (due > Date.now()) {
      stream.pause()
      setTimeout(() => stream.resume(), due - Date.now()).unref()
    }
  })
}

/**
 * The server under attack, sampled every 50 ms: `samples` are [time, rss].
 * Past the RSS cap it is killed (`capped`). `exit` tells how it ended when
 * that was not by `stop()`.
 */
async function startServer (variant, attack) {
  const setup = { dataType: 'text', logger: false, options: {}, ...attack.server }
  const slowLog = setup.logger && LOG === 'slow'
  const server = start('attack-server.js', [variant, JSON.stringify(setup)], {
    execArgv: [`--max-old-space-size=${HEAP_MB}`],
    stdout: setup.logger && LOG === 'null' ? 'ignore' : 'pipe'
  })
  const { proc } = server
  let stderr = ''
  proc.stderr.setEncoding('utf8')
  proc.stderr.on('data', (text) => { stderr = (stderr + text).slice(-8192) })
  if (proc.stdout !== null) {
    if (slowLog) drainSlowly(proc.stdout, SLOW_LOG_BYTES_PER_SECOND)
    else proc.stdout.resume()
  }
  Object.assign(server, { samples: [], reported: 0, capped: false, stopping: false, exit: undefined })
  proc.on('message', (message) => {
    if (message.rss !== undefined) server.reported = Math.max(server.reported, message.rss)
  })
  const sampler = setInterval(() => {
    const rss = rssOf(proc.pid)
    if (rss === undefined) return
    server.samples.push([Date.now(), rss])
    if (rss > RSS_CAP && !server.capped) {
      server.capped = true
      try { process.kill(proc.pid, 'SIGKILL') } catch {}
    }
  }, 50)
  server.exited.then(({ code, signal }) => {
    clearInterval(sampler)
    if (!server.stopping) server.exit = { code, signal, stderr }
  })
  server.stop = async () => {
    server.stopping = true
    await kill(server)
  }
  const ready = new Promise((resolve) => proc.on('message', (message) => { if (message.ready) resolve(message) }))
  const answer = await Promise.race([ready, server.exited.then(() => undefined), sleep(30_000)])
  if (answer === undefined) {
    await server.stop()
    throw new Error(`${variant} server did not start: ${stderr.trim().split('\n').slice(-3).join(' | ')}`)
  }
  server.port = answer.port
  server.maxPayload = answer.maxPayload
  return server
}

// ---------------------------------------------------------------- canary

/**
 * A well-behaved client: a small message every 100 ms, each echo timed. A
 * message sent while the connection is not open counts as lost at once.
 */
async function openCanary (port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/?canary`, { perMessageDeflate: false })
  ws.on('error', () => {})
  const opened = await Promise.race([
    once(ws, 'open').then(() => true, () => false),
    once(ws, 'close').then(() => false),
    sleep(5000).then(() => false)
  ])
  if (!opened) {
    ws.terminate()
    return undefined
  }
  const canary = { sent: 0, latencies: [], pending: new Map(), lostClosed: 0 }
  let seq = 0
  const timer = setInterval(() => {
    seq++
    canary.sent++
    if (ws.readyState !== WebSocket.OPEN) {
      canary.lostClosed++
      return
    }
    canary.pending.set(seq, performance.now())
    ws.send(JSON.stringify(`c:${seq}`))
  }, CANARY_EVERY_MS)
  ws.on('message', (data) => {
    let value
    try { value = JSON.parse(data.toString()) } catch { return }
    const sentAt = canary.pending.get(Number(String(value).slice(2)))
    if (sentAt === undefined) return
    canary.pending.delete(Number(String(value).slice(2)))
    canary.latencies.push(performance.now() - sentAt)
  })
  /** Forgets the warm-up. */
  canary.reset = () => {
    canary.sent = 0
    canary.latencies = []
    canary.pending.clear()
    canary.lostClosed = 0
  }
  /** Stops sending, waits up to GRACE_MS for the echoes still due, and closes. */
  canary.finish = async () => {
    clearInterval(timer)
    const until = Date.now() + GRACE_MS
    while (canary.pending.size !== 0 && ws.readyState === WebSocket.OPEN && Date.now() < until) await sleep(20)
    ws.terminate()
    const sorted = Float64Array.from(canary.latencies).sort()
    return {
      sent: canary.sent,
      lost: canary.pending.size + canary.lostClosed,
      lostClosed: canary.lostClosed,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      max: sorted.length === 0 ? NaN : sorted[sorted.length - 1]
    }
  }
  return canary
}

function percentile (sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]
}

// ---------------------------------------------------------------- one run

/** One attack against one server: the row of the table. */
async function run (attack, variant) {
  const row = { attack: attack.name, server: variant, clients: COUNTS[attack.name] }
  const server = await startServer(variant, attack)
  let attacker
  try {
    const canary = await openCanary(server.port)
    if (canary === undefined) throw new Error('the canary could not connect')
    await sleep(WARMUP_MS)
    const warm = server.samples.filter(([t]) => t >= Date.now() - 500).map(([, rss]) => rss).sort((a, b) => a - b)
    row.baseline = warm.length === 0 ? rssOf(server.proc.pid) : warm[Math.floor(warm.length / 2)]
    canary.reset()
    const attackStart = Date.now()

    const frame = { ...attack.plan.frame }
    if (frame.size === 'maxPayload') frame.size = server.maxPayload - 1024
    const plan = { ...attack.plan, frame, port: server.port, seconds: SECONDS, clients: row.clients }
    attacker = start('attack-clients.js', [JSON.stringify(plan)], { execArgv: ['--max-old-space-size=1024'] })
    attacker.proc.stdout.resume()
    attacker.proc.stderr.pipe(process.stderr)
    const stats = new Promise((resolve) => attacker.proc.on('message', (message) => { if (message.stats) resolve(message.stats) }))
    // The attackers end by themselves after ATTACK_SECONDS; a crash of the server ends the attack at once.
    const outcome = await Promise.race([
      attacker.exited.then(() => 'done'),
      server.exited.then(() => 'server gone'),
      sleep(SECONDS * 1000 + 15_000).then(() => 'attackers stuck')
    ])
    if (outcome === 'server gone') {
      if (attacker.proc.connected) attacker.proc.send('stop', () => {})
      await Promise.race([attacker.exited, sleep(2000)])
    }
    if (outcome !== 'done') await kill(attacker)
    row.attackSeconds = (Date.now() - attackStart) / 1000
    row.stats = await Promise.race([stats, sleep(100).then(() => undefined)])
    if (outcome === 'attackers stuck') row.note = 'attack clients killed: they did not end in time'

    Object.assign(row, await canary.finish())
    const during = server.samples.filter(([t]) => t >= attackStart).map(([, rss]) => rss)
    row.peak = Math.max(row.baseline, server.reported, ...during)
  } catch (err) {
    row.error = err.message
  } finally {
    if (attacker !== undefined) await kill(attacker)
    await server.stop()
  }
  if (server.capped) row.crash = `killed past the RSS cap (${RSS_CAP / MiB} MiB)`
  else if (server.exit !== undefined) row.crash = describeExit(server.exit)
  return row
}

function describeExit ({ code, signal, stderr }) {
  const lines = stderr.split('\n')
  const reason = lines.find((line) => line.startsWith('attack-server: ')) ??
    lines.find((line) => /FATAL ERROR|out of memory/i.test(line)) ??
    lines.find((line) => /Error/.test(line))
  return `exit ${code ?? signal}${reason === undefined ? '' : `: ${reason.replace('attack-server: ', '').slice(0, 100)}`}`
}

/** The thresholds a fastify-wss row crosses; empty when it passes. */
function failures (row) {
  if (row.error !== undefined) return [row.error]
  const found = []
  if (row.crash !== undefined) found.push('crashed')
  if ((row.peak - row.baseline) / MiB > LIMITS.rssMiB) found.push(`RSS > +${LIMITS.rssMiB} MiB`)
  if (!(row.p99 <= LIMITS.p99Ms)) found.push(`p99 > ${LIMITS.p99Ms} ms`)
  if (row.lost > LIMITS.lost) found.push('canary lost messages')
  return found
}

// ---------------------------------------------------------------- report

const mib = (bytes) => bytes === undefined || Number.isNaN(bytes) ? '–' : (bytes / MiB).toFixed(0)
const ms = (value) => value === undefined || Number.isNaN(value) ? '–' : value.toFixed(value < 10 ? 1 : 0)

function table (rows, columns) {
  const cells = rows.map((row) => columns.map(([, cell]) => String(cell(row))))
  const widths = columns.map(([title], i) => Math.max(title.length, ...cells.map((line) => line[i].length)))
  const line = (values) => `| ${values.map((value, i) => value.padEnd(widths[i])).join(' | ')} |`
  return [line(columns.map(([title]) => title)), line(widths.map((width) => '-'.repeat(width))), ...cells.map(line)].join('\n')
}

const verdict = (row) => {
  const found = failures(row)
  if (row.server !== 'fastify-wss') return found.length === 0 ? 'ok (reference)' : `${found.join(', ')} (reference)`
  return found.length === 0 ? 'PASS' : `FAIL: ${found.join(', ')}`
}

const COLUMNS = [
  ['server', (row) => row.server],
  ['clients', (row) => row.clients],
  ['baseline MiB', (row) => mib(row.baseline)],
  ['peak over baseline MiB', (row) => row.peak === undefined ? '–' : mib(row.peak - row.baseline)],
  ['crashed', (row) => row.crash ?? (row.error === undefined ? 'no' : '–')],
  ['canary p50 / p99 / max ms', (row) => `${ms(row.p50)} / ${ms(row.p99)} / ${ms(row.max)}`],
  ['canary lost / sent', (row) => row.sent === undefined
    ? '–'
    : `${row.lost} / ${row.sent}${row.lostClosed === 0 ? '' : ` (${row.lostClosed} while closed)`}`],
  ['attack: conns, refused, MiB sent, own RSS MiB', (row) => row.stats === undefined ? '–' : `${row.stats.connections}, ${row.stats.refused}, ${mib(row.stats.bytes)}, ${mib(row.stats.rss)}`],
  ['attack cycles: count, mean ms to send, to close', (row) => !row.stats?.cycles
    ? '–'
    : `${row.stats.cycles}, ${(row.stats.writeMs / row.stats.cycles).toFixed(0)}, ${(row.stats.closeMs / row.stats.cycles).toFixed(0)}`],
  ['verdict', verdict]
]

// ---------------------------------------------------------------- main

const selected = ATTACKS.filter((attack) => ONLY.includes(attack.name))
const started = Date.now()
console.log(`attack: ${selected.length} attacks × ${ONLY_SERVERS.join(', ')}; ${SECONDS} s each; Node ${process.version}; ` +
  `server heap limit ${HEAP_MB} MB, RSS cap ${RSS_CAP / MiB} MiB; log-flood log: ${LOG}`)
console.log(`fails on fastify-wss: crash, RSS > baseline + ${LIMITS.rssMiB} MiB, canary p99 > ${LIMITS.p99Ms} ms, any canary message lost`)
console.log(`baseline: the server's RSS after ${WARMUP_MS} ms of warm-up with the canary; lost: canary messages without an echo ` +
  `${GRACE_MS} ms after the attack ended, or sent while its connection was closed; p99 is over the echoes received\n`)

const rows = []
for (const attack of selected) {
  const variants = ONLY_SERVERS.filter((variant) => (attack.servers ?? SERVERS).includes(variant))
  if (variants.length === 0) continue
  const attackRows = []
  for (const variant of variants) {
    const row = await run(attack, variant)
    attackRows.push(row)
    rows.push(row)
  }
  console.log(`## ${attack.name}: ${attack.what}\n`)
  console.log(table(attackRows, COLUMNS))
  for (const row of attackRows) if (row.note) console.log(`note (${row.server}): ${row.note}`)
  console.log('')
}

const failed = rows.filter((row) => row.server === 'fastify-wss' && failures(row).length !== 0)
console.log('## summary\n')
console.log(table(rows, [['attack', (row) => row.attack], ...COLUMNS.filter(([title]) => !title.startsWith('attack:'))]))
console.log(`\nattack: ${rows.length} runs in ${((Date.now() - started) / 1000).toFixed(0)} s; ` +
  `fastify-wss failed ${failed.length} of ${rows.filter((row) => row.server === 'fastify-wss').length}` +
  (failed.length === 0 ? '' : ` (${failed.map((row) => row.attack).join(', ')})`))
console.log(failed.length === 0 ? 'attack: OK' : 'attack: FAILED')
process.exit(failed.length === 0 ? 0 : 1)

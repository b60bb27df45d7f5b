// redis-server processes for the benchmarks: one standalone server, or a Redis
// Cluster of N masters (no replicas), on free loopback ports, with their files
// in a temporary directory. Each is stopped by its own PID.
//   const redis = await startRedis(dir)              // { url, port, admins, pids, stop() }
//   const cluster = await startRedisCluster(3, dir)  // { nodes: [{ host, port }], shardOf(slot), admins, pids, stop() }
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'

const host = '127.0.0.1'
const SLOTS = 16384

/** `count` distinct free loopback ports: every listener is held until all are known. */
export async function freePorts (count) {
  const servers = []
  for (let i = 0; i < count; i++) {
    const server = createServer().listen(0, host)
    await once(server, 'listening')
    servers.push(server)
  }
  const ports = servers.map((server) => server.address().port)
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}

/** One redis-server process; resolves once it answers PING, with an admin connection to it. */
async function serve (port, dir, extra = []) {
  const proc = spawn('redis-server', [
    '--port', String(port), '--bind', host, '--dir', dir,
    '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...extra
  ], { stdio: 'ignore' })
  const failed = new Promise((_resolve, reject) => {
    proc.once('error', (err) => reject(new Error(`cannot start redis-server (${err.message}): install Redis 7 or later`)))
    proc.once('exit', (code, signal) => reject(new Error(`redis-server on port ${port} exited (${code ?? signal})`)))
  })
  failed.catch(() => {}) // only raced below; an exit after the start is seen through the admin connection
  const admin = new Redis({ host, port, lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null })
  admin.on('error', () => {})
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      await Promise.race([admin.connect(), failed])
      break
    } catch (err) {
      if (proc.exitCode !== null || proc.signalCode !== null || err.message.startsWith('cannot start')) {
        admin.disconnect()
        throw err
      }
      if (Date.now() > deadline) {
        admin.disconnect()
        proc.kill('SIGKILL')
        throw new Error(`redis-server on port ${port} did not answer within 10 s`)
      }
      admin.disconnect()
      await sleep(20)
    }
  }
  return { proc, port, admin }
}

/** Stops the processes by PID: SIGTERM, then SIGKILL after 3 s. */
async function stopAll (servers) {
  await Promise.all(servers.map(async ({ proc, admin }) => {
    admin.disconnect()
    if (proc.exitCode !== null || proc.signalCode !== null) return
    const exited = once(proc, 'exit')
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(timer)
  }))
}

/** A standalone redis-server on a free port. */
export async function startRedis (dir) {
  const [port] = await freePorts(1)
  const server = await serve(port, dir)
  return {
    url: `redis://${host}:${port}`,
    port,
    admins: [server.admin],
    pids: [server.proc.pid],
    procs: [server.proc],
    version: (await server.admin.info('server')).match(/redis_version:(\S+)/)[1],
    stop: () => stopAll([server])
  }
}

/**
 * A Redis Cluster of `shards` masters without replicas. Each node gets an
 * explicit `--cluster-port` (a free port, since port + 10000 may not be one).
 * Three or more masters are joined by `redis-cli --cluster create`, which
 * refuses fewer; one or two get their slots by CLUSTER ADDSLOTSRANGE (and
 * meet by CLUSTER MEET). Resolves once every node reports cluster_state:ok
 * and knows every master.
 */
export async function startRedisCluster (shards, dir) {
  const ports = await freePorts(shards * 2)
  const servers = []
  try {
    for (let i = 0; i < shards; i++) {
      const [port, busPort] = [ports[2 * i], ports[2 * i + 1]]
      servers.push(await serve(port, dir, [
        '--cluster-enabled', 'yes',
        '--cluster-port', String(busPort),
        '--cluster-announce-ip', host, // else a node that met no other one announces no address
        '--cluster-config-file', join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout', '5000'
      ]))
      servers[i].busPort = busPort
    }
    if (shards >= 3) {
      await promisify(execFile)('redis-cli', [
        '--cluster', 'create', ...servers.map(({ port }) => `${host}:${port}`),
        '--cluster-replicas', '0', '--cluster-yes'
      ], { timeout: 30_000 })
    } else {
      for (const [i, { admin }] of servers.entries()) {
        const first = Math.floor(i * SLOTS / shards)
        const last = Math.floor((i + 1) * SLOTS / shards) - 1
        await admin.call('CLUSTER', 'SET-CONFIG-EPOCH', String(i + 1))
        await admin.call('CLUSTER', 'ADDSLOTSRANGE', String(first), String(last))
      }
      for (const { port, busPort } of servers.slice(1)) {
        await servers[0].admin.call('CLUSTER', 'MEET', host, String(port), String(busPort))
      }
    }
    const deadline = Date.now() + 30_000
    for (;;) {
      const infos = await Promise.all(servers.map(({ admin }) => admin.call('CLUSTER', 'INFO')))
      if (infos.every((info) => /cluster_state:ok/.test(info) && new RegExp(`cluster_known_nodes:${shards}\\b`).test(info))) break
      if (Date.now() > deadline) throw new Error(`the Redis Cluster of ${shards} shard(s) did not reach cluster_state:ok within 30 s`)
      await sleep(100)
    }
  } catch (err) {
    await stopAll(servers)
    throw err
  }
  // CLUSTER SLOTS: [[first, last, [host, port, id], ...], ...]
  const ranges = (await servers[0].admin.call('CLUSTER', 'SLOTS')).map(([first, last, [, port]]) => ({
    first, last, shard: servers.findIndex((server) => server.port === port)
  }))
  return {
    nodes: servers.map(({ port }) => ({ host, port })),
    /** The index (in `nodes`) of the master that serves a slot. */
    shardOf: (slot) => ranges.find(({ first, last }) => slot >= first && slot <= last).shard,
    admins: servers.map(({ admin }) => admin),
    pids: servers.map(({ proc }) => proc.pid),
    procs: servers.map(({ proc }) => proc),
    stop: () => stopAll(servers)
  }
}

/** The cluster slot of a key or channel name (CRC16/XMODEM modulo 16384, hash tags honoured). */
export function keySlot (key) {
  let hashed = key
  const open = key.indexOf('{')
  if (open !== -1) {
    const close = key.indexOf('}', open + 1)
    if (close > open + 1) hashed = key.slice(open + 1, close)
  }
  let crc = 0
  for (const byte of Buffer.from(hashed)) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc % SLOTS
}

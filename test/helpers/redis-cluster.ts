import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Redis } from 'ioredis'
import { eventually, freePort } from './redis.js'

/**
 * The servers running and the directories of the clusters, killed by PID and
 * removed if the test process ends before its teardown (a crash, or tap's
 * timeout, which it signals with SIGALRM), so that nothing outlives the test.
 */
const running = new Set<ChildProcess>()
const directories = new Set<string>()
function cleanUp (): void {
  for (const child of running) child.kill('SIGKILL')
  for (const dir of directories) rmSync(dir, { recursive: true, force: true })
}
process.once('exit', cleanUp)
process.once('SIGALRM', cleanUp)

/** One redis-server of a throwaway cluster: its ports, its directory (nodes.conf), its process. */
export class ClusterNodeServer {
  readonly port: number
  /** The cluster bus port, given explicitly: the default (port + 10000) overflows above 55535. */
  readonly busPort: number
  readonly #bin: string
  readonly #dir: string
  #child: ChildProcess | undefined
  /** A client of the test, for CLUSTER and ACL commands. */
  admin!: Redis

  constructor (bin: string, dir: string, port: number, busPort: number) {
    this.#bin = bin
    this.#dir = dir
    this.port = port
    this.busPort = busPort
  }

  get address (): string {
    return `127.0.0.1:${this.port}`
  }

  get running (): boolean {
    return this.#child !== undefined
  }

  /** Starts the server (again, after `kill`: it rejoins the cluster from its nodes.conf) and waits until it answers. */
  async start (): Promise<void> {
    const child = spawn(this.#bin, [
      '--port', String(this.port), '--cluster-port', String(this.busPort), '--bind', '127.0.0.1',
      '--dir', this.#dir, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
      // fail over within a few seconds, whatever the replica's replication lag
      '--cluster-node-timeout', '1000', '--cluster-replica-validity-factor', '0',
      '--save', '', '--appendonly', 'no'
    ], { stdio: ['ignore', 'ignore', 'inherit'] })
    this.#child = child
    running.add(child)
    let exited = false
    child.once('exit', () => {
      exited = true
      running.delete(child)
    })
    if (this.admin === undefined) {
      this.admin = new Redis({ host: '127.0.0.1', port: this.port, lazyConnect: true, retryStrategy: () => 20 })
      // the tests kill servers under their clients on purpose
      this.admin.on('error', () => {})
    }
    await eventually(async () => {
      if (exited) throw new Error(`redis-server exited at start on port ${this.port}`)
      return await this.admin.ping().then(() => true, () => false)
    }, `redis-server answers on port ${this.port}`)
  }

  /** Kills the server by its PID (SIGKILL, as in a crash) and waits until it has exited. */
  async kill (): Promise<void> {
    const child = this.#child
    if (child === undefined) return
    this.#child = undefined
    if (child.exitCode !== null || child.signalCode !== null) return
    const exit = once(child, 'exit')
    process.kill(child.pid as number, 'SIGKILL')
    await exit
  }

  /** Freezes the server (SIGSTOP): it reads nothing until it is killed. */
  pause (): void {
    process.kill((this.#child as ChildProcess).pid as number, 'SIGSTOP')
  }

  /** CLUSTER MYID */
  async id (): Promise<string> {
    return await this.admin.cluster('MYID')
  }
}

/**
 * A throwaway Redis Cluster of `masters` masters, each with one replica, on
 * free loopback ports, without persistence; `stop` kills every server by its
 * PID and removes its directory.
 */
export class RedisCluster {
  readonly nodes: ClusterNodeServer[]
  readonly #dir: string

  private constructor (dir: string, nodes: ClusterNodeServer[]) {
    this.#dir = dir
    this.nodes = nodes
  }

  static async start (bin: string, masters = 3): Promise<RedisCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'fastify-wss-cluster-'))
    directories.add(dir)
    const nodes: ClusterNodeServer[] = []
    const cluster = new RedisCluster(dir, nodes)
    try {
      for (let i = 0; i < masters * 2; i++) {
        const nodeDir = await mkdtemp(join(dir, 'node-'))
        const node = new ClusterNodeServer(bin, nodeDir, await freePort(), await freePort())
        nodes.push(node)
        await node.start()
      }
      await cluster.#create(bin, masters)
      return cluster
    } catch (err) {
      await cluster.stop()
      throw err
    }
  }

  /** The nodes as ioredis startup nodes. */
  get startupNodes (): Array<{ host: string, port: number }> {
    return this.nodes.map((node) => ({ host: '127.0.0.1', port: node.port }))
  }

  /** The node of `address` (`host:port`). */
  node (address: string): ClusterNodeServer {
    const node = this.nodes.find((candidate) => candidate.address === address)
    if (node === undefined) throw new Error(`no node at ${address}`)
    return node
  }

  /** The master that serves `slot`, as a running node sees it. */
  async masterOf (slot: number): Promise<ClusterNodeServer> {
    const running = this.nodes.find((node) => node.running) as ClusterNodeServer
    const ranges = await running.admin.cluster('SLOTS') as Array<[number, number, [string, number]]>
    const range = ranges.find(([from, to]) => from <= slot && slot <= to)
    if (range === undefined) throw new Error(`no master serves slot ${slot}`)
    return this.node(`${range[2][0]}:${range[2][1]}`)
  }

  /** Waits until every running node says cluster_state:ok and sees the same masters. */
  async settled (): Promise<void> {
    await eventually(async () => {
      const views = new Set<string>()
      for (const node of this.nodes.filter((candidate) => candidate.running)) {
        const info = await node.admin.cluster('INFO') as string
        if (!info.includes('cluster_state:ok')) return false
        const slots = await node.admin.cluster('SLOTS') as Array<[number, number, [string, number]]>
        views.add(JSON.stringify(slots.map(([from, to, [host, port]]) => [from, to, host, port]).sort((a, b) => (a[0] as number) - (b[0] as number))))
      }
      return views.size === 1
    }, 'the cluster is settled', 3000)
  }

  /** Kills every server by its PID, closes the clients of the test, removes the directories. */
  async stop (): Promise<void> {
    for (const node of this.nodes) {
      await node.kill()
      node.admin?.disconnect()
    }
    await rm(this.#dir, { recursive: true, force: true })
    directories.delete(this.#dir)
  }

  /** The node that replicates `master`. */
  async replicaOf (master: ClusterNodeServer): Promise<ClusterNodeServer> {
    const id = await master.id()
    const line = (await master.admin.cluster('NODES') as string).split('\n').find((entry) => entry.includes(`slave ${id}`))
    if (line === undefined) throw new Error(`no replica of ${master.address}`)
    return this.node(line.split(' ')[1].split('@')[0])
  }

  /**
   * Creates the cluster as an operator does, with `redis-cli --cluster create
   * ... --cluster-replicas 1 --cluster-yes` (redis-cli is beside
   * redis-server), and waits until it is up.
   */
  async #create (bin: string, masters: number): Promise<void> {
    const cli = spawn(join(dirname(bin), 'redis-cli'), [
      '--cluster', 'create', ...this.nodes.map((node) => node.address), '--cluster-replicas', '1', '--cluster-yes'
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    cli.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    cli.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    const [code] = await once(cli, 'exit') as [number | null]
    if (code !== 0) throw new Error(`redis-cli --cluster create failed (${code}): ${output}`)
    await eventually(async () => {
      const replicas = []
      for (const node of this.nodes) {
        if ((await node.admin.info('replication')).includes('role:slave')) replicas.push(node)
      }
      if (replicas.length !== masters) return false
      for (const replica of replicas) {
        if (!(await replica.admin.info('replication')).includes('master_link_status:up')) return false
      }
      return true
    }, 'every replica is in sync', 3000)
    await this.settled()
  }
}

// A child process of a benchmark, spoken to over IPC (bench/run.js, bench/deploy.js).
import { fork, spawn } from 'node:child_process'
import { basename } from 'node:path'

/**
 * Starts `script` with `args`. `request({ cmd, ... })` resolves with the
 * child's reply (the message with the same `id`); `wait(id)` with a message
 * the child sends of itself, also one that came before the wait; `ready`
 * once it sends `{ ready: true }` or `{ id: 'ready' }`. A child that exits
 * rejects everything pending. `raiseFdLimitTo` > 0 starts it through `sh`
 * with that `ulimit -n`.
 */
export function child (script, args, { env = {}, execArgv = [], raiseFdLimitTo = 0, timeout: defaultTimeout = 120_000 } = {}) {
  const options = {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced'
  }
  const proc = raiseFdLimitTo === 0
    ? fork(script, args, { ...options, execArgv })
    : spawn('sh', ['-c', `ulimit -n ${raiseFdLimitTo} && exec "$@"`, 'sh', process.execPath, ...execArgv, script, ...args], options)
  const name = `${basename(script)} ${args.join(' ')}`
  const waiting = new Map()
  const arrived = new Map()
  let lastId = 0
  let failed
  proc.on('message', (message) => {
    const key = message.ready ? 'ready' : message.id
    const pending = waiting.get(key)
    if (pending === undefined) return arrived.set(key, message)
    waiting.delete(key)
    clearTimeout(pending.timer)
    pending.resolve(message)
  })
  proc.on('exit', (code, signal) => {
    failed ??= new Error(`${name} exited (${code ?? signal})`)
    for (const { reject, timer } of waiting.values()) {
      clearTimeout(timer)
      reject(failed)
    }
    waiting.clear()
  })
  const wait = (key, timeout = defaultTimeout) => new Promise((resolve, reject) => {
    if (arrived.has(key)) {
      resolve(arrived.get(key))
      return arrived.delete(key)
    }
    if (failed) return reject(failed)
    const timer = setTimeout(() => {
      waiting.delete(key)
      reject(new Error(`${name}: no answer to ${key} within ${timeout} ms`))
    }, timeout)
    waiting.set(key, { resolve, reject, timer })
  })
  return {
    proc,
    ready: wait('ready', 30_000),
    wait,
    request (message, timeout) {
      const id = ++lastId
      const answer = wait(id, timeout)
      proc.send({ id, ...message })
      return answer
    },
    async stop () {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      const exited = new Promise((resolve) => proc.once('exit', resolve))
      try { proc.send({ cmd: 'exit' }) } catch {}
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
  }
}

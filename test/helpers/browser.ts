import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import type t from 'tap'

type Test = typeof t

export const root = new URL('../..', import.meta.url)

/** Where the browser tests expect Debian's Chromium (`apt-get install chromium`). */
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

export interface Example {
  /** 127.0.0.1:PORT */
  host: string
  port: number
  /** Sends `signal` (SIGTERM) and waits for the process to exit; resolves with its exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

/**
 * Runs an example as a user would (`node example/.../server.js`, built package)
 * on `port` (0: a free one), and resolves once it listens. Stopped at the end of the test.
 */
export async function runExample (test: Test, file: string, port = 0): Promise<Example> {
  if (!existsSync(new URL('dist/esm/index.js', root))) throw new Error('dist/ is missing: run npm run build first')
  // The child runs the built package as a user would, outside the coverage
  // report (tap's process tracking would otherwise count the example's files).
  const env = { ...process.env, PORT: String(port), HOST: '127.0.0.1', _TAPJS_PROCESSINFO_COVERAGE_: '0' }
  delete env.NODE_OPTIONS
  delete env.NODE_V8_COVERAGE
  const child = spawn(process.execPath, [file], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] })
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal)
      await once(child, 'exit')
    }
    return child.exitCode
  }
  test.teardown(async () => { await stop() })
  const listening = await untilListening(child)
  return { host: `127.0.0.1:${listening}`, port: listening, stop }
}

/** The port in the example's "Server listening at" log line; the output keeps being read after it. */
async function untilListening (child: ChildProcess): Promise<number> {
  let output = ''
  return await new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString()
      const match = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
      if (match !== null) {
        output = ''
        child.off('exit', onExit)
        resolve(Number(match[1]))
      }
    }
    const onExit = (): void => reject(new Error(`the example exited before listening:\n${output}`))
    child.stdout?.on('data', onData)
    child.once('exit', onExit)
  })
}

/** The flags the browser tests run Chromium with. */
export const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic']

/**
 * Launches Chromium headless (a fresh temporary profile), closed at the end of
 * the test. `newPage()` opens a page in a context of its own, like a separate
 * person; every wait of its pages is bounded by `timeout` ms.
 */
export async function launch (test: Test, timeout = 5000): Promise<{ browser: Browser, newPage: () => Promise<Page> }> {
  const browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs, timeout: 30000 })
  test.teardown(() => browser.close())
  const newPage = async (): Promise<Page> => {
    const context = await browser.newContext({ viewport: { width: 640, height: 560 } })
    context.setDefaultTimeout(timeout)
    return await context.newPage()
  }
  return { browser, newPage }
}

/** The path of a screenshot of this test, under .tap/ (ignored by git). */
export function screenshotPath (test: Test, name: string): string {
  const dir = new URL('.tap/screenshots/', root)
  mkdirSync(dir, { recursive: true })
  const slug = `${test.name}-${name}`.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')
  return fileURLToPath(new URL(`${slug}.png`, dir))
}

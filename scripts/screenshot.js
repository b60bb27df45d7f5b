// Takes docs/chat.png: the chat example in two browser windows, Ada's and
// Bob's, after a short conversation. Needs Chromium (CHROMIUM_PATH, default
// /usr/bin/chromium). Run after `npm run build`: node scripts/screenshot.js
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync } from 'node:fs'
import { chromium } from 'playwright-core'

const root = new URL('..', import.meta.url)
const output = new URL('docs/chat.png', root)

const env = { ...process.env, PORT: '0', HOST: '127.0.0.1' }
const server = spawn(process.execPath, ['example/chat/server.js'], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] })
let log = ''
const host = await new Promise((resolve, reject) => {
  server.stdout.on('data', (chunk) => {
    log += chunk
    const match = /Server listening at http:\/\/(127\.0\.0\.1:\d+)/.exec(log)
    if (match !== null) resolve(match[1])
  })
  server.once('exit', () => reject(new Error(`the chat example exited:\n${log}`)))
})

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-quic']
})

try {
  const open = async (name) => {
    const context = await browser.newContext({ viewport: { width: 460, height: 640 } })
    context.setDefaultTimeout(5000)
    const page = await context.newPage()
    await page.goto(`http://${host}/`)
    await page.fill('#name', name)
    await page.click('#join button')
    await page.locator('#messages li', { hasText: `Welcome, ${name}!` }).waitFor()
    return page
  }
  const ada = await open('Ada')
  const bob = await open('Bob')
  await ada.locator('#messages li', { hasText: 'Bob joined' }).waitFor()

  const conversation = [
    [bob, 'Hi Ada! Is the new chat live?'],
    [ada, 'It is: every message goes through one WebSocket.'],
    [bob, 'And if the server restarts?'],
    [ada, 'The page reconnects by itself and joins again.'],
    [bob, 'Nice, let me try that.']
  ]
  for (const [page, text] of conversation) {
    await page.fill('#text', text)
    await page.press('#text', 'Enter')
    for (const reader of [ada, bob]) await reader.locator('#messages li', { hasText: text }).waitFor()
  }
  await bob.fill('#text', 'Opening a second tab…')

  // The two windows side by side, on one image.
  const shots = await Promise.all([ada, bob].map(async (page) => (await page.screenshot()).toString('base64')))
  const sheet = await (await browser.newContext({ viewport: { width: 980, height: 680 } })).newPage()
  await sheet.setContent(`<body style="margin:0;padding:20px;background:#cbd5e1;display:flex;gap:20px">
    ${shots.map((shot) => `<img src="data:image/png;base64,${shot}" style="border-radius:10px;box-shadow:0 4px 14px #0003">`).join('')}
  </body>`)
  mkdirSync(new URL('docs/', root), { recursive: true })
  await sheet.screenshot({ path: output.pathname })
  console.log(`wrote ${output.pathname}`)
} finally {
  await browser.close()
  server.kill('SIGTERM')
  await once(server, 'exit')
}

import { existsSync } from 'node:fs'
import t from 'tap'
import type { Page } from 'playwright-core'
import { chromiumPath, launch, runExample, screenshotPath } from './helpers/browser.js'

// The examples, driven in headless Chromium as a person would use them. They
// need Debian's Chromium; without it they are skipped, except on CI.
const missing = existsSync(chromiumPath)
  ? undefined
  : `Chromium is not installed at ${chromiumPath}, so the browser tests cannot run. ` +
    'Install it with `apt-get install chromium` (or set CHROMIUM_PATH to a Chromium binary).'
if (missing !== undefined) {
  if (process.env.CI === 'true') {
    t.fail(`${missing} On CI the browser tests must run.`)
  } else {
    const bar = '!'.repeat(78)
    process.stderr.write(`\n${bar}\n! SKIPPED: the browser tests.\n! ${missing}\n${bar}\n\n`)
  }
}
const options = { skip: missing ?? false }

// Launching Chromium and the example servers takes a few seconds per test.
t.setTimeout(120000)

/** Opens the chat, joins under `name` and waits for the welcome. */
async function join (page: Page, host: string, name: string): Promise<void> {
  await page.goto(`http://${host}/`)
  await page.fill('#name', name)
  await page.click('#join button')
  await notice(page, `Welcome, ${name}!`)
}

/** Waits until the chat shows an entry with this text. */
async function notice (page: Page, text: string): Promise<void> {
  await page.locator('#messages li', { hasText: text }).last().waitFor()
}

async function say (page: Page, text: string): Promise<void> {
  await page.fill('#text', text)
  await page.press('#text', 'Enter')
}

/** The chat as the page shows it: "name: text" for a message, the text of a notice. */
async function transcript (page: Page): Promise<string[]> {
  return await page.$$eval('#messages li', (items) => items.map((item) => item.classList.contains('message')
    ? `${item.querySelector('.name')?.textContent}: ${item.querySelector('.text')?.textContent}`
    : item.textContent ?? ''))
}

t.test('two people chat in the browser: each sees the other join, speak and leave', options, async (t) => {
  const { host } = await runExample(t, 'example/chat/server.js')
  const { newPage } = await launch(t)
  const ada = await newPage()
  const bob = await newPage()

  await join(ada, host, 'Ada')
  await join(bob, host, 'Bob')
  await notice(ada, 'Bob joined')
  t.equal(await bob.textContent('#who'), 'You are Bob. Online: Ada, Bob')
  t.equal(await ada.textContent('#status'), 'Connected')

  await say(bob, 'Hi Ada!')
  await notice(ada, 'Hi Ada!')
  await say(ada, 'Hello Bob, welcome!')
  await notice(bob, 'Hello Bob, welcome!')
  t.same(await transcript(bob), ['Welcome, Bob!', 'Bob: Hi Ada!', 'Ada: Hello Bob, welcome!'])
  t.same(await bob.$$eval('li.message', (items) => items.map((item) => item.classList.contains('mine'))), [true, false],
    'a person\'s own messages are set apart')
  await bob.screenshot({ path: screenshotPath(t, 'bob') })

  await bob.close()
  await notice(ada, 'Bob left')
  t.same(await transcript(ada), ['Welcome, Ada!', 'Bob joined', 'Bob: Hi Ada!', 'Ada: Hello Bob, welcome!', 'Bob left'])
  t.equal(await ada.textContent('#who'), 'You are Ada. Online: Ada')
  await ada.screenshot({ path: screenshotPath(t, 'ada') })
})

t.test('the chat pages reconnect by themselves when the server restarts, and messages go through again', options, async (t) => {
  const server = await runExample(t, 'example/chat/server.js')
  const { newPage } = await launch(t)
  const ada = await newPage()
  const bob = await newPage()
  await join(ada, server.host, 'Ada')
  await join(bob, server.host, 'Bob')
  await notice(ada, 'Bob joined')

  await server.stop()
  for (const page of [ada, bob]) {
    await page.locator('#status[data-state="offline"]').waitFor()
    t.match(await page.textContent('#status'), /^Offline, retrying in \d+ s$/)
    await notice(page, 'Connection lost')
  }

  await runExample(t, 'example/chat/server.js', server.port)
  for (const page of [ada, bob]) {
    // The backoff of the page may have grown while the server was down.
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: 15000 })
    await notice(page, 'Reconnected')
    t.equal(await page.textContent('#status'), 'Connected')
  }
  await say(ada, 'Still there?')
  await notice(bob, 'Still there?')
  t.equal((await transcript(bob)).at(-1), 'Ada: Still there?', 'the name was sent again on reconnection')
  await say(bob, 'Yes!')
  await notice(ada, 'Yes!')
  t.equal((await transcript(ada)).at(-1), 'Bob: Yes!')
  await ada.screenshot({ path: screenshotPath(t, 'ada') })
})

t.test('the dashboard page shows the values the server pushes, and the counters it scrapes from /metrics, updated live', options, async (t) => {
  const { host } = await runExample(t, 'example/dashboard/server.js')
  const { newPage } = await launch(t)
  const page = await newPage()
  await page.goto(`http://${host}/`)
  await page.locator('#status[data-state="connected"]').waitFor()

  const tick = async (): Promise<number> => Number(await page.textContent('#tick'))
  await page.waitForFunction(() => /^\d+$/.test(document.getElementById('tick')?.textContent ?? ''))
  const first = await tick()
  await page.waitForFunction((first) => Number(document.getElementById('tick')?.textContent) > first, first)
  t.ok(await tick() > first, 'the update counter goes up')
  t.equal(await page.textContent('#clients'), '1')
  t.match(await page.textContent('#heapUsed'), /^\d+\.\dMiB$/)
  t.match(await page.textContent('#loopDelay'), /^\d+\.\dms$/)
  const points = await page.$eval('[data-metric="rss"] polyline', (line) => line.getAttribute('points')?.split(' ').length)
  t.ok((points ?? 0) >= 2, 'the sparkline has a point per update')

  // the server's counters, scraped from /metrics by the page
  const counter = async (name: string): Promise<number> => Number(await page.textContent(`#${name}`))
  // the first scrape may come before the page's WebSocket is open: the next ones show it
  await page.waitForFunction(() => document.getElementById('fastify_wss_connections')?.textContent === '1' &&
    document.getElementById('fastify_wss_messages_received_total')?.textContent === '1')
  t.equal(await page.textContent('#fastify_wss_connections'), '1', 'the page\'s own connection')
  t.equal(await counter('fastify_wss_messages_received_total'), 1, 'its subscribe message')
  const sent = await counter('fastify_wss_messages_sent_total')
  await page.waitForFunction((sent) => Number(document.getElementById('fastify_wss_messages_sent_total')?.textContent) > sent, sent)
  t.ok(await counter('fastify_wss_messages_sent_total') > sent, 'messages sent goes up with each update pushed')
  t.match(await page.textContent('#fastify_wss_bytes_sent_total'), /^\d+\.\dKiB$/)
  await page.screenshot({ path: screenshotPath(t, 'dashboard'), fullPage: true })
})

import t from 'tap'
import { start, connect, messages, refusal } from './helpers/index.js'

t.test('the uppercase sample answers in uppercase and refuses a bad token with 403', async (t) => {
  const { base } = await start(t, {
    path: '/upper',
    handler: {
      onConnection (_wss, event) {
        return event.request.query.token === 'ok' ? { onMessage (ws, e) { ws.send(String(e.data).toUpperCase()) } } : null
      }
    }
  })
  const ws = await connect(t, `${base}/upper?token=ok`)
  ws.send('hello')
  t.same(await messages(ws, 1), ['HELLO'])
  t.equal((await refusal(`${base}/upper`)).status, 403)
})

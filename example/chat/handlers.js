// The chat's two handler classes: ChatServer admits connections and reports
// errors, a ChatConnection per client validates what it says and passes it on.
// Everyone who has joined is subscribed to one topic, the room.
import { ErrCode } from 'fastify-wss'

export const MAX_NAME = 32
export const MAX_TEXT = 500
const ROOM = 'room'

/** A chat entry as every client receives it. */
function entry (type, name, text, extra) {
  return { type, name, text, at: new Date().toISOString(), ...extra }
}

/** The trimmed string when it is a string of 1 to `max` characters, else undefined. */
function clean (value, max) {
  if (typeof value !== 'string') return undefined
  const trimmed = value.trim()
  return trimmed.length > 0 && trimmed.length <= max ? trimmed : undefined
}

export class ChatConnection {
  name = undefined

  onMessage (ws, { data }) {
    if (data?.type === 'join') this.join(ws, clean(data.name, MAX_NAME))
    else if (data?.type === 'message') this.say(ws, clean(data.text, MAX_TEXT))
    else this.refuse(ws, 'Send { "type": "join", "name" } first, then { "type": "message", "text" }.')
  }

  join (ws, name) {
    if (this.name !== undefined) return this.refuse(ws, `You have already joined as ${this.name}.`)
    if (name === undefined) return this.refuse(ws, `A name is 1 to ${MAX_NAME} characters.`)
    this.name = name
    const users = ws.wss.connections.map((client) => client.handler.name).filter((user) => user !== undefined)
    ws.send(entry('welcome', name, `Welcome, ${name}!`, { users }))
    ws.subscribe(ROOM)
    ws.wss.publish(ROOM, entry('join', name), { except: ws })
  }

  say (ws, text) {
    if (this.name === undefined) return this.refuse(ws, 'Join with a name first.')
    if (text === undefined) return this.refuse(ws, `A message is 1 to ${MAX_TEXT} characters.`)
    ws.wss.publish(ROOM, entry('message', this.name, text))
  }

  refuse (ws, text) {
    ws.send(entry('error', this.name, text))
  }

  onTerminate (ws) {
    if (this.name !== undefined) ws.wss.publish(ROOM, entry('leave', this.name))
  }
}

export class ChatServer {
  constructor (log) {
    this.log = log
  }

  onConnection () {
    return new ChatConnection()
  }

  onError (wss, { errors, connection }) {
    const [{ errCode, message, error }] = errors
    if (errCode === ErrCode.INVALID_JSON && connection !== undefined) {
      connection.handler.refuse(connection, 'A message is a JSON object.')
    } else {
      this.log.error({ err: error, errCode }, message)
    }
  }
}

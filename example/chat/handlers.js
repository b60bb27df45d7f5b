// The chat's protocol as schemas, and its two handler classes: ChatServer
// admits connections and answers what the schema refused, a ChatConnection
// per client passes on what it says. Everyone who has joined is subscribed to
// one topic, the room.
import { ErrCode } from 'fastify-wss'

export const MAX_NAME = 32
export const MAX_TEXT = 500
const ROOM = 'room'

/**
 * What the chat sends and receives: the `schema` option. A message that does
 * not match `message` never reaches onMessage (errCode 301); every entry is
 * serialised by `send`.
 */
export const schema = {
  message: {
    type: 'object',
    // with the app's Ajv option `discriminator: true`, a failure names the branch of `type` only
    discriminator: { propertyName: 'type' },
    oneOf: [
      {
        type: 'object',
        properties: { type: { const: 'join' }, name: { type: 'string', minLength: 1, maxLength: MAX_NAME, pattern: '\\S' } },
        required: ['type', 'name']
      },
      {
        type: 'object',
        properties: { type: { const: 'message' }, text: { type: 'string', minLength: 1, maxLength: MAX_TEXT, pattern: '\\S' } },
        required: ['type', 'text']
      }
    ]
  },
  send: {
    type: 'object',
    properties: {
      type: { enum: ['welcome', 'join', 'message', 'leave', 'error'] },
      name: { type: 'string' },
      text: { type: 'string' },
      at: { type: 'string' },
      users: { type: 'array', items: { type: 'string' } }
    },
    required: ['type', 'at']
  }
}

/** A chat entry as every client receives it. */
function entry (type, name, text, extra) {
  return { type, name, text, at: new Date().toISOString(), ...extra }
}

/** What a client is told when its message does not match the schema, by the first failing path. */
const refusals = {
  '/name': `A name is 1 to ${MAX_NAME} characters.`,
  '/text': `A message is 1 to ${MAX_TEXT} characters.`
}
const protocol = 'Send { "type": "join", "name" } first, then { "type": "message", "text" }.'

export class ChatConnection {
  name = undefined

  // Only messages that match schema.message arrive here.
  onMessage (ws, { data }) {
    if (data.type === 'join') this.join(ws, data.name.trim())
    else this.say(ws, data.text.trim())
  }

  join (ws, name) {
    if (this.name !== undefined) return this.refuse(ws, `You have already joined as ${this.name}.`)
    this.name = name
    const users = ws.wss.connections.map((client) => client.handler.name).filter((user) => user !== undefined)
    ws.send(entry('welcome', name, `Welcome, ${name}!`, { users }))
    ws.subscribe(ROOM)
    ws.wss.publish(ROOM, entry('join', name), { except: ws })
  }

  say (ws, text) {
    if (this.name === undefined) return this.refuse(ws, 'Join with a name first.')
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
    } else if (errCode === ErrCode.INVALID_MESSAGE && connection !== undefined) {
      const [failure] = error.validation
      connection.handler.refuse(connection, refusals[failure.instancePath] ?? protocol)
    } else {
      this.log.error({ err: error, errCode }, message)
    }
  }
}

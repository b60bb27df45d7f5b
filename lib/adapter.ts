/**
 * The contract between a WebSocketServer and a cluster adapter (such as
 * `fastify-wss/redis`), which carries `broadcast` and `publish` to the
 * other nodes of the cluster.
 */

/** A message as it travels between nodes: already encoded, not yet framed. */
export interface ClusterMessage {
  /** The topic of a `publish`; `undefined` for a `broadcast`. */
  topic: string | undefined
  /** The encoded message. */
  payload: Buffer
  /** Whether it goes out as a binary frame (else text). */
  binary: boolean
}

/** What the server gives its adapter. */
export interface AdapterNode {
  /**
   * The server's full route pattern, prefix of its Fastify context included
   * (`/api/chat/:room`; `/*` for a catch-all server at the root, `/api/*` in
   * a context with prefix `/api`). Unique among the servers of one app, the
   * same for the same server on every node: an adapter names its channels
   * from it, so that two servers of one app never share messages.
   */
  readonly route: string
  /** Delivers a message that another node published to the local connections. */
  deliver (message: ClusterMessage): void
  /**
   * Reports to the server handler's onError: a failure of the adapter
   * (errCode 500, the default), the end of an outage during which messages
   * could not be sent to the other nodes (errCode 501), messages of other
   * nodes missed (errCode 502) or messages of this node dropped (errCode 503).
   */
  fail (error: unknown, errCode?: 500 | 501 | 502 | 503): void
}

/** A cluster adapter. Every method may be called before `open` has settled. */
export interface WssAdapter {
  /** Called once when the Fastify instance is ready; the app waits for it. */
  open (node: AdapterNode): Promise<void> | void
  /** Sends a local `broadcast` or `publish` to the other nodes. Must not throw: report failures through `node.fail`. */
  publish (message: ClusterMessage): void
  /** The first local connection subscribed to `topic`. */
  subscribe (topic: string): void
  /** The last local subscriber of `topic` left. */
  unsubscribe (topic: string): void
  /** Called once when the server terminates, after every connection has closed. */
  close (): Promise<void> | void
}

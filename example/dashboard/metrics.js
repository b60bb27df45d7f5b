// Prometheus metrics of a fastify-wss server, read from wss.stats() when
// /metrics is scraped: nothing is counted twice, and the message path pays
// nothing for them. Copy it into your app (npm install prom-client).
import client from 'prom-client'

/**
 * Declares the fastify_wss_* metrics of `wss` in `registry`, collected from
 * `wss.stats()` at each scrape. For several servers in one process, add a
 * `path` label (wss.path) instead of registering these names twice.
 */
export function wssMetrics (wss, registry) {
  const counter = (name, help, value) => new client.Counter({
    name,
    help,
    registers: [registry],
    collect () {
      this.reset()
      this.inc(value(wss.stats()))
    }
  })
  // A counter with one label, set from a keyed counter of stats() ({ 403: 2, 503: 1 }).
  const keyed = (name, help, label, value) => new client.Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect () {
      this.reset()
      for (const [key, count] of Object.entries(value(wss.stats()))) this.inc({ [label]: key }, count)
    }
  })

  new client.Gauge({ // eslint-disable-line no-new
    name: 'fastify_wss_connections',
    help: 'WebSocket connections open now (Connected or Closing).',
    registers: [registry],
    collect () { this.set(wss.stats().connections) }
  })
  counter('fastify_wss_connections_accepted_total', 'WebSocket upgrades accepted (101 sent, a connection made).', (s) => s.accepted)
  keyed('fastify_wss_refused_total', 'WebSocket upgrade requests refused with an HTTP status instead of 101, by status.', 'status', (s) => s.refused)
  keyed('fastify_wss_closed_total', 'WebSocket connections closed, by close code.', 'code', (s) => s.closed)
  counter('fastify_wss_messages_received_total', 'WebSocket messages received from clients.', (s) => s.messagesIn)
  counter('fastify_wss_messages_sent_total', 'WebSocket messages sent to clients (a broadcast counts once per recipient).', (s) => s.messagesOut)
  counter('fastify_wss_bytes_received_total', 'Payload bytes of the WebSocket messages received.', (s) => s.bytesIn)
  counter('fastify_wss_bytes_sent_total', 'Payload bytes of the WebSocket messages sent, once per recipient.', (s) => s.bytesOut)
  counter('fastify_wss_dropped_total', 'WebSocket connections dropped because their client read too slowly (maxBackpressure).', (s) => s.dropped)
  counter('fastify_wss_rate_limited_total', 'Times a WebSocket connection reached its rateLimit in a window.', (s) => s.rateLimited)
  keyed('fastify_wss_errors_total', 'Errors reported by fastify-wss, by errCode.', 'errcode', (s) => s.errors)
}

/** Serves `registry` at GET /metrics in the Prometheus text format. */
export function metricsRoute (app, registry) {
  app.get('/metrics', async (request, reply) => {
    reply.type(registry.contentType)
    return await registry.metrics()
  })
}

// Tables and chart of bench/scale.js's results: Markdown, and a hand-made SVG.

const fmt = (value, digits = 2) => {
  if (value === undefined || Number.isNaN(value)) return '–'
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US')
  return value.toFixed(digits)
}
const range = (stat, digits) => stat === undefined
  ? '–'
  : stat.min === stat.max
    ? fmt(stat.median, digits)
    : `${fmt(stat.median, digits)} (${fmt(stat.min, digits)}–${fmt(stat.max, digits)})`
/** What stands for the figures of a setup that has none. */
const status = (row) => row?.failed !== undefined ? 'failed' : 'not available'
const pair = (a, b) => a === undefined ? '–' : `${fmt(a.median)} / ${fmt(b?.median)}`

/** The results as Markdown: one row per setup, then the comparisons with socket.io and between shard counts. */
export function renderScaleMarkdown (results) {
  const { settings, machine } = results
  const out = []
  out.push(`Three nodes, ${settings.clients} clients (${settings.clients / settings.nodes} per node), ${settings.topics.length} topics, ` +
    `${settings.SECONDS} s windows, ${settings.ROUNDS} round(s): medians (min–max). ` +
    `${machine.cpus} × ${machine.cpu}, Node.js ${machine.node}, Redis ${machine.redis}; \`${results.command}\`, ${results.seconds} s.`, '')
  out.push('| setup | deliveries/s | server CPU µs per delivery | deliveries per server CPU second | Redis CPU µs per delivery | latency p50 / p99, ms | under load p50 / p99, ms |')
  out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const row of results.rows) {
    if (row.unavailable !== undefined || row.failed !== undefined) {
      out.push(`| ${row.name} | ${status(row)} | – | – | – | – | – |`)
      continue
    }
    out.push(`| ${row.name} | ${range(row.rate, 0)} | ${range(row.cost, 2)} | ${range(row.perCpuSecond, 0)} | ${range(row.redisCost, 2)} | ` +
      `${pair(row.p50, row.p99)} | ${pair(row.loadedP50, row.loadedP99)} |`)
  }
  out.push('')
  if (results.comparisons.length) {
    out.push('fastify-wss against socket.io with the adapter of the same kind: deliveries per server CPU second (medians), fastify-wss ÷ socket.io:', '')
    out.push('| adapter kind | fastify-wss | socket.io | ratio | target | met |', '| --- | ---: | ---: | ---: | ---: | --- |')
    const row = (key) => results.rows.find((r) => r.key === key)
    const name = (key) => row(key)?.name ?? key
    const value = (key, figure) => figure === undefined ? status(row(key)) : fmt(figure, 0)
    for (const c of results.comparisons) {
      const ours = value(c.ours, c.oursValue)
      const theirs = value(c.theirs, c.theirsValue)
      out.push(`| ${c.name}: ${name(c.ours)} against ${name(c.theirs)} | ${ours} | ${theirs} | ${c.ratio === undefined ? '–' : `${c.ratio.toFixed(2)} ×`} | ≥ ${c.target} × | ` +
        `${c.met === undefined ? '–' : c.met ? 'yes' : 'no'} |`)
    }
    out.push('')
  }
  if (results.shards) {
    const s = results.shards
    out.push('fastify-wss on a Redis Cluster, 3 shards against 1 (medians):', '')
    out.push('| figure | 1 shard | 3 shards | 3 ÷ 1 |', '| --- | ---: | ---: | ---: |')
    const line = (label, figure, digits) => out.push(`| ${label} | ${fmt(figure.one, digits)} | ${fmt(figure.three, digits)} | ${figure.ratio === undefined ? '–' : figure.ratio.toFixed(2)} |`)
    line('deliveries/s', s.rate, 0)
    line('server CPU µs per delivery', s.cost, 2)
    line('Redis CPU µs per delivery', s.redisCost, 2)
    line('latency p99 under load, ms', s.loadedP99, 2)
    const channels = results.rows.find((r) => r.key === 'cluster-3')?.shardChannels
    if (channels) out.push('', `Sharded channels per master of the 3-shard cluster (PUBSUB SHARDCHANNELS): ${channels.join(', ')}.`)
    out.push('')
  }
  const missing = results.rows.filter((r) => r.unavailable !== undefined || r.failed !== undefined)
  if (missing.length || results.notes.length) {
    out.push('Notes:', '')
    for (const row of missing) {
      if (row.unavailable !== undefined) out.push(`- ${row.name}: not available: ${row.unavailable}`)
    }
    for (const note of results.notes) out.push(`- ${note}`)
    out.push('')
  }
  return out.join('\n')
}

const colors = { 'fastify-wss': '#1f6feb', 'socket.io': '#d4a72c' }
const groups = [
  { name: 'Pub/Sub', keys: ['pubsub', 'sio-redis'] },
  { name: 'durable / Streams', keys: ['durable', 'sio-streams'] },
  { name: 'Redis Cluster', keys: ['cluster-1', 'cluster-3'] }
]
const escape = (text) => String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** Horizontal bars, one group per adapter kind: deliveries per server CPU second of each setup (higher is better). */
export function renderScaleChart (results) {
  const rows = new Map(results.rows.map((r) => [r.key, r]))
  const bar = 16
  const gap = 14
  const left = 300
  const width = 800
  const plot = width - left - 90
  const top = 58
  const max = Math.max(1, ...results.rows.map((r) => r.perCpuSecond?.median ?? 0)) * 1.05
  const scale = (value) => (value / max) * plot
  const out = []
  let y = top
  for (const group of groups) {
    const keys = group.keys.filter((key) => rows.has(key))
    if (keys.length === 0) continue
    out.push(`<text x="8" y="${y + 10}" font-weight="600">${escape(group.name)}</text>`)
    y += 16
    for (const key of keys) {
      const row = rows.get(key)
      const color = colors[key.startsWith('sio') ? 'socket.io' : 'fastify-wss']
      out.push(`<text x="${left - 8}" y="${y + bar - 4}" text-anchor="end">${escape(row.name)}</text>`)
      const value = row.perCpuSecond?.median
      if (value === undefined) {
        out.push(`<text x="${left + 4}" y="${y + bar - 4}" class="v">${status(row)}</text>`)
      } else {
        out.push(`<rect x="${left}" y="${y}" width="${scale(value).toFixed(1)}" height="${bar - 3}" fill="${color}"><title>${escape(row.name)}: ${fmt(value, 0)}</title></rect>`)
        out.push(`<text x="${(left + scale(value) + 4).toFixed(1)}" y="${y + bar - 4}" class="v">${fmt(value, 0)}</text>`)
      }
      y += bar
    }
    const comparison = results.comparisons?.find((c) => c.ours === keys[0] && c.ratio !== undefined)
    if (comparison) {
      out.push(`<text x="${left}" y="${y + 11}" class="v">fastify-wss ÷ socket.io: ${comparison.ratio.toFixed(2)} × (target ≥ ${comparison.target} ×)</text>`)
      y += 12
    }
    if (group.name === 'Redis Cluster' && results.shards?.rate.ratio !== undefined) {
      out.push(`<text x="${left}" y="${y + 11}" class="v">deliveries/s, 3 shards ÷ 1: ${results.shards.rate.ratio.toFixed(2)}</text>`)
      y += 12
    }
    y += gap
  }
  const bottom = y
  const grid = []
  const step = 10 ** Math.floor(Math.log10(max / 2))
  const tick = max / step > 10 ? step * 2 : step
  for (let value = 0; value <= max; value += tick) {
    const x = left + scale(value)
    grid.push(`<line x1="${x.toFixed(1)}" y1="${top - 6}" x2="${x.toFixed(1)}" y2="${bottom - gap + 4}" stroke="#d0d7de"/>`)
    grid.push(`<text x="${x.toFixed(1)}" y="${bottom + 8}" text-anchor="middle" class="v">${fmt(value, 0)}</text>`)
  }
  let lx = left
  const legend = Object.entries(colors).map(([server, color]) => {
    const item = `<rect x="${lx}" y="${bottom + 22}" width="12" height="12" fill="${color}"/><text x="${lx + 16}" y="${bottom + 32}">${escape(server)}</text>`
    lx += 30 + server.length * 7
    return item
  })
  const { machine, settings } = results
  const height = bottom + 50
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">
<style>.v { font-size: 10px; fill: #57606a }</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="8" y="20" font-size="14" font-weight="600">Deliveries per server CPU second, three nodes over Redis (higher is better)</text>
<text x="8" y="38" class="v">${settings.clients} clients, ${settings.topics.length} topics, cross-node publish; medians of ${settings.ROUNDS} round(s); ${escape(machine.cpus)} × ${escape(machine.cpu)}, Node ${escape(machine.node)}, Redis ${escape(machine.redis)}</text>
${grid.join('\n')}
${out.join('\n')}
${legend.join('\n')}
</svg>
`
}

// Tables and chart of bench/run.js's results: Markdown, and a hand-made SVG.

const labels = {
  'echo ping-pong': 'echo, ping-pong (1 in flight)',
  'echo pipelined': 'echo, pipelined (16 in flight)',
  broadcast: 'broadcast (per delivery)',
  'object echo': 'object echo (JSON, 16 in flight)',
  handshake: 'handshake',
  memory: 'memory per idle connection',
  'echo pipelined, no bufferutil': 'echo, pipelined, no bufferutil',
  'broadcast, no bufferutil': 'broadcast, no bufferutil'
}
const label = (name) => labels[name] ?? name

const fmt = (value, digits = 2) => {
  if (value === undefined || Number.isNaN(value)) return '–'
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US')
  return value.toFixed(digits)
}
const range = (stat, digits) => stat === undefined
  ? '–'
  : `${fmt(stat.median, digits)} (${fmt(stat.min, digits)}–${fmt(stat.max, digits)})`

/** The results as Markdown: one table per measure, then the targets. */
export function renderMarkdown (results) {
  const out = []
  for (const row of results.rows) {
    out.push(`### ${label(row.name)}`, '')
    const entries = Object.entries(row.variants)
    if (row.name === 'memory') {
      out.push('| server | RSS per connection, bytes | ratio to ws | JS heap per connection, bytes | external per connection, bytes |')
      out.push('| --- | ---: | ---: | ---: | ---: |')
      for (const [variant, s] of entries) {
        out.push(`| ${variant} | ${range(s.cost, 0)} | ${fmt(s.ratio)} | ${range(s.heap, 0)} | ${range(s.external, 0)} |`)
      }
    } else {
      const latency = entries.some(([, s]) => s.p50)
      const rateName = row.name === 'handshake' ? 'handshakes/s' : row.name.startsWith('broadcast') ? 'deliveries/s' : 'messages/s'
      const head = [`| server | ${rateName} | server CPU µs per ${row.name === 'handshake' ? 'handshake' : row.name.startsWith('broadcast') ? 'delivery' : 'message'} | ratio to ws |`]
      const align = ['| --- | ---: | ---: | ---: |']
      if (latency) { head.push(' latency p50, ms | latency p99, ms |'); align.push(' ---: | ---: |') }
      if (row.name.startsWith('broadcast')) { head.push(' all delivered in, ms |'); align.push(' ---: |') }
      out.push(head.join(''), align.join(''))
      for (const [variant, s] of entries) {
        let line = `| ${variant} | ${range(s.rate, 0)} | ${range(s.cost, 3)} | ${fmt(s.ratio)} |`
        if (latency) line += ` ${range(s.p50, 2)} | ${range(s.p99, 2)} |`
        if (row.name.startsWith('broadcast')) line += ` ${range(s.ms, 0)} |`
        out.push(line)
      }
    }
    out.push('')
  }
  if (results.targets.length) {
    out.push('### Targets (fastify-wss server cost ÷ the other server\'s, medians)', '')
    out.push('| measure | against | target | measured | met |', '| --- | --- | ---: | ---: | --- |')
    for (const t of results.targets) {
      out.push(`| ${label(t.name)} | ${t.against} | ≤ ${t.max} | ${t.ratio.toFixed(2)} | ${t.met ? 'yes' : 'no'} |`)
    }
    out.push('')
  }
  if (results.notes.length) {
    out.push('Notes:', '', ...results.notes.map((n) => `- ${n}`), '')
  }
  return out.join('\n')
}

const colors = { 'fastify-wss': '#1f6feb', ws: '#6e7781', '@fastify/websocket': '#2da44e', 'socket.io': '#d4a72c' }
const escape = (text) => String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/**
 * Horizontal bars, one group per measure, one bar per server: its server CPU
 * per operation (RSS per connection for memory) divided by raw ws's.
 */
export function renderChart (results) {
  const rows = results.rows.filter((r) => Object.values(r.variants).some((s) => s.ratio !== undefined))
  const variants = [...new Set(rows.flatMap((r) => Object.keys(r.variants)))]
  const bar = 14
  const gap = 12
  const left = 230
  const width = 760
  const plot = width - left - 70
  const top = 58
  const max = Math.max(1.5, ...rows.flatMap((r) => Object.values(r.variants).map((s) => s.ratio ?? 0)))
  const scale = (ratio) => (Math.min(ratio, max) / max) * plot
  const out = []
  let y = top
  for (const row of rows) {
    const entries = variants.filter((v) => row.variants[v]?.ratio !== undefined)
    const height = entries.length * bar
    out.push(`<text x="${left - 10}" y="${y + height / 2 + 4}" text-anchor="end">${escape(label(row.name))}</text>`)
    for (const variant of entries) {
      const ratio = row.variants[variant].ratio
      out.push(`<rect x="${left}" y="${y}" width="${scale(ratio).toFixed(1)}" height="${bar - 2}" fill="${colors[variant] ?? '#999'}"><title>${escape(variant)}: ${ratio.toFixed(2)}</title></rect>`)
      out.push(`<text x="${(left + scale(ratio) + 4).toFixed(1)}" y="${y + bar - 4}" class="v">${ratio.toFixed(2)}</text>`)
      y += bar
    }
    y += gap
  }
  const bottom = y
  const grid = []
  for (let tick = 0; tick <= max + 1e-9; tick += max > 4 ? 1 : 0.5) {
    const x = left + scale(tick)
    grid.push(`<line x1="${x.toFixed(1)}" y1="${top - 6}" x2="${x.toFixed(1)}" y2="${bottom - gap + 4}" stroke="${tick === 1 ? '#24292f' : '#d0d7de'}"${tick === 1 ? ' stroke-dasharray="4 3"' : ''}/>`)
    grid.push(`<text x="${x.toFixed(1)}" y="${bottom + 8}" text-anchor="middle" class="v">${tick.toFixed(1)}</text>`)
  }
  let lx = left
  const legend = variants.map((variant) => {
    const item = `<rect x="${lx}" y="${bottom + 22}" width="12" height="12" fill="${colors[variant] ?? '#999'}"/><text x="${lx + 16}" y="${bottom + 32}">${escape(variant)}</text>`
    lx += 30 + variant.length * 7
    return item
  })
  const { machine } = results
  const height = bottom + 50
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">
<style>.v { font-size: 10px; fill: #57606a }</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="${left}" y="20" font-size="14" font-weight="600">Server CPU per operation, relative to raw ws (lower is better)</text>
<text x="${left}" y="38" class="v">memory: RSS per idle connection. Medians of ${results.settings.rounds} rounds; ${escape(machine.cpus)} × ${escape(machine.cpu)}, Node ${escape(machine.node)}</text>
${grid.join('\n')}
${out.join('\n')}
${legend.join('\n')}
</svg>
`
}

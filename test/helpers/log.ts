import { Writable } from 'node:stream'

/** One JSON log line as pino writes it. */
export type LogLine = Record<string, any>

/** A pino destination that keeps every line, and lets a test wait for one. */
export interface LogCapture {
  /** Pass as `Fastify({ logger: { level, stream } })`. */
  stream: Writable
  /** Every line written so far, parsed. */
  lines: LogLine[]
  /** Resolves with the first line (already written or to come) that matches. */
  next (match: (line: LogLine) => boolean): Promise<LogLine>
}

/** A fresh log capture. */
export function captureLog (): LogCapture {
  const lines: LogLine[] = []
  const waiters: Array<{ match: (line: LogLine) => boolean, resolve: (line: LogLine) => void }> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString().split('\n')) {
        if (text === '') continue
        const line = JSON.parse(text) as LogLine
        lines.push(line)
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (waiters[i].match(line)) waiters.splice(i, 1)[0].resolve(line)
        }
      }
      callback()
    }
  })
  return {
    stream,
    lines,
    next (match) {
      const found = lines.find(match)
      if (found !== undefined) return Promise.resolve(found)
      return new Promise((resolve) => { waiters.push({ match, resolve }) })
    }
  }
}

// Reads the fenced code blocks of a Markdown file, with the directives that
// HTML comments (invisible once rendered) give them:
//
//   <!-- snippet: skip -->      before a block: not checked (not code)
//   <!-- snippet: run -->       before a TypeScript block: also run
//   <!-- snippet: parse -->     before a JavaScript block: only parsed, not run
//   <!-- snippet: before        before a block: code placed before it, for
//   ...code...                  what the block takes from its context
//   -->                         (imports, the app, your own code)
//   <!-- snippet: after         right after a block: code placed after it
//   ...code...                  (checks of a program that runs, closing it)
//   -->
//
// Only blank lines may separate these comments from their block.

export type Language = 'ts' | 'js' | 'other'

export interface Snippet {
  /** The line of the opening fence, from 1. */
  line: number
  /** The info string of the fence: `ts`, `js`, `sh`, ... ('' when none). */
  info: string
  language: Language
  /** The code of the block, as the reader sees it. */
  code: string
  before: string
  after: string
  skip: boolean
  run: boolean
  parse: boolean
}

const languages: Record<string, Language> = { ts: 'ts', typescript: 'ts', js: 'js', javascript: 'js' }

/** The directive of an HTML comment starting at `lines[i]`, with its body and the line after it; null if none. */
function directive (lines: string[], i: number): { name: string, body: string, next: number } | null {
  const open = /^<!--\s*snippet:\s*(\w+)\s*(-->)?\s*$/.exec(lines[i])
  if (open === null) return null
  if (open[2] !== undefined) return { name: open[1], body: '', next: i + 1 }
  const end = lines.indexOf('-->', i + 1)
  if (end === -1) throw new Error(`line ${i + 1}: a snippet comment that is never closed with a line "-->"`)
  return { name: open[1], body: lines.slice(i + 1, end).join('\n'), next: end + 1 }
}

/** The fenced code blocks of `markdown`, in order. */
export function snippets (markdown: string): Snippet[] {
  const lines = markdown.split(/\r?\n/)
  const result: Snippet[] = []
  let pending: Array<{ name: string, body: string, line: number }> = []
  for (let i = 0; i < lines.length;) {
    const found = directive(lines, i)
    if (found !== null) {
      pending.push({ name: found.name, body: found.body, line: i + 1 })
      i = found.next
      continue
    }
    const fence = /^(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i])
    if (fence === null) {
      if (lines[i].trim() !== '' && pending.length !== 0) {
        throw new Error(`line ${pending[0].line}: a snippet comment that no code block follows`)
      }
      i++
      continue
    }
    const close = lines.findIndex((text, j) => j > i && text.startsWith(fence[1]) && text.trim() === fence[1])
    if (close === -1) throw new Error(`line ${i + 1}: a code block that is never closed`)
    const info = fence[2]
    const snippet: Snippet = {
      line: i + 1,
      info,
      language: languages[info] ?? 'other',
      code: lines.slice(i + 1, close).join('\n'),
      before: '',
      after: '',
      skip: false,
      run: false,
      parse: false
    }
    for (const { name, body, line } of pending) {
      if (name === 'skip' || name === 'run' || name === 'parse') snippet[name] = true
      else if (name === 'before') snippet.before = body
      else throw new Error(`line ${line}: unknown snippet directive "${name}" before a code block`)
    }
    pending = []
    i = close + 1
    // an `after` comment right after the block (blank lines between allowed)
    let j = i
    while (j < lines.length && lines[j].trim() === '') j++
    const after = j < lines.length ? directive(lines, j) : null
    if (after?.name === 'after') {
      snippet.after = after.body
      i = after.next
    }
    result.push(snippet)
  }
  if (pending.length !== 0) throw new Error(`line ${pending[0].line}: a snippet comment that no code block follows`)
  return result
}

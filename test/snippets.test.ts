// The reader of README code blocks (test/helpers/snippets.ts) that
// test/readme.test.ts relies on.
import t from 'tap'
import { snippets } from './helpers/snippets.js'

const fence = '```'

t.test('snippets reads each fenced block with its language, line and code', async (t) => {
  const blocks = snippets(['# Title', '', `${fence}ts`, 'const a = 1', `${fence}`, '', `${fence}sh`, 'npm i', `${fence}`, `${fence}`, 'plain', `${fence}`].join('\n'))
  t.same(blocks.map(({ line, info, language, code }) => ({ line, info, language, code })), [
    { line: 3, info: 'ts', language: 'ts', code: 'const a = 1' },
    { line: 7, info: 'sh', language: 'other', code: 'npm i' },
    { line: 10, info: '', language: 'other', code: 'plain' }
  ])
})

t.test('snippet comments set skip, run, parse and the hidden code before and after a block', async (t) => {
  const [first, second] = snippets([
    '<!-- snippet: run -->',
    '<!-- snippet: before',
    "import x from 'x'",
    'const y = 2',
    '-->',
    '',
    `${fence}typescript`,
    'x(y)',
    `${fence}`,
    '',
    '<!-- snippet: after',
    'check()',
    '-->',
    'Some text.',
    '<!-- snippet: skip -->',
    '<!-- snippet: parse -->',
    `${fence}js`,
    'pseudo code',
    `${fence}`
  ].join('\n'))
  t.match(first, { line: 7, language: 'ts', code: 'x(y)', before: "import x from 'x'\nconst y = 2", after: 'check()', run: true, skip: false, parse: false })
  t.match(second, { line: 17, language: 'js', before: '', after: '', run: false, skip: true, parse: true })
})

t.test('snippets rejects an unknown directive, a comment without its block, and an unclosed block or comment', async (t) => {
  t.throws(() => snippets(`<!-- snippet: runn -->\n${fence}ts\nx\n${fence}`), /line 1: unknown snippet directive "runn"/)
  t.throws(() => snippets('<!-- snippet: skip -->\nSome text.'), /line 1: a snippet comment that no code block follows/)
  t.throws(() => snippets('<!-- snippet: skip -->'), /line 1: a snippet comment that no code block follows/)
  t.throws(() => snippets(`text\n${fence}ts\nx`), /line 2: a code block that is never closed/)
  t.throws(() => snippets('<!-- snippet: before\nx'), /line 1: a snippet comment that is never closed/)
})

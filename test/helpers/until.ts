/**
 * Waits until `predicate()` is true, checking every few milliseconds.
 * For waiting on a state only, never for asserting timing: it rejects after
 * `limit` checks so that a test cannot hang.
 */
export async function until (predicate: () => boolean, what: string, limit = 1000): Promise<void> {
  for (let i = 0; i < limit; i++) {
    if (predicate()) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error(`gave up waiting until ${what}`)
}

/** Lets the event loop turn `turns` times (setImmediate), so pending I/O and callbacks run. */
export async function turns (count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve))
}

// What the soak and fuzz scripts share.

/** A positive integer from the environment, or `fallback`; exits with 2 on a bad value. */
export function positive (name, fallback) {
  const value = process.env[name] === undefined ? fallback : Number(process.env[name])
  if (!Number.isSafeInteger(value) || value <= 0) {
    console.error(`${name} must be a positive integer`)
    process.exit(2)
  }
  return value
}

/** Records every uncaught exception and unhandled rejection of the process: each one is a crash. */
export function recordCrashes () {
  const crashes = []
  process.on('uncaughtException', (err) => { crashes.push(`uncaughtException: ${err?.stack ?? err}`) })
  process.on('unhandledRejection', (err) => { crashes.push(`unhandledRejection: ${err?.stack ?? err}`) })
  return crashes
}

import type { FastifyInstance } from 'fastify'
import { WssInvalidMessageError, WssInvalidOptionError } from './errors.js'

/** The `schema` option: JSON Schemas (or what the app's compilers take) of the messages of a `dataType: 'object'` server. */
export interface MessageSchemas {
  /** What every incoming message must match; one that does not is reported (errCode 301), not delivered. */
  message?: unknown
  /** What `send`, `broadcast` and `publish` serialise objects with, through the app's serializer compiler. */
  send?: unknown
}

/** Checks a parsed message: returns the value to deliver, or throws `FST_WSS_INVALID_MESSAGE`. */
export type Check = (value: unknown) => unknown

/** Serialises a value to JSON text; throws what the serializer throws. */
export type Serialize = (value: unknown) => string

/** One failure as Ajv (and most compilers) report it. */
interface Failure {
  instancePath?: string
  message?: string
}

/** What a validator compiler returns: Ajv's boolean with `.errors`, or `{ value }` / `{ error }` as custom compilers do. */
type Validator = ((value: unknown) => unknown) & { errors?: Failure[] | null }
type ValidatorCompiler = (route: { schema: unknown, method: string, url: string, httpPart: string }) => Validator
type SerializerCompiler = (route: { schema: unknown, method: string, url: string, httpStatus: string }) => Serialize

interface SchemaController {
  setupValidator (options: unknown): void
  setupSerializer (options: unknown): void
  validatorCompiler: ValidatorCompiler
  serializerCompiler: SerializerCompiler
}

/**
 * A value Fastify keeps under one of its own symbols, found by the symbol's
 * description on the instance or one of its parents.
 */
function internal<T> (fastify: FastifyInstance, description: string): T {
  let owner: object = fastify
  let symbol: symbol | undefined
  while ((symbol = Object.getOwnPropertySymbols(owner).find((s) => s.description === description)) === undefined) {
    owner = Object.getPrototypeOf(owner)
  }
  return (fastify as unknown as Record<symbol, T>)[symbol]
}

/**
 * Compiles `schema.message` and `schema.send` the way Fastify compiles a
 * route's schemas in this context: with its validator and serializer
 * compilers, set up from the app's `ajv` and `serializerOpts` options, its
 * shared schemas (`addSchema`), or the compilers set with
 * `setValidatorCompiler` / `setSerializerCompiler` (as type providers for
 * Zod do). Throws `FST_WSS_INVALID_OPTION` naming the schema that does not
 * compile.
 */
export function compileSchemas (fastify: FastifyInstance, schemas: MessageSchemas, url: string): { check: Check | undefined, serialize: Serialize | undefined } {
  const controller = internal<SchemaController>(fastify, 'fastify.schemaController')
  const options = internal<unknown>(fastify, 'fastify.options')
  let check: Check | undefined
  let serialize: Serialize | undefined
  if (schemas.message !== undefined) {
    controller.setupValidator(options)
    const compiler = controller.validatorCompiler
    let validate: Validator
    try {
      validate = compiler({ schema: schemas.message, method: 'GET', url, httpPart: 'body' })
    } catch (err) {
      throw new WssInvalidOptionError('schema.message', `does not compile: ${(err as Error).message}`)
    }
    check = checker(validate)
  }
  if (schemas.send !== undefined) {
    controller.setupSerializer(options)
    const compiler = controller.serializerCompiler
    try {
      serialize = compiler({ schema: schemas.send, method: 'GET', url, httpStatus: '200' })
    } catch (err) {
      throw new WssInvalidOptionError('schema.send', `does not compile: ${(err as Error).message}`)
    }
  }
  return { check, serialize }
}

/** Reads a validator's answer as Fastify reads it for a route: `false`, `{ error }`, or valid (with `{ value }` replacing the message). */
function checker (validate: Validator): Check {
  return (value) => {
    const result = validate(value)
    if (result === true) return value
    if (result === false) throw invalid(validate.errors)
    const answer = result as { value?: unknown, error?: unknown, then?: unknown } | null | undefined
    if (typeof answer?.then === 'function') {
      throw new WssInvalidMessageError('the validator of schema.message is asynchronous, which messages do not support')
    }
    if (answer?.error !== undefined) throw invalid(answer.error)
    return answer?.value === undefined ? value : answer.value
  }
}

/** The error of a message that does not match: every failing path the validator reports, in one line. */
function invalid (errors: unknown): Error {
  const list: unknown[] = Array.isArray(errors) ? errors : [errors]
  const lines = list.map((failure) => {
    if (failure instanceof Error) return failure.message
    const { instancePath, message } = failure as Failure
    return instancePath === undefined ? String(failure) : `${instancePath === '' ? '/' : instancePath} ${message}`
  })
  const error = new WssInvalidMessageError(lines.join('; '))
  ;(error as { validation?: unknown[] }).validation = list
  return error
}

// Parsing the two config files: zod validation plus CAIRN_<SECTION>_<KEY> overrides from an env object the
// caller passes (never read at import time).
import type { z } from 'zod'
import { ConfigError } from '../errors.js'
import {
  clusterConfigSchema, ENV_SECTIONS, peerConfigSchema, show, toConfigError,
  type ClusterConfig, type EnvSection, type PeerConfig
} from './schema.js'

export const PEER_FILE = 'peer.json'

export function parseClusterConfig (json: unknown, source = 'cluster.config.json', env: NodeJS.ProcessEnv = {}): ClusterConfig {
  return parseWith(clusterConfigSchema, 'cluster', json, source, env)
}

export function parsePeerConfig (json: unknown, source = PEER_FILE, env: NodeJS.ProcessEnv = {}): PeerConfig {
  return parseWith(peerConfigSchema, 'peer', json, source, env)
}

function parseWith<S extends z.ZodType> (schema: S, target: EnvSection['file'], json: unknown, source: string,
  env: NodeJS.ProcessEnv): z.output<S> {
  const { value, blame } = applyEnv(json, target, env)
  const result = schema.safeParse(value)
  if (!result.success) throw toConfigError(result.error, source, blame)
  return result.data
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** CAIRN_ variables that are not config keys: the peer and follower folders, the CLI's API address and credentials, test knobs. */
export const NOT_CONFIG_ENV = /^CAIRN_(PATH|FOLLOW_PATH|API|BASIC_AUTH|TOKEN|DEMO_DIR|TEST_.*)$/

/**
 * Sets every CAIRN_<SECTION>_<KEY> of `target` on a copy of the raw file content. Returns the copy and which
 * key path each variable set. Any unknown CAIRN_ variable is an error, as a typo would otherwise be ignored.
 */
function applyEnv (json: unknown, target: EnvSection['file'], env: NodeJS.ProcessEnv):
{ value: unknown, blame: Map<string, string> } {
  const blame = new Map<string, string>()
  const value = structuredClone(json)
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith('CAIRN_') || NOT_CONFIG_ENV.test(name) || text === undefined) continue
    const [, sectionName = '', ...rest] = name.split('_')
    const key = rest.join('_').toLowerCase()
    const section = Object.hasOwn(ENV_SECTIONS, sectionName) ? ENV_SECTIONS[sectionName] : undefined
    if (section === undefined) {
      throw new ConfigError(`${name}: unknown setting: no section ${sectionName} (sections: ${Object.keys(ENV_SECTIONS).join(', ')})`)
    }
    if (!Object.hasOwn(section.keys, key)) {
      const file = section.file === 'cluster' ? 'the cluster config' : PEER_FILE
      throw new ConfigError(`${name}: unknown setting: ${file} has no key ${show([...section.path, key].join('.'))}`)
    }
    if (section.file !== target || !isObject(value)) continue
    const parent = section.path.reduce<Record<string, unknown> | undefined>((obj, k) => {
      if (obj === undefined) return undefined
      obj[k] ??= {}
      return isObject(obj[k]) ? obj[k] : undefined
    }, value)
    // a section that is not an object in the file cannot take the key; validation reports the file's value
    if (parent === undefined) continue
    parent[key] = parseEnvValue(name, text, section.keys[key] as z.ZodType)
    blame.set([...section.path, key].join('.'), name)
  }
  return { value, blame }
}

/** Turns the env text into the JSON type the key expects; values that do not convert are left for zod to reject. */
function parseEnvValue (name: string, text: string, schema: z.ZodType): unknown {
  switch (baseType(schema)) {
    case 'array':
      return text.trim().startsWith('[')
        ? parseEnvJson(name, text)
        : text.split(',').map(item => item.trim()).filter(item => item !== '')
    case 'number':
      return text.trim() !== '' && Number.isFinite(Number(text)) ? Number(text) : text
    case 'boolean':
      return text === 'true' ? true : text === 'false' ? false : text
    case 'object':
    case 'record':
      return parseEnvJson(name, text)
    default:
      return text
  }
}

function parseEnvJson (name: string, text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`${name}: invalid JSON: ${(err as Error).message}`)
  }
}

/** The JSON type under defaults, optionals and transforms (zod's def.type: "array", "number", ...). */
function baseType (schema: z.ZodType): string {
  const def = schema._zod.def as { type: string, innerType?: z.ZodType, in?: z.ZodType }
  if (def.innerType !== undefined) return baseType(def.innerType)
  if (def.type === 'pipe' && def.in !== undefined) return baseType(def.in)
  return def.type
}

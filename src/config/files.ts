// Small file helpers shared by the config modules: existence checks, JSON reads with errors that name the
// file, and atomic writes.
import { randomBytes } from 'node:crypto'
import { open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { ConfigError } from '../errors.js'

export async function exists (file: string): Promise<boolean> {
  try {
    await stat(file)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

export async function readJson (file: string, missing: () => ConfigError): Promise<unknown> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missing()
    throw new ConfigError(`${file}: cannot read: ${(err as Error).message}`)
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`${file}: invalid JSON: ${(err as Error).message}`)
  }
}

/** Write-then-rename, so a crash leaves the old file or the new one, never half of one. */
export async function writeFileAtomic (file: string, text: string, mode: number): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`
  // mode applies at creation: the key is never readable by others, not even briefly
  const handle = await open(tmp, 'wx', mode)
  try {
    await handle.writeFile(text)
    await handle.sync()
    await handle.close()
    await rename(tmp, file)
  } catch (err) {
    await handle.close().catch(() => {})
    await unlink(tmp).catch(() => {})
    throw err
  }
}

// A small file system of its own, to fill up: a loop-mounted ext4 image (as a real disk behaves: delayed
// allocation, a journal, short writes at the end), or a tmpfs where loop devices are missing. Needs root.
import { execFile } from 'node:child_process'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { tempDir } from './util.js'

const run = promisify(execFile)

export interface SmallDisk {
  /** Where it is mounted. */
  dir: string
  /** 'ext4' or 'tmpfs'. */
  type: string
  /** Unmounts it and removes the image. */
  remove: () => Promise<void>
}

/** Mounts a file system of `mib` MiB; a string saying why when it cannot (the test is skipped with it). */
export async function mountSmallDisk (mib: number): Promise<SmallDisk | string> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'mounting a small file system needs root on Linux'
  const tmp = await tempDir('cairn-small-disk-')
  const dir = join(tmp.path, 'mnt')
  await mkdir(dir)
  const image = join(tmp.path, 'disk.img')
  const remove = async (): Promise<void> => {
    // a process that still has a file open keeps it busy: detach it now, it goes when the process does
    await run('umount', [dir]).catch(async () => await run('umount', ['-l', dir]).catch(() => {}))
    await tmp.cleanup()
  }
  const failures: string[] = []
  try {
    await run('truncate', ['-s', `${mib}M`, image])
    // -m 0: no blocks kept for root, so that the free space is what every writer sees
    await run('mkfs.ext4', ['-q', '-m', '0', image])
    await run('mount', ['-o', 'loop', image, dir])
    return { dir, type: 'ext4', remove }
  } catch (err) {
    failures.push(`ext4 on a loop device: ${(err as Error).message.trim()}`)
  }
  await rm(image, { force: true })
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir])
    return { dir, type: 'tmpfs', remove }
  } catch (err) {
    failures.push(`tmpfs: ${(err as Error).message.trim()}`)
  }
  await tmp.cleanup()
  return `no small file system could be mounted (${failures.join('; ')})`
}

// Finds a Chromium for the dashboard's browser tests: $CAIRN_CHROMIUM, else Debian's `chromium` package (what
// .ci/run installs) or another Chrome on the PATH's usual places.
import { accessSync, constants } from 'node:fs'

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable']

export const NO_CHROMIUM = 'no Chromium found: install it with `apt-get install -y chromium` (Debian), or set CAIRN_CHROMIUM to a Chrome or Chromium binary'

export function findChromium (env: NodeJS.ProcessEnv = process.env): string | undefined {
  const given = env.CAIRN_CHROMIUM
  for (const path of given != null && given !== '' ? [given] : CANDIDATES) {
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // not there: try the next
    }
  }
  return undefined
}

// Part of `npm run build`: the dashboard's page and style sheet go beside its compiled scripts
// (dist/src/api/dashboard/web/), where the REST API serves them from (src/api/dashboard/index.ts).
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const from = 'src/api/dashboard/web'
const to = 'dist/src/api/dashboard/web'
mkdirSync(to, { recursive: true })
for (const name of readdirSync(from)) {
  if (name.endsWith('.html') || name.endsWith('.css')) copyFileSync(join(from, name), join(to, name))
}

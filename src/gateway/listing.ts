// Directory listings: what a browser sees (HTML) and what a script asks for (JSON, on Accept: application/json).
import { exporter } from 'ipfs-unixfs-exporter'
import pMap from 'p-map'
import { encodeSegment } from './path.js'
import type { ReadableStorage, UnixFSDirectory } from 'ipfs-unixfs-exporter'

export interface ListingEntry {
  name: string
  cid: string
  /** File size for files and raw leaves; for directories the cumulative DAG size (Tsize). */
  size: number
  type: 'file' | 'directory' | 'symlink' | 'raw' | 'object' | 'unknown'
}

export interface Listing {
  /** /ipfs/<root>/<path>/ or /mirror/<name>/<path>/ as requested. */
  path: string
  cid: string
  entries: ListingEntry[]
}

/** Entries whose blocks are read at once to learn their type and size. */
const LIST_CONCURRENCY = 16

/** Reads a directory's entries, with type and size of each (one block per entry, fetched if missing). */
export async function listDirectory (dir: UnixFSDirectory, blocks: ReadableStorage, signal: AbortSignal): Promise<ListingEntry[]> {
  const links = []
  for await (const link of dir.entries({ signal })) links.push(link)
  const entries = await pMap(links, async (link): Promise<ListingEntry> => {
    const base = { name: link.name, cid: link.cid.toString() }
    const entry = await exporter(link.cid, blocks, { signal })
    switch (entry.type) {
      case 'file':
        return entry.unixfs.type === 'symlink'
          ? { ...base, size: entry.unixfs.data?.byteLength ?? 0, type: 'symlink' }
          : { ...base, size: Number(entry.unixfs.fileSize()), type: 'file' }
      case 'directory': return { ...base, size: Number(link.size), type: 'directory' }
      case 'raw':
      case 'identity': return { ...base, size: Number(entry.size), type: 'file' }
      case 'object': return { ...base, size: Number(link.size), type: 'object' }
      default: return { ...base, size: Number(link.size), type: 'unknown' }
    }
  }, { concurrency: LIST_CONCURRENCY })
  return entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
}

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
const esc = (s: string): string => s.replace(/[&<>"']/g, c => ESCAPES[c])

function humanSize (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`
}

/** The HTML listing; links are relative, so the page must be served at the path with its trailing slash. */
export function renderHtml (listing: Listing, atRoot: boolean): string {
  const rows = listing.entries.map(e => {
    const href = encodeSegment(e.name) + (e.type === 'directory' ? '/' : '')
    const name = esc(e.name) + (e.type === 'directory' ? '/' : '')
    return `<tr><td><a href="${esc(href)}">${name}</a></td><td><code>${esc(e.cid)}</code></td><td>${e.type === 'directory' ? '-' : humanSize(e.size)}</td></tr>`
  })
  if (!atRoot) rows.unshift('<tr><td><a href="../">../</a></td><td></td><td></td></tr>')
  return `<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Index of ${esc(listing.path)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.2em 1em;text-align:left}td:last-child{text-align:right}code{font-size:.85em;color:#555}</style>
</head><body>
<h1>Index of ${esc(listing.path)}</h1>
<p><code>${esc(listing.cid)}</code> &middot; ${listing.entries.length} entries</p>
<table><thead><tr><th>Name</th><th>CID</th><th>Size</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table>
</body></html>
`
}

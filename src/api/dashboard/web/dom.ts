// Builds the page's elements. Every string reaches the page as a text node or an attribute value set through
// the DOM, never as markup: a pin named `<img src=x onerror=alert(1)>` shows as those characters.

export type Child = Node | string | number | null | undefined | false | Child[]

export interface Props {
  class?: string
  /** Attributes, set with setAttribute (values are never parsed as markup). */
  attrs?: Record<string, string | undefined>
  /** Event listeners. */
  on?: Record<string, (event: Event) => void>
}

/** An element with its props and children. */
export function h<K extends keyof HTMLElementTagNameMap> (tag: K, props: Props | null = null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  if (props?.class != null) el.className = props.class
  for (const [k, v] of Object.entries(props?.attrs ?? {})) if (v !== undefined) el.setAttribute(k, v)
  for (const [k, f] of Object.entries(props?.on ?? {})) el.addEventListener(k, f)
  append(el, children)
  return el
}

const SVG_NS = 'http://www.w3.org/2000/svg'

/** An SVG element with its attributes and children. */
export function svg (tag: string, attrs: Record<string, string | number> = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v))
  append(el, children)
  return el
}

function append (el: Element, children: Child[]): void {
  for (const c of children) {
    if (c == null || c === false) continue
    if (Array.isArray(c)) append(el, c)
    else el.append(typeof c === 'number' ? String(c) : c)
  }
}

/** The element with that id; throws when the page lacks it (a broken build, not a user's doing). */
export function byId<T extends HTMLElement = HTMLElement> (id: string): T {
  const el = document.getElementById(id)
  if (el == null) throw new Error(`the page has no #${id}`)
  return el as T
}

/**
 * Replaces a section's content when what it shows changed (`key`): a poll that brings the same data leaves the
 * DOM alone, so keyboard focus and text selection inside it survive the refresh.
 */
export function render (target: HTMLElement, key: string, build: () => Child): void {
  if (target.dataset.key === key) return
  target.dataset.key = key
  target.replaceChildren()
  append(target, [build()])
}

/** A table with a caption, header cells and rows (each a list of cells). */
export function table (caption: string, head: string[], rows: Child[][], className = ''): HTMLElement {
  return h('div', { class: 'scroll', attrs: { tabindex: '0', role: 'region', 'aria-label': caption } },
    h('table', { class: className },
      h('caption', null, caption),
      h('thead', null, h('tr', null, head.map(c => h('th', { attrs: { scope: 'col' } }, c)))),
      h('tbody', null, rows.map(r => h('tr', null, r.map(c => h('td', null, c)))))
    ))
}

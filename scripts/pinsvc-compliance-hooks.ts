// Module hooks for running the IPFS pinning-service compliance suite offline against a local copy of the spec.
// The suite hands a hard-coded raw.githubusercontent.com URL to oas2joi (its spec -> Joi schema loader) and has no
// option to change it, so its `import oas2joi from 'oas2joi'` is answered with a module that loads the file given
// in `initialize` instead. Registered in the suite's process only, by ./pinsvc-compliance.ts.
import type { InitializeHook, LoadHook, ResolveHook } from 'node:module'

/** The synthetic module standing in for oas2joi; `?real=` carries the URL of the real one. */
const LOCAL = 'cairn-local-spec:oas2joi'
const SUITE = '/node_modules/@ipfs-shipyard/pinning-service-compliance/'

let spec = ''

export const initialize: InitializeHook<{ spec: string }> = data => { spec = data.spec }

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  if (specifier === 'oas2joi' && context.parentURL?.includes(SUITE) === true) {
    const real = await nextResolve(specifier, context)
    return { url: `${LOCAL}?${new URLSearchParams({ real: real.url })}`, format: 'module', shortCircuit: true }
  }
  return await nextResolve(specifier, context)
}

export const load: LoadHook = async (url, context, nextLoad) => {
  if (url.startsWith(`${LOCAL}?`)) {
    const real = new URL(url).searchParams.get('real') ?? ''
    // whatever location the suite asks for, the schemas come from the local spec file
    const source = `import oas2joi from ${JSON.stringify(real)}\nexport default async () => await oas2joi(${JSON.stringify(spec)})\n`
    return { format: 'module', source, shortCircuit: true }
  }
  return await nextLoad(url, context)
}

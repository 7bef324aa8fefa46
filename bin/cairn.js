#!/usr/bin/env node
// Thin launcher: load the Node 20 polyfill first, then the compiled CLI.
await import('../dist/src/polyfill.js')
await import('../dist/src/cli/index.js')

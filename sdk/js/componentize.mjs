// Compiles a staged JavaScript plugin into a component with the pinned
// componentize-js. `claimsmith build` runs it from its JavaScript toolchain
// folder (where `npm ci` installed package-lock.json):
//
//   node componentize.mjs ENTRY.js WIT_DIR WORLD OUT.wasm
//
// `fetch()` stays enabled: it is the host's wasi:http, under the same
// policy as the contract's `http.fetch`.

import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';

const [sourcePath, witPath, worldName, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node componentize.mjs ENTRY.js WIT_DIR WORLD OUT.wasm');
  process.exit(2);
}
const { component } = await componentize({ sourcePath, witPath, worldName });
await writeFile(out, component);

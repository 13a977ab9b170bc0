// Bundles the device agent into one file that runs with plain `node` on a device.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/agent/bin.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20', // undici 7 needs Node 20.18 or later
  format: 'esm',
  outfile: 'dist/cloudrest-agent.mjs',
  banner: { js: '#!/usr/bin/env node\nimport { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);' },
  // ws has optional native accelerators; the pure-JS path is used when they are absent.
  external: ['bufferutil', 'utf-8-validate'],
  logLevel: 'warning',
});

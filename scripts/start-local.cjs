#!/usr/bin/env node
/**
 * `npm start`: the local gateway (local/start.ts) compiled by esbuild and run in this process.
 *
 * Why not tsx (which the tests use): tsx compiles with esbuild's keepNames, which wraps every
 * function and closure in a naming call when it is created; on the request path that was about
 * 10 % of the gateway's CPU per request (README, Performance). This build keeps no names, bundles
 * only the project's own code (packages stay in node_modules) and takes well under a second.
 * Source maps are on, so a stack trace names the TypeScript lines.
 *
 * Concurrent starts (several gateways at once) each write their own file and rename it into place
 * (atomic), so no process ever loads a half-written build.
 */
'use strict';
const { buildSync } = require('esbuild');
const { mkdirSync, renameSync, rmSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
// One directory below the root, as local/ is: the code resolves the root as `__dirname/..`.
const dir = join(root, '.build');
const out = join(dir, 'local-gateway.cjs');
const tmp = join(dir, `local-gateway.${process.pid}.tmp.cjs`);
try {
  mkdirSync(dir, { recursive: true });
  buildSync({
    entryPoints: [join(root, 'local', 'start.ts')],
    bundle: true,
    platform: 'node',
    packages: 'external',
    format: 'cjs',
    target: `node${process.versions.node}`,
    sourcemap: 'inline',
    sourcesContent: false,
    outfile: tmp,
    logLevel: 'silent',
  });
  renameSync(tmp, out);
} catch (err) {
  rmSync(tmp, { force: true });
  const errors = err && Array.isArray(err.errors) ? err.errors.map((e) => `${e.location ? `${e.location.file}:${e.location.line}: ` : ''}${e.text}`) : [String(err && err.message ? err.message : err)];
  process.stderr.write(`npm start: could not compile the local gateway:\n${errors.join('\n')}\n`);
  process.exit(1);
}
process.setSourceMapsEnabled(true);
require(out);

#!/usr/bin/env node
// Entry of `npx sovereign-router`. In a source checkout (cli/main.ts present) it runs the
// TypeScript through tsx, so a stale dist/ can never shadow the sources; the published package
// ships no .ts and runs the compiled CLI.
const path = require('node:path');
const fs = require('node:fs');
const source = path.join(__dirname, 'main.ts');
if (fs.existsSync(source)) {
  require('tsx/cjs');
  require(source).main();
} else {
  require(path.join(__dirname, '..', 'dist', 'cli', 'sovereign-router.js')).main();
}

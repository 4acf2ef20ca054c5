#!/usr/bin/env node
// Entry of `npx sovereign-router`: the compiled CLI when built, else the TypeScript through tsx.
const path = require('node:path');
const fs = require('node:fs');
const built = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
if (fs.existsSync(built)) {
  require(built).main();
} else {
  require('tsx/cjs');
  require('./main.ts').main();
}

#!/usr/bin/env node
'use strict';
// Entry point installed as `ibllm`; the compiled CLI lives in dist/ (run `npm run build` first).
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const main = join(__dirname, '..', 'dist', 'main.js');
if (!existsSync(main)) {
  process.stderr.write('ibllm is not built yet: run `npm run build` in the repository root\n');
  process.exit(1);
}
require(main);

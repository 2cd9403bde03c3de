#!/usr/bin/env node
'use strict';
// The `pitr` executable. CommonJS starts faster than an ES module entry, and `pitr --version`
// answers here without loading anything; every other call runs the CLI (dist/cli/main.js).
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${require('../package.json').version}\n`);
} else {
  import('../dist/cli/main.js');
}

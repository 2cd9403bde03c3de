#!/usr/bin/env node
'use strict';
// The `pitr` executable. CommonJS starts faster than an ES module entry, and `pitr --version`
// answers here without loading anything; every other call runs the CLI (dist/cli/main.js).
// `pitr --help` prints the root help rendered at build time (scripts/render-root-help.mjs), which
// is the CLI's own text whenever the terminal is at least 80 columns wide (help wraps at 80).
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${require('../package.json').version}\n`);
} else if (args.length === 1 && (args[0] === '--help' || args[0] === '-h') && !(process.stdout.columns < 80) && printStoredHelp()) {
  // printed from the stored text
} else {
  import('../dist/cli/main.js');
}

function printStoredHelp() {
  let text;
  try {
    text = require('node:fs').readFileSync(require('node:path').join(__dirname, '../dist/root-help.txt'), 'utf8');
  } catch {
    return false;
  }
  process.stdout.write(text);
  return true;
}

#!/usr/bin/env node
// src/cli: the command line (parsing, prompts, the one output writer) over the core folders.
// The only place with console output and process.exit; core folders must never import from here.
// Commands stay thin: parse, call the core, hand the result to Output (renderers live in src/report).
import { readFileSync } from 'node:fs';

// `pitr --version` answers before anything else loads: scripts and playbook steps call it.
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version}\n`);
  process.exit(0);
}
const { runCli } = await import('./program.js');

// Run data, reports and logs hold production rows and secrets: every file pitr creates is 0600, every directory 0700.
process.umask(0o077);

// The first Ctrl-C asks the running command to stop and clean up (stop half-started servers,
// remove half-restored directories); a second one exits at once.
const controller = new AbortController();
let interrupts = 0;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write(`\npitr: ${sig} received, stopping and cleaning up (again to exit now)\n`);
    controller.abort();
  });
}

const code = await runCli(process.argv, {
  stdout: process.stdout,
  stderr: process.stderr,
  stdinIsTTY: !!process.stdin.isTTY,
  env: process.env,
  cwd: process.cwd(),
  signal: controller.signal,
});
process.exitCode = code;

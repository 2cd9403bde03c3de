#!/usr/bin/env node
// Part of `npm run build`: renders `pitr --help` once into dist/root-help.txt, so that the
// executable (bin/pitr.cjs) prints it without loading the CLI and its dependencies. The help is
// wrapped at 80 columns on every terminal (src/cli/program.ts helpWidth), so the stored text is
// what the CLI itself prints; test/unit/cli-usage.test.ts checks they never differ.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const text = execFileSync(process.execPath, [join(root, 'dist/cli/main.js'), '--help'], {
  cwd: root,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
});
writeFileSync(join(root, 'dist/root-help.txt'), text);

/**
 * bench/startup: how long pitr takes to start, against bare Node in the same run.
 *
 *   npm run bench:startup [-- --rounds N]      # or BENCH_ROUNDS=N, default 20
 *
 * Each round runs, in an order that rotates every round (so drift falls on all alike):
 * `node -e ''`, `pitr --version`, `pitr --help`, and `pitr status --json` on the local provider
 * with nothing configured (no server is contacted). Wall clock of the child process; the table
 * shows medians and each command's ratio to bare Node (goal: --version and --help ≤ 1.5×).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, median, pad, round, roundsSetting } from './support.js';

// The installed executable (package.json bin), as `npx pitr` and playbook steps run it.
const CLI = fileURLToPath(new URL('../bin/pitr.cjs', import.meta.url));
const rounds = roundsSetting(20);
const cwd = mkdtempSync(join(tmpdir(), 'pitr-startup-'));
const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? cwd };

const cases: { name: string; args: string[]; ok: number[] }[] = [
  { name: "node -e ''", args: ['-e', ''], ok: [0] },
  { name: 'pitr --version', args: [CLI, '--version'], ok: [0] },
  { name: 'pitr --help', args: [CLI, '--help'], ok: [0] },
  // Exit 1: nothing is configured, so status reports the problems (locally, without a server).
  { name: 'pitr status --json', args: [CLI, 'status', '--json', '--provider', 'local'], ok: [0, 1] },
];
const times = new Map(cases.map((c) => [c.name, [] as number[]]));

try {
  for (let r = 0; r < rounds + 1; r++) {
    for (let k = 0; k < cases.length; k++) {
      const c = cases[(k + r) % cases.length]!;
      const start = process.hrtime.bigint();
      const result = spawnSync(process.execPath, c.args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (!c.ok.includes(result.status ?? -1)) throw new Error(`${c.name} exited ${result.status}: ${result.stderr}`);
      if (r > 0) times.get(c.name)!.push(seconds); // round 0 warms the file cache
    }
  }
} finally {
  rmSync(cwd, { recursive: true, force: true });
}

const node = median(times.get(cases[0]!.name)!);
const rows = cases.map((c) => {
  const m = median(times.get(c.name)!);
  return [c.name, fmt(m * 1000, 0), fmt(Math.min(...times.get(c.name)!) * 1000, 0), `${fmt(m / node)}×`];
});
console.log(pad([['command', 'median ms', 'min ms', 'vs node'], ...rows]));
console.log(`goal: --version and --help ≤ 1.50× bare Node (${rounds} rounds)`);
console.log(JSON.stringify({ rounds, medians: Object.fromEntries(cases.map((c) => [c.name, round(median(times.get(c.name)!))])), ratios: Object.fromEntries(cases.slice(1).map((c) => [c.name, round(median(times.get(c.name)!) / node)])) }));

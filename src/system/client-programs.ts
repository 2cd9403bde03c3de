import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { PitrError } from '../errors.js';
import { binaryDirectories } from './postgres-binaries.js';
import { run } from './process.js';

// Finding pg_dump / pg_restore: the same directories as the server binaries, but client tools
// need no server installed next to them.

export interface ClientProgram {
  path: string;
  major: number;
  /** `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` */
  version: string;
}

const programCache = new Map<string, Promise<ClientProgram[]>>();

/**
 * Every `program` found in binaryDirectories(), newest major first.
 */
function allInstalled(program: string): Promise<ClientProgram[]> {
  let found = programCache.get(program);
  if (!found) {
    found = (async () => {
      const dirs = await binaryDirectories();
      const out: ClientProgram[] = [];
      const seen = new Set<string>();
      for (const dir of dirs) {
        const path = join(dir, program);
        if (!(await access(path, constants.X_OK).then(() => true, () => false))) continue;
        const result = await run(path, ['--version']).catch(() => undefined);
        const version = result?.stdout.trim() ?? '';
        const major = Number(/\(PostgreSQL\)\s+(\d+)/.exec(version)?.[1]);
        if (!Number.isInteger(major) || seen.has(version)) continue;
        seen.add(version);
        out.push({ path, major, version });
      }
      // Stable: the first place of each major wins, newest major first.
      return out.sort((a, b) => b.major - a.major);
    })();
    programCache.set(program, found);
    found.catch(() => programCache.delete(program));
  }
  return found;
}

/**
 * pg_dump for a server of `major`: the same major if installed, else the oldest newer one
 * (pg_dump refuses servers newer than itself). pg_restore likewise for archives written by
 * pg_dump `major`; with `newestIfMissing` the newest installed is tried anyway.
 */
export async function findClientProgram(program: 'pg_dump' | 'pg_restore', major: number, options: { newestIfMissing?: boolean } = {}): Promise<ClientProgram> {
  const all = await allInstalled(program);
  const exact = all.find((p) => p.major === major);
  if (exact) return exact;
  const newer = all.filter((p) => p.major > major).at(-1);
  if (newer) return newer;
  if (options.newestIfMissing && all[0]) return all[0];
  const have = all.length ? `found only ${all.map((p) => `${p.path} (${p.major})`).join(', ')}` : 'none found via PITR_PG_BIN, pg_config, /usr/lib/postgresql/*/bin or PATH';
  // The embedded server binaries (npm) have no client programs: say where to get them.
  const how = `install the PostgreSQL ${major} client programs (Debian/Ubuntu: apt-get install postgresql-client-${major}; macOS: brew install libpq) or point PITR_PG_BIN at their directory`;
  throw new PitrError(`${program}_not_found`, `${program} ${major} or newer is needed for a PostgreSQL ${major} server: ${have}; ${how}`);
}


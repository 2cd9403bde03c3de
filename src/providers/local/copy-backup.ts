import { chown, copyFile, lstat, mkdir, open, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { PitrError } from '../../errors.js';
import { isRoot, postgresOsUser } from '../../system/process.js';
import type { ProgressSink } from '../types.js';

/**
 * Directories whose contents a base backup leaves out (the directories themselves are kept):
 * the list pg_basebackup uses and the low-level API documentation gives. pg_wal is rebuilt from
 * the archive during recovery.
 */
const EMPTY_DIRS = new Set(['pg_wal', 'pg_replslot', 'pg_dynshmem', 'pg_notify', 'pg_serial', 'pg_snapshots', 'pg_stat_tmp', 'pg_subtrans']);
const SKIPPED_FILES = new Set(['postmaster.pid', 'postmaster.opts', 'backup_label', 'tablespace_map', 'backup_manifest', 'backup_manifest.tmp', 'postgresql.auto.conf.tmp', 'current_logfiles.tmp']);
/** Temporary relations (t<backend>_<relfilenode>) and temp files; pg_internal.init caches are rebuilt at start. */
const skippedName = (name: string) => SKIPPED_FILES.has(name) || name.startsWith('pgsql_tmp') || name.startsWith('pg_internal.init') || /^t\d+_\d+/.test(name);

export interface CopyBackupResult {
  label: string;
  startLsn: string;
  endLsn: string;
  startWal: string;
  timeline: number;
  bytes: number;
}

/** First 8 bytes of global/pg_control: the system identifier, little-endian on the platforms Postgres ships for. */
async function systemIdentifierOf(dataDir: string): Promise<string | undefined> {
  const file = await open(join(dataDir, 'global', 'pg_control'), 'r').catch(() => undefined);
  if (!file) return undefined;
  try {
    const buffer = Buffer.alloc(8);
    await file.read(buffer, 0, 8, 0);
    return buffer.readBigUInt64LE(0).toString();
  } finally {
    await file.close();
  }
}

/**
 * A base backup without pg_basebackup, for pitr running on the database host: the low-level
 * API (pg_backup_start, a copy of the data directory, pg_backup_stop in the same session), with
 * backup_label and tablespace_map written into the copy. pg_backup_stop waits until the WAL the
 * backup needs is archived, so the copy plus the archive restore on their own.
 */
export async function copyBaseBackup(client: pg.Client, target: string, label: string, systemIdentifier: string, onProgress?: ProgressSink): Promise<CopyBackupResult> {
  const { rows } = await client.query<{ data_directory: string; archive_mode: string }>(
    `select current_setting('data_directory') as data_directory, current_setting('archive_mode') as archive_mode`,
  );
  const source = rows[0]!.data_directory;
  if (rows[0]!.archive_mode === 'off') {
    throw new PitrError('backup_needs_archiving', 'a copy backup takes its WAL from the archive, but production has archive_mode = off: turn archiving on first');
  }
  if ((await systemIdentifierOf(source)) !== systemIdentifier) {
    throw new PitrError(
      'backup_not_on_host',
      `--method copy needs pitr on the database host, able to read production's data directory (${source}); elsewhere install pg_basebackup (PostgreSQL client programs)`,
    );
  }
  const tablespaces = await readdir(join(source, 'pg_tblspc')).catch(() => [] as string[]);
  if (tablespaces.length) {
    // A copied tablespace link would point the restored instance at production's own files.
    throw new PitrError('backup_tablespaces', `production has ${tablespaces.length} tablespace(s) outside its data directory: take this backup with pg_basebackup`);
  }

  onProgress?.({ phase: 'backup', message: `pg_backup_start, copying ${source}` });
  await client.query('select pg_backup_start($1, true)', [label]);
  const bytes = await copyTree(source, target, true);
  onProgress?.({ phase: 'backup', message: 'pg_backup_stop (waits until the WAL it needs is archived)' });
  const stop = await client.query<{ lsn: string; labelfile: string; spcmapfile: string }>('select lsn::text, labelfile, spcmapfile from pg_backup_stop(true)');
  const { lsn, labelfile, spcmapfile } = stop.rows[0]!;
  await writeOwned(join(target, 'backup_label'), labelfile);
  if (spcmapfile) await writeOwned(join(target, 'tablespace_map'), spcmapfile);

  const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/m.exec(labelfile);
  const timeline = /^START TIMELINE: (\d+)$/m.exec(labelfile);
  if (!start || !timeline) throw new PitrError('backup_failed', 'pg_backup_stop returned a backup label without a start location: the backup is unusable');
  return { label: labelfile, startLsn: start[1]!, startWal: start[2]!, endLsn: lsn, timeline: Number(timeline[1]), bytes };
}

async function owned(path: string): Promise<void> {
  if (!isRoot()) return;
  const { uid, gid } = await postgresOsUser();
  await chown(path, uid, gid);
}

async function writeOwned(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: 0o600 });
  await owned(path);
}

/** Copies a directory tree with the exclusions above; files that vanish meanwhile are fine (WAL replay recreates them). */
async function copyTree(from: string, to: string, top: boolean): Promise<number> {
  await mkdir(to, { mode: 0o700 });
  await owned(to);
  let bytes = 0;
  const entries = await readdir(from, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  for (const entry of entries) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    // pg_wal may be a symlink (initdb -X): the copy gets a plain, empty directory either way.
    if (top && EMPTY_DIRS.has(entry.name)) {
      await mkdir(dst, { mode: 0o700 });
      await owned(dst);
      if (entry.name === 'pg_wal') {
        await mkdir(join(dst, 'archive_status'), { mode: 0o700 });
        await owned(join(dst, 'archive_status'));
      }
      continue;
    }
    if (entry.isDirectory()) {
      if (entry.name.startsWith('pgsql_tmp')) continue;
      bytes += await copyTree(src, dst, false);
    } else if (entry.isFile()) {
      if (skippedName(entry.name)) continue;
      try {
        await copyFile(src, dst);
        bytes += (await lstat(dst)).size;
        await owned(dst);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    // Symlinks outside pg_tblspc (refused above) and sockets are not part of a data directory.
  }
  return bytes;
}

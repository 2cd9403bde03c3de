import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PitrError } from '../../errors.js';
import { redactUrl } from '../../redact.js';
import { findPostgresBinaries, type PostgresBinaries } from '../../system/postgres-binaries.js';
import { ensureServerDir, runChecked } from '../../system/process.js';
import { formatCompactUtc } from '../../time/index.js';
import type { ProgressSink } from '../types.js';
import { connectProduction, readProductionFacts } from './production.js';
import { connectionParts } from './urls.js';
import { copyBaseBackup } from './copy-backup.js';
import { pickShape } from './metadata-shape.js';

export type BackupMethod = 'auto' | 'pg_basebackup' | 'copy';

interface BackupMetadata {
  id: string;
  format: 'plain';
  startedAt: string;
  endedAt: string;
  startLsn: string;
  endLsn: string;
  startWal: string;
  timeline: number;
  pgVersion: string;
  pgMajor: number;
  systemIdentifier: string;
  walSegmentSize: number;
  bytes: number;
  source: string;
  verified: boolean;
  seconds: number;
  /** pg_basebackup (self-contained, WAL inside) or copy (low-level API; its WAL comes from the archive). */
  method?: 'pg_basebackup' | 'copy';
}

const parseBackupMetadata = (value: unknown) =>
  pickShape<BackupMetadata>(
    value,
    { id: 'string', format: ['plain'], startedAt: 'string', endedAt: 'string', startLsn: 'string', endLsn: 'string', startWal: 'string', timeline: 'number', pgVersion: 'string', pgMajor: 'number', systemIdentifier: 'string', walSegmentSize: 'number', bytes: 'number', source: 'string', verified: 'boolean', seconds: 'number' },
    { method: ['pg_basebackup', 'copy'] },
  );

export type BackupInfo = BackupMetadata & { dir: string; dataDir: string };

const METADATA = 'backup.json';

/** Backups in a directory, oldest first. Sub-directories without metadata are unfinished and skipped. */
export async function listBackups(backupDir: string): Promise<BackupInfo[]> {
  const entries = await readdir(backupDir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  const backups: BackupInfo[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const dir = join(backupDir, entry.name);
    const text = await readFile(join(dir, METADATA), 'utf8').catch(() => undefined);
    if (!text) continue;
    const parsed = parseBackupMetadata(JSON.parse(text));
    if (parsed) backups.push({ ...parsed, dir, dataDir: join(dir, 'data') });
  }
  return backups.sort((a, b) => a.endedAt.localeCompare(b.endedAt));
}

function labelField(label: string, field: string): string | undefined {
  return new RegExp(`^${field}: (.*)$`, 'm').exec(label)?.[1]?.trim();
}

/**
 * Takes a base backup. pg_basebackup: plain format (a restore is a copy, the fastest path),
 * WAL streamed into the backup so it is self-contained, and a fast checkpoint (a spread one
 * made a 2-second backup take 272 s here). copy (the default where pg_basebackup is missing,
 * e.g. with only the embedded server binaries): the low-level API on the database host. The
 * metadata file is written last, atomically, so a directory without it is an interrupted
 * backup that is never used.
 */
export async function takeBackup(databaseUrl: string, backupDir: string, onProgress?: ProgressSink, method: BackupMethod = 'auto'): Promise<BackupInfo> {
  const client = await connectProduction(databaseUrl);
  let facts;
  try {
    facts = await readProductionFacts(client);
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  const bin = method === 'copy' ? undefined : await findPostgresBinaries(facts.major).catch((err: unknown) => (method === 'auto' ? undefined : Promise.reject(err)));
  const useCopy = method === 'copy' || !bin || !(await bin.has('pg_basebackup'));
  if (method === 'pg_basebackup' && useCopy) {
    await client.end().catch(() => undefined);
    throw new PitrError('missing_program', `pg_basebackup is not in ${bin!.binDir}: install the PostgreSQL ${facts.major} client programs, or use --method copy on the database host`);
  }
  if (!useCopy) await client.end().catch(() => undefined);
  const startedAt = new Date();
  // Base backups are copies of production: private to the postgres OS user.
  await ensureServerDir(backupDir);
  let id = formatCompactUtc(startedAt);
  const existing = new Set(await readdir(backupDir));
  for (let n = 2; existing.has(id); n++) id = `${formatCompactUtc(startedAt)}-${n}`;
  const dir = join(backupDir, id);
  const dataDir = join(dir, 'data');
  await ensureServerDir(dir);
  try {
    let taken: { startLsn: string; endLsn: string; startWal: string; timeline: number; bytes: number; verified: boolean };
    if (useCopy) {
      try {
        taken = { ...(await copyBaseBackup(client, dataDir, `pitr ${id}`, facts.systemIdentifier, onProgress)), verified: false };
      } finally {
        // Ending the session also aborts a backup that pg_backup_stop did not finish.
        await client.end().catch(() => undefined);
      }
    } else {
      taken = await runBaseBackup(bin!, databaseUrl, dataDir, id, onProgress);
    }
    const endedAt = await productionNow(databaseUrl);
    const info = {
      id,
      format: 'plain' as const,
      startedAt: startedAt.toISOString(),
      endedAt,
      startLsn: taken.startLsn,
      endLsn: taken.endLsn,
      startWal: taken.startWal,
      timeline: taken.timeline,
      pgVersion: facts.serverVersion,
      pgMajor: facts.major,
      systemIdentifier: facts.systemIdentifier,
      walSegmentSize: facts.walSegmentSize,
      bytes: taken.bytes,
      source: redactUrl(databaseUrl),
      verified: taken.verified,
      seconds: (Date.now() - startedAt.getTime()) / 1000,
      method: useCopy ? ('copy' as const) : ('pg_basebackup' as const),
    };
    await writeFile(join(dir, `${METADATA}.tmp`), JSON.stringify(info, null, 2) + '\n');
    await rename(join(dir, `${METADATA}.tmp`), join(dir, METADATA));
    return { ...info, dir, dataDir };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function runBaseBackup(bin: PostgresBinaries, databaseUrl: string, dataDir: string, id: string, onProgress?: ProgressSink) {
  const { url, password } = connectionParts(databaseUrl);
  const env = { ...process.env, ...(password ? { PGPASSWORD: password } : {}) };
  onProgress?.({ phase: 'backup', message: `pg_basebackup into ${dataDir}` });
  await runChecked(
    bin.path('pg_basebackup'),
    ['-d', url, '-D', dataDir, '-Fp', '-X', 'stream', '-c', 'fast', '--no-password', '-l', `pitr ${id}`],
    { asServerUser: true, env, what: 'pg_basebackup', code: 'backup_failed' },
  );
  const verified = await bin.has('pg_verifybackup');
  if (verified) {
    onProgress?.({ phase: 'verify', message: 'pg_verifybackup' });
    await runChecked(bin.path('pg_verifybackup'), [dataDir], { asServerUser: true, what: 'pg_verifybackup', code: 'backup_verify_failed' });
  }
  const label = await readFile(join(dataDir, 'backup_label'), 'utf8');
  const manifest = JSON.parse(await readFile(join(dataDir, 'backup_manifest'), 'utf8')) as {
    Files: { Size: number }[];
    'WAL-Ranges': { Timeline: number; 'Start-LSN': string; 'End-LSN': string }[];
  };
  const range = manifest['WAL-Ranges'].at(-1);
  const startWal = /\(file ([0-9A-F]{24})\)/.exec(labelField(label, 'START WAL LOCATION') ?? '')?.[1];
  if (!range || !startWal) throw new PitrError('backup_failed', 'pg_basebackup wrote no WAL range or start segment: the backup is unusable');
  return { startLsn: range['Start-LSN'], endLsn: range['End-LSN'], startWal, timeline: range.Timeline, bytes: manifest.Files.reduce((sum, f) => sum + f.Size, 0), verified };
}

/**
 * Production's clock after the backup finished. Every commit inside the backup is older, so a
 * target at or after this instant is always reachable from this backup (a target before the
 * backup's consistency point would silently restore a later state: see local-pitr.md).
 */
async function productionNow(databaseUrl: string): Promise<string> {
  const client = await connectProduction(databaseUrl);
  try {
    const { rows } = await client.query('select now() as now');
    return new Date(rows[0].now).toISOString();
  } finally {
    await client.end().catch(() => undefined);
  }
}

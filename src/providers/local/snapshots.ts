import { badInput, PitrError } from '../../errors.js';
import { commandLine } from '../../system/shell-quote.js';
import { formatTarget, parseDuration, parsePointInTime, checkSnapshotName, type PointInTime, type ResolvedPointInTime } from '../../time/index.js';
import type { CreateSnapshotOptions, Snapshot } from '../types.js';
import { listBackups, takeBackup } from './backups.js';
import type { LocalContext } from './context.js';
import { connectProduction, readProductionFacts, switchWalAndWait } from './production.js';
import { listRestorePoints, removeRestorePoint, writeRestorePoint, type RestorePoint } from './restore-points.js';

/** What `snapshot:<name>` stands for here: the restore point's LSN, or the bookmarked instant. */
export async function resolveSnapshotTarget(ctx: LocalContext, at: PointInTime): Promise<ResolvedPointInTime> {
  if (at.kind !== 'snapshot') return at;
  const point = await findRestorePoint(ctx, at.name);
  if (point.lsn) return { kind: 'lsn', lsn: point.lsn, input: at.input };
  const stored = parsePointInTime(point.at!, {});
  if (stored.kind === 'snapshot') throw new PitrError('bad_restore_point', `restore point ${point.name} is damaged: it names no time or LSN`);
  return stored;
}

async function findRestorePoint(ctx: LocalContext, name: string): Promise<RestorePoint> {
  const points = await listRestorePoints(ctx.requireBackupDir());
  const point = points.find((p) => p.name === name);
  if (!point) {
    const known = points.map((p) => p.name).join(', ') || 'none';
    throw badInput('unknown_snapshot', `no snapshot "${name}" in ${ctx.requireBackupDir()} (known: ${known})`);
  }
  return point;
}

function toSnapshot(point: RestorePoint): Snapshot {
  return {
    name: point.name,
    id: point.name,
    provider: 'local',
    method: point.method,
    at: point.at,
    lsn: point.lsn,
    createdAt: point.createdAt,
    details: { backupId: point.backupId, archived: point.archived },
  };
}

/**
 * A named restore point. Now: pg_create_restore_point on production (after a fresh base
 * backup when the newest is older than snapshotBackupAge, so the point never depends on a
 * long replay), then a WAL switch so the point is in the archive. A past instant: a bookmark,
 * checked against the backups first. Either way `backup prune` keeps what it needs.
 */
export async function createSnapshot(ctx: LocalContext, name: string, options: CreateSnapshotOptions): Promise<Snapshot> {
  const backupDir = ctx.requireBackupDir();
  checkSnapshotName(name);
  if ((await listRestorePoints(backupDir)).some((p) => p.name === name)) throw badInput('snapshot_exists', `a snapshot named ${name} already exists`);
  const createdAt = new Date().toISOString();
  if (options.at) {
    if (options.at.kind === 'snapshot') throw badInput('bad_time', 'a snapshot of a snapshot is the same snapshot: give a time or an LSN');
    if (options.at.kind === 'xid') throw badInput('bad_time', `a snapshot keeps a time or an LSN, not a transaction id (${options.at.input}); branch from it instead: ${commandLine('pitr', '--at', options.at.input)}`);
    const backup = await ctx.chooseBackup(backupDir, options.at, undefined);
    const point: RestorePoint = {
      name,
      method: 'bookmark',
      at: options.at.kind === 'time' ? formatTarget(options.at) : null,
      lsn: options.at.kind === 'lsn' ? options.at.lsn : null,
      createdAt,
      backupId: backup.id,
      systemIdentifier: backup.systemIdentifier,
      archived: true,
    };
    await writeRestorePoint(backupDir, point);
    return toSnapshot(point);
  }
  const databaseUrl = ctx.requireDatabaseUrl();
  const maxAge = ctx.settings.snapshotBackupAgeMs ?? parseDuration('24h');
  let backup = (await listBackups(backupDir)).at(-1);
  if (!backup || Date.now() - new Date(backup.endedAt).getTime() > maxAge) {
    options.onProgress?.({ phase: 'backup', message: backup ? `newest base backup is from ${backup.endedAt}: taking a fresh one first` : 'no base backup yet: taking one first' });
    backup = await takeBackup(databaseUrl, backupDir, options.onProgress);
  }
  const client = await connectProduction(databaseUrl);
  try {
    const facts = await readProductionFacts(client);
    if (facts.walLevel === 'minimal') throw new PitrError('wal_level_minimal', 'production runs with wal_level = minimal: restore points need wal_level = replica or logical');
    let method: RestorePoint['method'] = 'restore-point';
    let row: { lsn: string; at: string };
    try {
      // to_char keeps the microseconds a JS Date would drop.
      row = (await client.query(`select pg_create_restore_point($1)::text as lsn, to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at`, [name])).rows[0];
    } catch (err) {
      if ((err as { code?: string }).code !== '42501') throw err;
      // Not allowed to write a named WAL record: the current WAL position marks the same point.
      method = 'bookmark';
      row = (await client.query(`select pg_current_wal_lsn()::text as lsn, to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at`)).rows[0];
    }
    const archived = await switchWalAndWait(client, ctx.settings.archiveWaitMs)
      .then((w) => w.archived)
      .catch(() => false);
    options.onProgress?.({ phase: 'snapshot', message: archived ? `restore point ${name} at LSN ${row.lsn} is in the WAL archive` : `restore point ${name} at LSN ${row.lsn} is not in the WAL archive yet` });
    const point: RestorePoint = { name, method, at: row.at, lsn: row.lsn, createdAt, backupId: backup.id, systemIdentifier: facts.systemIdentifier, archived };
    await writeRestorePoint(backupDir, point);
    return toSnapshot(point);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function listSnapshots(ctx: LocalContext): Promise<Snapshot[]> {
  return (await listRestorePoints(ctx.requireBackupDir())).map(toSnapshot);
}

export async function getSnapshot(ctx: LocalContext, name: string): Promise<Snapshot> {
  return toSnapshot(await findRestorePoint(ctx, name));
}

export async function deleteSnapshot(ctx: LocalContext, name: string): Promise<Snapshot> {
  const point = await findRestorePoint(ctx, name);
  await removeRestorePoint(ctx.requireBackupDir(), name);
  return toSnapshot(point);
}

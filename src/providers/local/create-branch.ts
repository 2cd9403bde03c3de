import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PitrError } from '../../errors.js';
import { redactUrl } from '../../redact.js';
import { findPostgresBinaries, type PostgresBinaries } from '../../system/postgres-binaries.js';
import { freeLoopbackPort } from '../../system/ports.js';
import { ensurePassableDir, ensureServerDir, isRoot } from '../../system/process.js';
import { describePointInTime, formatCompactUtc, type PointInTime, type ResolvedPointInTime } from '../../time/index.js';
import { targetString, uniqueName } from '../naming.js';
import type { CreateBranchOptions, RecoveryBranch } from '../types.js';
import type { BackupInfo } from './backups.js';
import type { LocalBranchRecord } from './branch-store.js';
import type { LocalContext } from './context.js';
import { discardInstance, prepareInstance, recoverInstance, serverUserCanWrite, type InstanceRestore } from './recovery.js';
import { resolveSnapshotTarget } from './snapshots.js';
import { branchUrl, connectionParts } from './urls.js';
import { listArchive, segmentFileName, segmentOfLsn } from './wal-archive.js';

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new PitrError('interrupted', 'interrupted: nothing was created');
}

/**
 * A recovery branch here is a new Postgres instance restored from the newest backup before the
 * target, on a loopback port: the backup is copied while production switches WAL, then replayed
 * to the target and promoted. Anything half-made is removed when it fails.
 */
export async function createRecoveryBranch(ctx: LocalContext, requested: PointInTime, options: CreateBranchOptions): Promise<RecoveryBranch> {
  const started = options.startedAt ?? Date.now();
  const backupDir = ctx.requireBackupDir();
  const at = await resolveSnapshotTarget(ctx, requested);
  const restoreCommand = ctx.restoreCommand();
  const databaseUrl = ctx.settings.offline ? ctx.settings.databaseUrl : ctx.requireDatabaseUrl();
  // Refuse a target no backup can reach before touching production or the disk.
  let backup = await ctx.chooseBackup(backupDir, at, undefined);
  let bin = await findPostgresBinaries(backup.pgMajor);

  const sourceUrl = databaseUrl ?? backup.source;
  const id = `lb-${randomBytes(4).toString('hex')}`;
  const name = options.name ?? (await uniqueBranchName(ctx, defaultName(sourceUrl, at)));
  const dir = ctx.store.dirOf(id);
  const dataDir = ctx.store.dataDirOf(id);
  const logFile = ctx.store.logOf(id);
  await ensurePassableDir(ctx.store.root, ctx.settings.workDir);
  await ensureServerDir(dir);
  await writeFile(join(dir, 'creating.json'), JSON.stringify({ pid: process.pid, startedAt: new Date(started).toISOString() }), { flag: 'wx' });
  const port = await freeLoopbackPort();
  const url = branchUrl(databaseUrl ?? `postgresql://postgres@127.0.0.1/${connectionParts(backup.source).database}`, port);
  const request = (b: BackupInfo, pg: PostgresBinaries): InstanceRestore => ({
    bin: pg,
    backup: b,
    target: at,
    dataDir,
    logFile,
    port,
    restoreCommand,
    url,
    explainShortArchive: (redoDone: string | null) => explainShortArchive(ctx, b, redoDone),
    timeoutMs: ctx.settings.recoveryTimeoutMs,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  try {
    // The copy needs nothing from production, so it overlaps the WAL switch and archiver wait.
    const [production, copy] = await Promise.allSettled([
      ctx.settings.offline || !databaseUrl ? Promise.resolve(undefined) : ctx.switchProductionWal(databaseUrl, options),
      prepareInstance(request(backup, bin)),
    ]);
    // The copy runs as the postgres OS user, so it fails where that user cannot reach the work
    // directory; only then is the (slow: runuser) check made, to say so instead of "cp failed".
    if (copy.status === 'rejected' && isRoot() && !(await serverUserCanWrite(dir))) {
      throw new PitrError(
        'work_dir_unreachable',
        `the postgres OS user cannot reach the work directory ${ctx.settings.workDir} (a parent directory is not traversable): set --work-dir or PITR_WORK_DIR to a path such as /var/lib/pitr`,
      );
    }
    if (production.status === 'rejected') throw production.reason;
    if (copy.status === 'rejected') throw copy.reason;
    throwIfAborted(options.signal);
    const facts = production.value?.facts;
    if (facts && backup.systemIdentifier !== facts.systemIdentifier) {
      // The backup directory also holds another cluster's backups: start over from one of ours.
      backup = await ctx.chooseBackup(backupDir, at, facts);
      bin = await findPostgresBinaries(backup.pgMajor);
      await rm(dataDir, { recursive: true, force: true });
      await prepareInstance(request(backup, bin));
    }
    ctx.log.info({ backup: backup.id, endedAt: backup.endedAt, target: describePointInTime(at) }, 'restoring base backup');
    const result = await recoverInstance(request(backup, bin), production.value?.coverage ?? null);
    ctx.log.info({ id, port, result, seconds: (Date.now() - started) / 1000 }, 'recovery branch promoted');
    const createdAt = new Date();
    const record: LocalBranchRecord = {
      id,
      name,
      source: redactUrl(sourceUrl),
      target: targetString(at),
      createdAt: createdAt.toISOString(),
      expiresAt: new Date(createdAt.getTime() + options.ttlMs).toISOString(),
      port,
      url: connectionParts(url).url,
      backupId: backup.id,
      pgMajor: backup.pgMajor,
      secondsToQueryable: (Date.now() - started) / 1000,
      recoveredTo: result,
      purpose: 'recovery',
    };
    await ctx.store.write(record);
    await rm(join(dir, 'creating.json'), { force: true });
    return ctx.toBranch(record, 'running');
  } catch (err) {
    await ctx.keepFailedLog(id, logFile);
    await discardInstance(bin, dataDir, dir);
    throw err;
  }
}

async function explainShortArchive(ctx: LocalContext, backup: BackupInfo, redoDone: string | null): Promise<string | null> {
  if (!ctx.settings.walArchive) return null;
  const listing = await listArchive(ctx.settings.walArchive);
  if (!listing.newestName) return `the WAL archive ${ctx.settings.walArchive} is empty`;
  const gap = ctx.findGap(listing.segments, backup, listing.newestName);
  if (!gap) return null;
  const stoppedAt = redoDone ? ` (replay stopped at ${redoDone}, segment ${segmentFileName(backup.timeline, segmentOfLsn(redoDone, backup.walSegmentSize), backup.walSegmentSize)})` : '';
  return `WAL segment ${gap} is missing from the archive ${ctx.settings.walArchive}: recovery cannot pass it${stoppedAt}`;
}

function defaultName(sourceUrl: string, at: ResolvedPointInTime): string {
  const db = connectionParts(sourceUrl).database.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'db';
  const when = at.kind === 'lsn' ? `lsn-${at.lsn.replace('/', '-')}` : at.kind === 'xid' ? `before-xid-${at.xid}` : formatCompactUtc(at.at);
  return `pitr-${db}-${when}`;
}

async function uniqueBranchName(ctx: LocalContext, base: string): Promise<string> {
  return uniqueName(base, (await ctx.store.list()).map((r) => r.name));
}

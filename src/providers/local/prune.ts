import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { planRetention, type RetentionPolicy } from '../../retention/gfs.js';
import { compareLsn } from '../../time/index.js';
import type { BackupInfo } from './backups.js';
import type { RestorePoint } from './restore-points.js';

export interface BackupVerdict {
  id: string;
  endedAt: string;
  bytes: number;
  keep: boolean;
  reasons: string[];
}

export interface WalCleanup {
  /** WAL older than this segment is needed by no kept backup (null: nothing to clean or no archive directory). */
  keepFrom: string | null;
  remove: string[];
  bytes: number;
}

export interface BackupPrunePlan {
  backups: BackupVerdict[];
  wal: WalCleanup;
}

/** Archived WAL segment files, plain or compressed, and partial segments: what pg_archivecleanup removes. */
const SEGMENT_FILE = /^([0-9A-F]{8})([0-9A-F]{16})(\.partial)?(\.(gz|zst|lz4|bz2|xz))?$/;

/**
 * The archive files older than `keepFrom`, compared by WAL position and not by timeline (a
 * segment of an older timeline at a later position may still be needed), exactly as
 * pg_archivecleanup does. History and .backup files are never removed.
 */
export function walFilesBefore(files: readonly string[], keepFrom: string): string[] {
  const cutoff = keepFrom.slice(8, 24);
  return files.filter((f) => {
    const m = SEGMENT_FILE.exec(f);
    return m !== null && m[2]! < cutoff;
  });
}

/** The base backup a restore point replays from: the newest of its system that ended before it. */
function backupFor(point: RestorePoint, backups: readonly BackupInfo[]): BackupInfo | undefined {
  const usable = backups.filter(
    (b) =>
      b.systemIdentifier === point.systemIdentifier &&
      (point.lsn ? compareLsn(b.endLsn, point.lsn) <= 0 : new Date(b.endedAt).getTime() <= new Date(point.at!).getTime()),
  );
  return usable.at(-1) ?? backups.find((b) => b.id === point.backupId);
}

/**
 * Which base backups to keep: grandfather-father-son over their end times, plus every backup a
 * snapshot replays from; backups of another database system are left alone. Then the WAL no
 * kept backup needs: everything before the oldest kept backup's first segment, so every kept
 * backup stays restorable to any time after it.
 */
export async function planBackupPrune(
  backups: readonly BackupInfo[],
  points: readonly RestorePoint[],
  policy: RetentionPolicy,
  options: { timeZone?: string; walArchive?: string | undefined; systemIdentifier?: string | undefined },
): Promise<BackupPrunePlan> {
  const system = options.systemIdentifier ?? backups.at(-1)?.systemIdentifier;
  const ours = backups.filter((b) => b.systemIdentifier === system);
  const verdicts = new Map<string, BackupVerdict>();
  for (const b of backups) {
    if (b.systemIdentifier !== system) verdicts.set(b.id, { id: b.id, endedAt: b.endedAt, bytes: b.bytes, keep: true, reasons: ['another database system'] });
  }
  const plan = planRetention(ours, (b) => new Date(b.endedAt), policy, options.timeZone ? { timeZone: options.timeZone } : {});
  for (const p of plan) verdicts.set(p.item.id, { id: p.item.id, endedAt: p.item.endedAt, bytes: p.item.bytes, keep: p.keep, reasons: p.reasons });
  for (const point of points) {
    const needed = backupFor(point, backups);
    const verdict = needed && verdicts.get(needed.id);
    if (!verdict) continue;
    if (!verdict.keep) verdict.reasons = [];
    verdict.keep = true;
    verdict.reasons.push(`snapshot ${point.name}`);
  }
  const ordered = backups.map((b) => verdicts.get(b.id)!);
  const oldestKept = backups.find((b) => verdicts.get(b.id)!.keep);
  const wal: WalCleanup = { keepFrom: null, remove: [], bytes: 0 };
  if (options.walArchive && oldestKept) {
    wal.keepFrom = oldestKept.startWal;
    const files = await readdir(options.walArchive).catch(() => [] as string[]);
    wal.remove = walFilesBefore(files, oldestKept.startWal).sort();
    for (const f of wal.remove) wal.bytes += (await stat(join(options.walArchive, f)).catch(() => ({ size: 0 }))).size;
  }
  return { backups: ordered, wal };
}

/**
 * Removes what the plan says, backups oldest first and then WAL, so an interruption leaves the
 * oldest kept backup and everything after it intact.
 */
export async function applyBackupPrune(plan: BackupPrunePlan, backups: readonly BackupInfo[], walArchive: string | undefined): Promise<void> {
  for (const verdict of plan.backups) {
    if (verdict.keep) continue;
    const backup = backups.find((b) => b.id === verdict.id);
    if (!backup) continue;
    // The metadata goes first: a half-removed directory without it is never taken for a backup.
    await rm(join(backup.dir, 'backup.json'), { force: true });
    await rm(backup.dir, { recursive: true, force: true });
  }
  if (!walArchive) return;
  for (const file of plan.wal.remove) await rm(join(walArchive, file), { force: true });
}

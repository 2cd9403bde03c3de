import { describe, expect, it } from 'vitest';
import type { BackupInfo } from '../../src/providers/local/backups.js';
import { planBackupPrune, walFilesBefore } from '../../src/providers/local/prune.js';
import type { RestorePoint } from '../../src/providers/local/restore-points.js';

const POLICY_ONE = { daily: 1, weekly: 0, monthly: 0, yearly: 0 };

function backup(id: string, endedAt: string, endLsn: string, startWal: string, system = 'sys-a'): BackupInfo {
  return {
    id, format: 'plain', startedAt: endedAt, endedAt, startLsn: endLsn, endLsn, startWal, timeline: 1, pgVersion: '15.8', pgMajor: 15,
    systemIdentifier: system, walSegmentSize: 16 * 1024 * 1024, bytes: 1000, source: 'postgresql://x', verified: true, seconds: 1,
    dir: `/b/${id}`, dataDir: `/b/${id}/data`,
  };
}

describe('walFilesBefore (as pg_archivecleanup)', () => {
  it('removes segments, partial and compressed segments before the cutoff, by position and not by timeline', () => {
    const files = [
      '000000010000000000000001', '000000010000000000000002.partial', '000000010000000000000003.gz', '000000020000000000000003',
      '000000010000000000000004', '000000020000000000000005', '00000002.history', '000000010000000000000002.00000028.backup', 'README',
    ];
    expect(walFilesBefore(files, '000000020000000000000004').sort()).toEqual([
      '000000010000000000000001', '000000010000000000000002.partial', '000000010000000000000003.gz', '000000020000000000000003',
    ]);
  });

  it('compares across the 4 GB boundary (log and segment parts)', () => {
    expect(walFilesBefore(['0000000100000000000000FF', '000000010000000100000000'], '000000010000000100000000')).toEqual(['0000000100000000000000FF']);
  });
});

describe('planBackupPrune', () => {
  const backups = [
    backup('b1', '2026-11-01T00:00:00Z', '0/1000000', '000000010000000000000001'),
    backup('b2', '2026-11-10T00:00:00Z', '0/5000000', '000000010000000000000005'),
    backup('b3', '2026-11-20T00:00:00Z', '0/9000000', '000000010000000000000009'),
  ];

  it('keeps the newest by policy and each backup a snapshot replays from', async () => {
    const point: RestorePoint = { name: 'pre-0042', method: 'restore-point', at: '2026-11-12T00:00:00Z', lsn: '0/6000000', createdAt: '2026-11-12T00:00:00Z', backupId: 'b2', systemIdentifier: 'sys-a', archived: true };
    const plan = await planBackupPrune(backups, [point], POLICY_ONE, {});
    expect(plan.backups.map((b) => [b.id, b.keep, b.reasons])).toEqual([
      ['b1', false, ['outside daily 1 / weekly 0 / monthly 0 / yearly 0']],
      ['b2', true, ['snapshot pre-0042']],
      ['b3', true, ['newest', 'daily 2026-11-20']],
    ]);
  });

  it('a bookmark by time needs the newest backup that ended before it', async () => {
    const point: RestorePoint = { name: 'bm', method: 'bookmark', at: '2026-11-09T23:59:59Z', lsn: null, createdAt: '2026-11-25T00:00:00Z', backupId: 'b1', systemIdentifier: 'sys-a', archived: true };
    const plan = await planBackupPrune(backups, [point], POLICY_ONE, {});
    expect(plan.backups.filter((b) => b.keep).map((b) => b.id)).toEqual(['b1', 'b3']);
  });

  it('never touches backups of another database system', async () => {
    const mixed = [backup('other', '2026-10-01T00:00:00Z', '0/100', '000000010000000000000001', 'sys-b'), ...backups];
    const plan = await planBackupPrune(mixed, [], POLICY_ONE, { systemIdentifier: 'sys-a' });
    expect(plan.backups.find((b) => b.id === 'other')).toMatchObject({ keep: true, reasons: ['another database system'] });
  });
});

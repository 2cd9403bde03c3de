import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PitrError } from '../../src/errors.js';
import { listRestorePoints, removeRestorePoint, writeRestorePoint, type RestorePoint } from '../../src/providers/local/restore-points.js';
import type { Provider, Snapshot } from '../../src/providers/types.js';
import { pruneSnapshots, snapshotTime } from '../../src/retention/snapshots.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const point = (name: string, at: string | null, createdAt: string): RestorePoint => ({ name, method: at ? 'bookmark' : 'restore-point', at, lsn: '0/16B3748', createdAt, backupId: 'b1', systemIdentifier: '7300000000000000001', archived: true });

describe('local restore points', () => {
  it('are listed oldest first by the instant they capture, skipping stray and invalid files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pitr-rp-'));
    dirs.push(dir);
    expect(await listRestorePoints(dir)).toEqual([]);
    await writeRestorePoint(dir, point('late', '2026-03-01T00:00:00.000000Z', '2026-01-01T00:00:00Z'));
    await writeRestorePoint(dir, point('early', '2026-02-01T00:00:00.000000Z', '2026-04-01T00:00:00Z'));
    // No captured instant: ordered by when it was taken.
    await writeRestorePoint(dir, point('taken', null, '2026-02-15T00:00:00Z'));
    await writeFile(join(dir, 'restore-points', 'notes.txt'), 'x');
    await writeFile(join(dir, 'restore-points', 'other.json'), JSON.stringify({ name: 'other' }));
    expect((await listRestorePoints(dir)).map((p) => p.name)).toEqual(['early', 'taken', 'late']);
    // Written whole or not at all: no temp file stays behind.
    expect((await readdir(join(dir, 'restore-points'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('rewriting one replaces it; removing one leaves the others, and removing a missing one is fine', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pitr-rp-'));
    dirs.push(dir);
    await writeRestorePoint(dir, point('a', null, '2026-01-01T00:00:00Z'));
    await writeRestorePoint(dir, { ...point('a', null, '2026-01-01T00:00:00Z'), archived: false });
    await writeRestorePoint(dir, point('b', null, '2026-01-02T00:00:00Z'));
    expect(await listRestorePoints(dir)).toEqual([{ ...point('a', null, '2026-01-01T00:00:00Z'), archived: false }, point('b', null, '2026-01-02T00:00:00Z')]);
    await removeRestorePoint(dir, 'a');
    await removeRestorePoint(dir, 'a');
    expect((await listRestorePoints(dir)).map((p) => p.name)).toEqual(['b']);
  });
});

describe('pruneSnapshots', () => {
  const snap = (name: string, day: number, at = true): Snapshot =>
    ({ name, id: name, provider: 'local', method: 'bookmark', at: at ? `2026-01-${String(day).padStart(2, '0')}T12:00:00Z` : null, lsn: null, createdAt: `2026-01-${String(day).padStart(2, '0')}T13:00:00Z` }) as Snapshot;

  /** The provider calls pruning makes, recorded; `inUse` snapshots refuse deletion as Neon does. */
  function provider(snapshots: Snapshot[], inUse: string[] = [], failing: string[] = []) {
    const deleted: string[] = [];
    const p = {
      listSnapshots: async () => snapshots,
      deleteSnapshot: async (name: string) => {
        if (inUse.includes(name)) throw new PitrError('snapshot_in_use', `snapshot ${name} has branches made from it`);
        if (failing.includes(name)) throw new Error('network down');
        deleted.push(name);
        return snapshots.find((s) => s.name === name)!;
      },
    };
    return { provider: p as unknown as Provider, deleted };
  }
  const keepTwoDays = { daily: 2, weekly: 0, monthly: 0, yearly: 0 };
  const five = [snap('d1', 1), snap('d2', 2), snap('d3', 3), snap('d4', 4), snap('d5', 5)];

  it('a dry run deletes nothing and says what it would keep', async () => {
    const { provider: p, deleted } = provider(five);
    const r = await pruneSnapshots(p, keepTwoDays, { dryRun: true });
    expect(deleted).toEqual([]);
    expect(r.applied).toBe(false);
    expect(r.verdicts.filter((v) => v.keep).map((v) => v.snapshot.name).sort()).toEqual(['d4', 'd5']);
  });

  it('deletes what the policy drops, oldest first, so an interruption never leaves an older one behind a deleted newer one', async () => {
    const { provider: p, deleted } = provider([...five].reverse());
    const r = await pruneSnapshots(p, keepTwoDays, { dryRun: false });
    expect(deleted).toEqual(['d1', 'd2', 'd3']);
    expect(r).toMatchObject({ deleted: ['d1', 'd2', 'd3'], skipped: [], applied: true });
  });

  it('skips a snapshot still in use, saying why, and prunes the rest', async () => {
    const { provider: p, deleted } = provider(five, ['d2']);
    const r = await pruneSnapshots(p, keepTwoDays, { dryRun: false });
    expect(deleted).toEqual(['d1', 'd3']);
    expect(r.skipped).toEqual([{ name: 'd2', reason: 'snapshot d2 has branches made from it' }]);
  });

  it('stops at any other failure instead of reporting success', async () => {
    const { provider: p, deleted } = provider(five, [], ['d2']);
    await expect(pruneSnapshots(p, keepTwoDays, { dryRun: false })).rejects.toThrow('network down');
    expect(deleted).toEqual(['d1']);
  });

  it('dates a snapshot by the instant it captures, else by when it was taken', () => {
    expect(snapshotTime(snap('a', 3)).toISOString()).toBe('2026-01-03T12:00:00.000Z');
    expect(snapshotTime(snap('b', 3, false)).toISOString()).toBe('2026-01-03T13:00:00.000Z');
  });
});

import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { processesUsing, runPitr } from '../support/cli.js';

describe('pitr demo', () => {
  it('runs the whole incident and cleans up after itself', async () => {
    const startedAt = Date.now();
    const r = await runPitr(['demo', '--rows', '5000', '--json']);
    const endedAt = Date.now();
    expect(r.code, r.stderr).toBe(0);
    const demo = r.json;
    expect(demo.incident.comicsDeleted).toBeGreaterThan(0);
    for (const c of demo.counts) {
      // The branch is production as it was just before the DELETE.
      expect(c.branch, c.table).toBe(c.beforeIncident);
    }
    expect(demo.recoverable.comics).toBe(demo.incident.comicsDeleted);
    expect(demo.recoverable.comments).toBeGreaterThan(0);
    const users = demo.counts.find((c: { table: string }) => c.table === 'users');
    expect(users.production).toBe(users.beforeIncident + 50); // writes after the incident survived
    // After pitr recover: everything the incident took is back, and the later writes are kept.
    // Production after the incident + what the playbook put back + what the background writer added meanwhile.
    for (const c of demo.counts) expect(c.recovered, c.table).toBe(c.production + (demo.recoverable[c.table] ?? 0) + (c.table === 'comments' ? demo.liveWrites : 0));
    expect(demo.liveWrites).toBeGreaterThan(0);
    expect(demo.counts.find((c: { table: string }) => c.table === 'comics').recovered).toBe(demo.counts.find((c: { table: string }) => c.table === 'comics').beforeIncident);
    expect(demo.recovery).toMatchObject({ conflicts: 0, verified: true });
    // RTO, the playbook's start to its verified recovery, checked against clocks it does not use.
    // Within it, one after another: making the branch, the recovery and its verification.
    const t = demo.timings;
    const ms = 0.002; // every duration is whole milliseconds; this absorbs float sums
    expect(t.branchSeconds).toBeGreaterThan(0);
    expect(t.recoverSeconds).toBeGreaterThan(0);
    expect(t.rtoSeconds).toBeGreaterThanOrEqual(t.branchSeconds + t.recoverSeconds - ms);
    // The playbook starts after the incident and after loading and backing up, and ends before
    // the demo returns; this test's own clock around the CLI run bounds all of it.
    expect(t.rtoSeconds).toBeLessThanOrEqual((endedAt - Date.parse(demo.incident.at)) / 1000);
    expect(t.rtoSeconds).toBeLessThanOrEqual(t.totalSeconds - t.loadSeconds - t.backupSeconds + ms);
    expect(t.totalSeconds).toBeLessThanOrEqual((endedAt - startedAt) / 1000);
    expect(Date.parse(demo.incident.at)).toBeGreaterThan(startedAt);
    expect(existsSync(demo.root)).toBe(false);
    expect(await processesUsing(demo.root)).toEqual([]);
  });

  it('rejects a nonsense row count before doing anything', async () => {
    const r = await runPitr(['demo', '--rows', 'lots']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--rows must be a whole number');
  });
});

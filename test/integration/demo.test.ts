import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { processesUsing, runPitr } from '../support/cli.js';

describe('pitr demo', () => {
  it('runs the whole incident and cleans up after itself', async () => {
    const r = await runPitr(['demo', '--rows', '5000', '--json']);
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
    expect(demo.timings.rtoSeconds).toBeGreaterThan(0);
    expect(demo.timings.branchSeconds).toBeGreaterThan(0);
    expect(existsSync(demo.root)).toBe(false);
    expect(await processesUsing(demo.root)).toEqual([]);
  });

  it('rejects a nonsense row count before doing anything', async () => {
    const r = await runPitr(['demo', '--rows', 'lots']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--rows must be a whole number');
  });
});

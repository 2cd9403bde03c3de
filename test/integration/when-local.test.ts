import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { makeTempRoot, localEnv, startCluster, type TestCluster } from '../support/cluster.js';
import { processesUsing, runPitr } from '../support/cli.js';
import { tableChecksums } from '../support/checksums.js';
import { loadInitial, runIncident, type Incident } from '../support/incident-workload.js';

/**
 * Finding the incident on the local provider, through the built CLI and real WAL replay: a
 * workload of inserts every few ms with one bad DELETE in the middle.
 */
describe('pitr when / --at xid: on the local provider', () => {
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  let incident: Incident;

  beforeAll(async () => {
    prod = await startCluster({ archive: true, settings: { track_commit_timestamp: 'on' } });
    work = await makeTempRoot('pitr-when-');
    env = localEnv(prod, work);
    await loadInitial(prod);
    const backup = await runPitr(['backup', '--json'], env);
    expect(backup.code, backup.stderr).toBe(0);
    incident = await runIncident(prod);
  });

  afterAll(async () => {
    const list = await runPitr(['branches', '--json'], env);
    for (const b of list.json?.branches ?? []) await runPitr(['branches', 'delete', b.id], env);
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('--at xid:<bad> branches with every commit before the bad transaction and none of it', async () => {
    const r = await runPitr(['--at', `xid:${incident.badXid}`, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.target).toBe(`xid:${incident.badXid}`);
    const branchUrl: string = r.json.connectionUrl;
    const expected = await tableChecksums(incident.expectedUrl);
    expect(await tableChecksums(branchUrl)).toEqual(expected);
    expect(await tableChecksums(prod.url)).not.toEqual(expected);
    const del = await runPitr(['branches', 'delete', r.json.id, '--json'], env);
    expect(del.code, del.stderr).toBe(0);
    expect(await processesUsing(work)).toEqual([]);
  }, 120_000);

  const micros = (iso: string) => Date.parse(iso.slice(0, 23) + 'Z') * 1000 + Number(iso.slice(23, 26));

  for (const [name, args] of [
    ['--count', ['--count', 'items']],
    ['--row', ['--row', 'items', '3', '1']],
    ['--sql', ['--sql', `select count(*) from public.items where note = 'initial'`, '--precision', '200ms']],
  ] as const) {
    it(`when ${name} names an instant within the precision before the bad transaction, and the transaction`, async () => {
      const r = await runPitr(['when', ...args, '--json'], env, { timeoutMs: 240_000 });
      expect(r.code, r.stderr).toBe(0);
      const bad = micros(incident.badCommit);
      expect(micros(r.json.lastGood)).toBeLessThan(bad);
      expect(bad - micros(r.json.lastGood)).toBeLessThanOrEqual(1_000_000);
      expect(micros(r.json.firstBad)).toBeGreaterThanOrEqual(bad);
      expect(bad - micros(r.json.lastGood)).toBeLessThanOrEqual(r.json.precisionMicros);
      // Without the WAL timeline, the transaction is named only when it is the next commit after the last good probe.
      if (r.json.culprit) expect(r.json.culprit.xid).toBe(incident.badXid);
      // One instance, rolled forward; restored anew only to go back.
      expect(r.json.restores).toBeLessThanOrEqual(r.json.probes.length);
      expect(await processesUsing(work)).toEqual([]);
    }, 240_000);
  }

  it('--timeline names the bad transaction and its row counts per table (partitions under their table)', async () => {
    const r = await runPitr(['when', '--timeline', '--tables', 'items', '--min-rows', '10', '--json'], env, { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.transactions).toHaveLength(1);
    const [tx] = r.json.transactions;
    expect(tx.xid).toBe(incident.badXid);
    expect(tx.tables).toEqual({ items: { inserted: 0, updated: 0, deleted: incident.deleted } });
    expect(tx.committedAt).toBe(incident.badCommit);
    const all = await runPitr(['when', '--timeline', '--json'], env, { timeoutMs: 120_000 });
    expect(all.code, all.stderr).toBe(0);
    // Each legitimate write touched items and audit: 40 + 20 of them, plus the bad one.
    expect(all.json.transactions.length).toBe(61);
    // Every commit of the window is bisection's working set, not output.
    expect(all.json.commits).toBeUndefined();
  }, 240_000);

  for (const [name, args] of [
    ['--count', ['--count', 'items']],
    ['--row', ['--row', 'items', '3', '1']],
    ['--sql', ['--sql', `select count(*) from public.items where note = 'initial'`, '--tables', 'items']],
  ] as const) {
    it(`when ${name} --timeline names the transaction from one restore, rolling forward only`, async () => {
      const r = await runPitr(['when', ...args, '--timeline', '--json'], env, { timeoutMs: 240_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.culprit).toEqual({ xid: incident.badXid, committedAt: incident.badCommit });
      expect(r.json.at).toBe(`xid:${incident.badXid}`);
      // With an answer, the timeline is context: the largest transactions (the culprit among them) and how many there are.
      expect(r.json.timeline.commits).toBeUndefined();
      expect(r.json.timeline.transactions.length).toBeLessThanOrEqual(10);
      expect(r.json.timeline.transactions.map((t: { xid: string }) => t.xid)).toContain(incident.badXid);
      expect(r.json.timeline.count ?? r.json.timeline.transactions.length).toBeGreaterThan(10);
      expect(micros(r.json.firstBad)).toBe(micros(incident.badCommit));
      expect(micros(r.json.lastGood)).toBe(micros(incident.badCommit) - 1);
      // The largest suspect is the bad DELETE: --since, just before it, at it (and --until), all forward.
      expect(r.json.restores).toBe(1);
      expect(r.json.probes.length).toBeLessThanOrEqual(4);
      expect(await processesUsing(work)).toEqual([]);
    }, 240_000);
  }

  it('refuses a query error and a window outside the history with one line, nothing left running', async () => {
    const q = await runPitr(['when', '--sql', 'select nope from public.items', '--json'], env);
    expect(q.code, q.stderr).toBe(2);
    expect(q.stderr.trim().split('\n')).toHaveLength(1);
    expect(q.stderr).toContain('rejected by Postgres');
    expect(q.json.error.code).toBe('bad_query');
    const old = await runPitr(['when', '--count', 'items', '--since', '2020-01-01T00:00:00Z', '--json'], env);
    expect(old.code, old.stderr).toBe(2);
    expect(old.stderr).toContain('before the recoverable window');
    const none = await runPitr(['when', '--sql', 'select 1', '--json'], env);
    expect(none.code, none.stderr).toBe(2);
    expect(none.stderr).toContain('did not change');
    expect(await processesUsing(work)).toEqual([]);
  }, 240_000);

  it('playbooks accept at: xid:<xid>', async () => {
    const r = await runPitr(['playbook', 'run', 'data-corruption', '--set', `at=xid:${incident.badXid}`, '--set', 'tables=items', '--dry-run', '--json'], env, { timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`xid:${incident.badXid}`);
  }, 180_000);

  it('a find step runs when and feeds its answer to create-branch; with an instant given it searches nothing', async () => {
    const file = join(work, 'find.yaml');
    await writeFile(
      file,
      [
        'name: find-then-branch',
        'inputs:',
        '  at: { type: string, default: "" }',
        'steps:',
        '  - id: find',
        '    type: find',
        '    with: { given: "${{ inputs.at }}", count: items, timeline: true }',
        '  - id: branch',
        '    type: create-branch',
        '    with: { at: "${{ steps.find.at }}", ttl: 1h }',
        '',
      ].join('\n'),
    );
    const r = await runPitr(['playbook', 'run', file, '--yes', '--json'], env, { timeoutMs: 240_000 });
    expect(r.code, r.stderr).toBe(0);
    const [find, branch] = r.json.steps;
    expect(find.outputs).toMatchObject({ at: `xid:${incident.badXid}`, searched: true });
    expect(branch.outputs.target).toBe(`xid:${incident.badXid}`);
    expect(await tableChecksums(incident.expectedUrl)).toEqual(await tableChecksums((await runPitr(['connection-string', branch.outputs.id], env)).stdout.trim()));
    const given = await runPitr(['playbook', 'run', file, '--set', `at=xid:${incident.badXid}`, '--yes', '--json'], env, { timeoutMs: 240_000 });
    expect(given.code, given.stderr).toBe(0);
    expect(given.json.steps[0].outputs).toEqual({ at: `xid:${incident.badXid}`, searched: false });
  }, 300_000);

  it('refuses a malformed xid with one line, exit 2', async () => {
    const r = await runPitr(['--at', 'xid:12ab'], env);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('not a valid transaction id');
  });

  // Last: it puts the deleted rows back into production, which later questions would see.
  it('the shipped accidental-deletion playbook finds the instant itself (find_count) and puts back exactly the deleted rows', async () => {
    const initial = `select count(*)::int as n from items where note = 'initial'`;
    expect((await prod.query<{ n: number }>(initial))[0]!.n).toBe(300 - incident.deleted);
    const r = await runPitr(['playbook', 'run', 'accidental-deletion', '--set', 'table=items', '--set', 'find_count=items', '--set', "where=note = 'initial'", '--yes', '--json'], env, { timeoutMs: 300_000 });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const byId = Object.fromEntries(r.json.steps.filter((s: { id: string | null }) => s.id).map((s: { id: string }) => [s.id, s]));
    // The WAL archive is a directory: the timeline names the bad transaction, the branch ends just before it.
    expect(byId.find.outputs).toMatchObject({ at: `xid:${incident.badXid}`, searched: true, culprit: { xid: incident.badXid, committedAt: incident.badCommit } });
    expect(byId.branch.outputs.target).toBe(`xid:${incident.badXid}`);
    expect(byId.rows.outputs).toMatchObject({ missing: incident.deleted, changed: 0 });
    expect(byId.recover.outputs).toMatchObject({ inserted: incident.deleted, conflicts: 0, verified: true });
    expect(byId.verify.outputs).toMatchObject({ missing: 0 });
    expect((await prod.query<{ n: number }>(initial))[0]!.n).toBe(300);
    // Every initial row is back as it was (the mirror holds production just before the incident).
    const rowsOf = async (url: string) => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        return (await c.query(`select id, grp, note from items where note = 'initial' order by id, grp`)).rows;
      } finally {
        await c.end();
      }
    };
    expect(await rowsOf(prod.url)).toEqual(await rowsOf(incident.expectedUrl));
    expect(await processesUsing(join(work, 'when'))).toEqual([]);
  }, 300_000);
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import pg from 'pg';
import { makeTempRoot, startCluster, switchAndArchiveWal, type TestCluster } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';
import { TEST_NEON_API_KEY } from '../support/secrets.js';
import { startFakeNeon, type FakeNeon } from '../fakes/neon/index.js';
import { NeonProvider, type SnapshotMethodSetting } from '../../src/providers/neon/index.js';
import { PitrError } from '../../src/errors.js';
import { parsePointInTime } from '../../src/time/index.js';

/**
 * Snapshots on Neon against the fake API, whose branches are real local recovery instances: a
 * snapshot is a branch of production without compute (or a snapshot of Neon's snapshot API where
 * the account has it), and `--at snapshot:<name>` makes a recovery branch holding its data.
 */
describe('Neon snapshots (against the fake API)', () => {
  const API_KEY = TEST_NEON_API_KEY;
  let prod: TestCluster;
  let work: string;
  let fake: FakeNeon;
  let env: Record<string, string>;
  let t1: string;

  const provider = (snapshots?: SnapshotMethodSetting) =>
    new NeonProvider({ apiKey: API_KEY, apiHost: fake.apiHost, projectId: fake.projectId, operationTimeoutMs: 60_000, ...(snapshots && { snapshots }) });
  const failure = (promise: Promise<unknown>) => promise.then(() => expect.unreachable('expected a failure'), (e: unknown) => e as PitrError);
  const requestsTo = (method: string, suffix: string) => fake.requests.filter((r) => r.method === method && r.path.endsWith(suffix));
  const branchNamed = (name: string) => fake.state().branches.find((b) => b.name === name);
  const t1Ms = () => (parsePointInTime(t1) as { at: Date }).at.getTime();

  async function counts(url: string) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query(
        `select count(*)::int as all, count(*) filter (where id <= 100)::int as deleted, count(*) filter (where note = 'after')::int as after,
                count(*) filter (where note = 'later')::int as later from items`,
      );
      return rows[0] as { all: number; deleted: number; after: number; later: number };
    } finally {
      await client.end();
    }
  }

  async function branchCounts(name: string) {
    const cs = await runPitr(['connection-string', name], env);
    expect(cs.code, cs.stderr).toBe(0);
    return counts(cs.stdout.trim());
  }

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-neon-snap-');
    const local = { DATABASE_URL: prod.url, PITR_BACKUP_DIR: join(work, 'backups'), PITR_WAL_ARCHIVE: prod.archiveDir, PITR_WORK_DIR: join(work, 'fake-pitr') };
    await prod.query(`create table items(id int primary key, note text); insert into items select g, 'before' from generate_series(1, 5000) g`);
    expect((await runPitr(['backup'], local)).code).toBe(0);
    await prod.query(`insert into items values (9001, 'before')`);
    await new Promise((r) => setTimeout(r, 20));
    t1 = (await prod.query<{ now: string }>('select now()::text as now'))[0]!.now;
    await new Promise((r) => setTimeout(r, 20));
    await prod.query(`delete from items where id <= 100`);
    await prod.query(`insert into items values (9002, 'after')`);
    await switchAndArchiveWal(prod);
    fake = await startFakeNeon({
      apiKey: API_KEY,
      production: { url: prod.url, backupDir: local.PITR_BACKUP_DIR, walArchive: prod.archiveDir, workDir: local.PITR_WORK_DIR },
      operationMs: 200,
      // Like an account without the snapshot API, until a test turns it on.
      snapshotApi: 'not-found',
    });
    env = { NEON_API_KEY: API_KEY, NEON_PROJECT_ID: fake.projectId, NEON_API_HOST: fake.apiHost, PITR_WORK_DIR: join(work, 'pitr') };
  });

  afterAll(async () => {
    await fake?.close();
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('a snapshot at a past time is a branch of production without compute, never expiring, marked as pitr’s', async () => {
    const before = requestsTo('POST', '/branches').length;
    const snap = await provider('branch').createSnapshot('at-t1', { at: parsePointInTime(t1) });
    expect(snap).toMatchObject({ name: 'at-t1', provider: 'neon', method: 'branch' });
    expect(new Date(snap.at!).getTime()).toBe(t1Ms());
    const branch = branchNamed('pitr-snap-at-t1')!;
    expect(branch).toBeDefined();
    expect(snap.id).toBe(branch.id);
    expect(branch.parent_id).toBe(fake.defaultBranchId);
    expect(branch.expires_at).toBeUndefined();
    const state = fake.state();
    expect(state.endpoints.filter((e) => e.branch_id === branch.id)).toEqual([]);
    expect(state.branchesWithInstance).not.toContain(branch.id);
    expect(state.annotations[branch.id]).toMatchObject({ pitr: 'snapshot', 'pitr-snapshot': 'at-t1', 'pitr-source': fake.defaultBranchId });
    const posts = requestsTo('POST', '/branches').slice(before);
    expect(posts).toHaveLength(1);
    const body = posts[0]!.body as { branch: Record<string, unknown>; endpoints: unknown[] };
    expect(body.endpoints).toEqual([]);
    expect(body.branch).not.toHaveProperty('expires_at');
    // 'branch' never asks the snapshot API.
    expect(fake.requests.filter((r) => r.path.includes('snapshot'))).toEqual([]);
  });

  it('--at snapshot:<name> through the CLI: a recovery branch of the snapshot, without the writes made after it', async () => {
    const snap = await provider('branch').createSnapshot('head', {});
    expect(snap.method).toBe('branch');
    expect(snap.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(snap.at).toBeTruthy();
    await prod.query(`insert into items values (9003, 'later')`);
    const r = await runPitr(['branch', 'create', '--at', 'snapshot:head', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ provider: 'neon', source: 'main', target: 'snapshot:head', name: 'pitr-main-snap-head' });
    expect(new Date(r.json.expiresAt).getTime() - Date.now()).toBeGreaterThan(23 * 3600_000);
    expect(await branchCounts(r.json.name)).toEqual({ all: 4902, deleted: 0, after: 1, later: 0 });
    expect(await counts(prod.url)).toMatchObject({ later: 1 });
    const made = branchNamed(r.json.name)!;
    expect(made.parent_id).toBe(snap.id);
    expect(fake.state().annotations[made.id]).toMatchObject({ pitr: 'recovery', 'pitr-target': 'snapshot:head' });
    const body = requestsTo('POST', '/branches').at(-1)!.body as { branch: Record<string, unknown>; endpoints: unknown[] };
    expect(body.branch).toMatchObject({ parent_id: snap.id });
    expect(body.branch).not.toHaveProperty('parent_timestamp');
    expect(body.endpoints).toEqual([{ type: 'read_write' }]);
  });

  it('a snapshot outlives the history window: --at snapshot:<name> works where --at <its time> is refused', async () => {
    const age = Date.now() - t1Ms();
    if (age < 3000) await new Promise((r) => setTimeout(r, 3000 - age));
    fake.setHistoryRetentionSeconds(Math.floor((Date.now() - t1Ms()) / 1000) - 1);
    try {
      const refusedRun = await runPitr(['--at', t1], env);
      expect(refusedRun.code).toBe(2);
      expect(refusedRun.stderr).toMatch(/outside the project's history window/);
      const r = await runPitr(['--at', 'snapshot:at-t1', '--json'], env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.target).toBe('snapshot:at-t1');
      expect(await branchCounts(r.json.name)).toEqual({ all: 5001, deleted: 100, after: 0, later: 0 });
      // Time Travel reads the history itself: out of reach now, and it says what to do instead.
      const err = await failure(provider().openPointInTime(parsePointInTime('snapshot:at-t1')));
      expect(err.code).toBe('outside_history');
      expect(err.message).toMatch(/Time Travel cannot read it; make a branch from it instead: pitr --at snapshot:at-t1$/);
    } finally {
      fake.setHistoryRetentionSeconds(86_400);
    }
  });

  it('list shows only snapshots, oldest first; branches and prune never show or touch them; get, name taken, window, bad name', async () => {
    const p = provider('branch');
    const list = await p.listSnapshots();
    expect(list.map((s) => s.name)).toEqual(['at-t1', 'head']);
    const snapshotIds = list.map((s) => s.id);
    const recovery = await p.listRecoveryBranches();
    expect(recovery.length).toBeGreaterThanOrEqual(2);
    expect(recovery.map((b) => b.id).filter((id) => snapshotIds.includes(id))).toEqual([]);
    const cliList = await runPitr(['branches', '--json'], env);
    expect(cliList.code, cliList.stderr).toBe(0);
    expect(cliList.json.branches.map((b: { name: string }) => b.name).filter((n: string) => n.startsWith('pitr-snap-'))).toEqual([]);
    const prune = await runPitr(['branches', 'prune', '--json'], env);
    expect(prune.code, prune.stderr).toBe(0);
    expect((await p.listSnapshots()).map((s) => s.name)).toEqual(['at-t1', 'head']);

    expect((await p.getSnapshot('head')).id).toBe(list[1]!.id);
    const unknown = await failure(p.getSnapshot('nope'));
    expect(unknown).toBeInstanceOf(PitrError);
    expect(unknown.code).toBe('unknown_snapshot');
    expect(unknown.exitClass).toBe('usage');
    expect(unknown.message).toBe(`no snapshot "nope" in project ${fake.projectId} (snapshots: at-t1, head)`);
    const viaCli = await runPitr(['--at', 'snapshot:nope'], env);
    expect(viaCli.code).toBe(2);
    expect(viaCli.stderr).toContain('no snapshot "nope"');

    const taken = await failure(p.createSnapshot('head', {}));
    expect(taken.code).toBe('snapshot_exists');
    expect(taken.exitClass).toBe('usage');
    expect(taken.message).not.toContain('\n');

    const posts = requestsTo('POST', '/branches').length;
    const outside = await failure(p.createSnapshot('too-old', { at: parsePointInTime('-3d') }));
    expect(outside.code).toBe('outside_history');
    expect(outside.message).toMatch(/outside the project's history window \(24 h\): recoverable from .* to now$/);
    expect(requestsTo('POST', '/branches').length).toBe(posts);
    expect((await failure(p.createSnapshot('bad name!', {}))).code).toBe('bad_snapshot_name');
  });

  it('delete: only pitr’s snapshots, never a branch made from one still in use, a recovery branch or someone else’s branch', async () => {
    const p = provider('branch');
    const inUse = await failure(p.deleteSnapshot('head'));
    expect(inUse.code).toBe('snapshot_in_use');
    expect(inUse.exitClass).toBe('refused');
    expect(inUse.message).toContain('pitr-main-snap-head');
    const viaBranches = await runPitr(['branches', 'delete', 'pitr-snap-head'], env);
    expect(viaBranches.code).toBe(3);
    expect(viaBranches.stderr).toContain('pitr snapshot delete head');

    fake.addForeignBranch('pitr-snap-alien');
    const foreign = await failure(p.deleteSnapshot('alien'));
    expect(foreign.code).toBe('refuse_foreign_branch');
    expect(branchNamed('pitr-snap-alien')).toBeDefined();
    expect((await failure(p.deleteSnapshot('pitr-main-snap-head'))).code).toBe('refuse_recovery_branch');
    expect((await failure(p.deleteSnapshot('nope'))).code).toBe('unknown_snapshot');

    expect((await runPitr(['branches', 'delete', 'pitr-main-snap-head'], env)).code).toBe(0);
    const deleted = await p.deleteSnapshot('head');
    expect(deleted.name).toBe('head');
    expect(branchNamed('pitr-snap-head')).toBeUndefined();
    expect((await p.listSnapshots()).map((s) => s.name)).toEqual(['at-t1']);
  });

  it('where the account has the snapshot API, auto uses it; --at snapshot:<name> restores it into a pitr branch', async () => {
    fake.setSnapshotApi('available');
    try {
      const p = provider();
      const branchesBefore = fake.state().branches.length;
      const snap = await p.createSnapshot('api-t1', { at: parsePointInTime(t1) });
      expect(snap).toMatchObject({ name: 'api-t1', method: 'neon-snapshot' });
      expect(new Date(snap.at!).getTime()).toBe(t1Ms());
      const create = requestsTo('POST', `/branches/${fake.defaultBranchId}/snapshot`);
      expect(create).toHaveLength(1);
      const query = new URLSearchParams(create[0]!.query);
      expect(query.get('name')).toBe('pitr-snap-api-t1');
      expect(query.get('timestamp')).toBeTruthy();
      expect(query.has('expires_at')).toBe(false);
      expect(fake.state().snapshots.map((s) => s.name)).toEqual(['pitr-snap-api-t1']);
      expect(fake.state().branches.length).toBe(branchesBefore);
      expect((await p.listSnapshots()).map((s) => `${s.name}:${s.method}`)).toEqual(['at-t1:branch', 'api-t1:neon-snapshot']);

      const r = await runPitr(['--at', 'snapshot:api-t1', '--json'], env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.json).toMatchObject({ target: 'snapshot:api-t1', name: 'pitr-main-snap-api-t1' });
      expect(requestsTo('POST', `/snapshots/${snap.id}/restore`)).toHaveLength(1);
      expect(await branchCounts(r.json.name)).toEqual({ all: 5001, deleted: 100, after: 0, later: 0 });
      // Restored branches carry no annotation: pitr still lists them as its own, with their expiry.
      const listed = (await runPitr(['branches', '--json'], env)).json.branches.find((b: { name: string }) => b.name === r.json.name);
      expect(listed?.expiresAt).toBeTruthy();
      expect(branchNamed(r.json.name)!.restored_from).toBe(snap.id);

      // Over the plan's limit: a one-line error saying what to do, not a silent switch.
      fake.setSnapshotLimit(1);
      const limited = await failure(p.createSnapshot('one-too-many', {}));
      expect(limited.code).toBe('snapshot_limit');
      expect(limited.message).toMatch(/pitr snapshot delete/);
      fake.setSnapshotLimit(10);

      await p.deleteSnapshot('api-t1');
      expect(fake.state().snapshots).toEqual([]);
      expect((await p.listSnapshots()).map((s) => s.name)).toEqual(['at-t1']);
    } finally {
      fake.setSnapshotApi('not-found');
    }
  });

  it('where the account lacks the snapshot API (403 or 404), auto falls back to a branch once per run; api says so', async () => {
    fake.setSnapshotApi('forbidden');
    const p = provider();
    const asked = () => requestsTo('GET', '/snapshots').length + fake.requests.filter((r) => r.path.endsWith('/snapshot')).length;
    const before = asked();
    const first = await p.createSnapshot('fallback-403', {});
    expect(first.method).toBe('branch');
    expect(branchNamed('pitr-snap-fallback-403')).toBeDefined();
    expect(asked() - before).toBe(1);
    expect((await p.createSnapshot('fallback-again', {})).method).toBe('branch');
    expect(asked() - before).toBe(1);

    fake.setSnapshotApi('not-found');
    expect((await provider().createSnapshot('fallback-404', {})).method).toBe('branch');

    const strict = await failure(provider('api').createSnapshot('must-use-api', {}));
    expect(strict.code).toBe('snapshot_api_unavailable');
    expect(strict.message).not.toContain('\n');
    expect(branchNamed('pitr-snap-must-use-api')).toBeUndefined();
    const names = (await provider().listSnapshots()).map((s) => s.name);
    expect(names[0]).toBe('at-t1');
    expect(names.sort()).toEqual(['at-t1', 'fallback-403', 'fallback-404', 'fallback-again']);
  });

  it('through the CLI: snapshot create, list, prune with reasons (only snapshots, never branches), delete', async () => {
    for (const name of ['cli-1', 'cli-2']) {
      const made = await runPitr(['snapshot', 'create', '--name', name, '--json'], env);
      expect(made.code, made.stderr).toBe(0);
      expect(made.json.snapshot).toMatchObject({ name, provider: 'neon', method: 'branch' });
    }
    const before = (await runPitr(['snapshot', 'list', '--json'], env)).json.snapshots.map((s: { name: string }) => s.name);
    expect(before).toEqual(expect.arrayContaining(['cli-1', 'cli-2']));
    const branchesBefore = fake.state().branches.length;
    const keepOne = ['--keep-daily', '1', '--keep-weekly', '0', '--keep-monthly', '0', '--keep-yearly', '0'];
    const dry = await runPitr(['snapshot', 'prune', ...keepOne, '--dry-run', '--json'], env);
    expect(dry.code, dry.stderr).toBe(0);
    const kept = dry.json.snapshots.filter((s: { keep: boolean }) => s.keep);
    expect(kept).toHaveLength(1);
    expect(kept[0].reasons).toContain('newest');
    expect(fake.state().branches.length).toBe(branchesBefore);
    // A snapshot with branches made from it cannot be deleted on Neon: prune skips it, says why, and prunes the rest.
    const real = await runPitr(['snapshot', 'prune', ...keepOne, '--json'], env);
    expect(real.code, real.stderr).toBe(0);
    const skipped = real.json.skipped.map((k: { name: string }) => k.name);
    expect(real.json.skipped.every((k: { reason: string }) => /has branches made from it/.test(k.reason))).toBe(true);
    expect(real.json.deleted).toContain('cli-1');
    const left = (await runPitr(['snapshot', 'list', '--json'], env)).json.snapshots.map((s: { name: string }) => s.name);
    expect(left.sort()).toEqual([kept[0].name, ...skipped].sort());
    const recovery = (await runPitr(['branches', '--json'], env)).json.branches.map((b: { name: string }) => b.name);
    expect(recovery.some((n: string) => n.startsWith('pitr-snap-'))).toBe(false);
  });

  it('pitr migrate --rollback: the failed migration is rolled back in place to the restore point taken before it', async () => {
    const mainUri = (await runPitr(['connection-string', 'main'], env)).stdout.trim();
    const psql = '/usr/lib/postgresql/15/bin/psql';
    const before = await counts(mainUri);
    const migration = ['sh', '-c', `${psql} "$MIGRATION_URL" -qc "insert into items values (9100, 'half a migration')" && echo 'step 2 failed' >&2 && exit 4`];
    const run = await runPitr(['migrate', '--name', 'pre-mig', '--rollback', '--yes', '--', ...migration], { ...env, MIGRATION_URL: mainUri });
    expect(run.code, run.stderr).toBe(4);
    expect(run.stderr).toContain('pitr playbook run failed-migration --set at=snapshot:pre-mig');
    expect(await counts(mainUri)).toEqual(before);
    expect(fake.state().branches.some((b) => b.name.startsWith('main-before-pitr'))).toBe(true);
  });

  it('Time Travel at a snapshot; restore in place from a snapshot branch (branch restore) and from a Neon snapshot (restore + finalize)', async () => {
    const pit = await provider().openPointInTime(parsePointInTime('snapshot:at-t1'));
    expect(pit.connectionUrl).toContain('options=neon_timestamp');
    expect(await counts(pit.connectionUrl)).toEqual({ all: 5001, deleted: 100, after: 0, later: 0 });

    const snapId = (await provider().getSnapshot('at-t1')).id;
    const mainId = fake.defaultBranchId;
    const dry = await provider().restoreInPlace(parsePointInTime('snapshot:at-t1'), { dryRun: true });
    expect(dry).toMatchObject({ applied: false, target: 'snapshot:at-t1', branch: { id: mainId, name: 'main' } });
    const mainUri = (await runPitr(['connection-string', 'main'], env)).stdout.trim();
    const restored = await provider().restoreInPlace(parsePointInTime('snapshot:at-t1'), { preserveName: 'main-before-snap' });
    expect(restored).toMatchObject({ applied: true, preservedAs: 'main-before-snap' });
    expect(requestsTo('POST', `/branches/${mainId}/restore`).at(-1)!.body).toEqual({ source_branch_id: snapId, preserve_under_name: 'main-before-snap' });
    expect(await counts(mainUri)).toEqual({ all: 5001, deleted: 100, after: 0, later: 0 });
    expect(await branchCounts('main-before-snap')).toEqual({ all: 4903, deleted: 0, after: 1, later: 1 });

    fake.setSnapshotApi('available');
    try {
      const p = provider();
      const snap = await p.createSnapshot('api-rollback', { at: parsePointInTime(t1) });
      expect(snap.method).toBe('neon-snapshot');
      const main = new pg.Client({ connectionString: mainUri });
      await main.connect();
      await main.query(`insert into items values (9004, 'later')`);
      await main.end();
      const result = await p.restoreInPlace(parsePointInTime('snapshot:api-rollback'), { preserveName: 'main-before-api' });
      expect(result).toMatchObject({ applied: true, preservedAs: 'main-before-api', preservedBranchId: mainId, branch: { name: 'main' } });
      expect(result.branch.id).not.toBe(mainId);
      expect(fake.defaultBranchId).toBe(result.branch.id);
      expect(branchNamed('main')!.restored_from).toBe(snap.id);
      expect(branchNamed('main-before-api')!.id).toBe(mainId);
      // finalize moved main's compute: the same URI now reads the snapshot's data.
      expect(await counts(mainUri)).toEqual({ all: 5001, deleted: 100, after: 0, later: 0 });
    } finally {
      fake.setSnapshotApi('not-found');
    }
  });
});

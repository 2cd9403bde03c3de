import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import pg from 'pg';
import { makeTempRoot, startCluster, switchAndArchiveWal, type TestCluster } from '../support/cluster.js';
import { cliTranscript, runPitr } from '../support/cli.js';
import { startWsProxy, type WsProxy } from '../support/ws-proxy.js';
import { TEST_NEON_API_KEY } from '../support/secrets.js';
import { startFakeNeon, type FakeNeon } from '../fakes/neon/index.js';
import { NeonProvider } from '../../src/providers/neon/index.js';
import { describePointInTime, parsePointInTime } from '../../src/time/index.js';

/**
 * The Neon path end to end: the built CLI talks HTTP to a stateful fake of the Neon API whose
 * branches are real local recovery instances, so "a Neon branch at T1" holds real data.
 */
describe('pitr on Neon (against the fake API)', () => {
  const API_KEY = TEST_NEON_API_KEY;
  let prod: TestCluster;
  let work: string;
  let fake: FakeNeon;
  let proxy: WsProxy;
  let env: Record<string, string>;
  let t1: string;

  async function counts(url: string) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query(`select count(*)::int as all, count(*) filter (where id <= 100)::int as deleted, count(*) filter (where note = 'after')::int as after from items`);
      return rows[0] as { all: number; deleted: number; after: number };
    } finally {
      await client.end();
    }
  }
  const postsTo = (suffix: string) => fake.requests.filter((r: { method: string; path: string }) => r.method === 'POST' && r.path.endsWith(suffix));

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-neon-');
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
      operationMs: 300,
    });
    proxy = await startWsProxy();
    env = { NEON_API_KEY: API_KEY, NEON_PROJECT_ID: fake.projectId, NEON_API_HOST: fake.apiHost, PITR_WORK_DIR: join(work, 'pitr') };
  });

  afterAll(async () => {
    await proxy?.close();
    await fake?.close();
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('pitr --at T1 creates a Neon branch holding the deleted rows and none of the later writes', async () => {
    const r = await runPitr(['--at', t1, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ provider: 'neon', target: describePointInTime(parsePointInTime(t1)) });
    expect(r.json.name).toMatch(/^pitr-main-\d{8}T\d{6}Z$/);
    expect(Object.keys(r.json)).toEqual(expect.arrayContaining(['id', 'name', 'provider', 'target', 'connectionUrl', 'createdAt', 'expiresAt', 'secondsToQueryable']));
    expect(r.json.connectionUrl).toMatch(/:\*+@/);
    expect(new Date(r.json.expiresAt).getTime() - Date.now()).toBeGreaterThan(23 * 3600_000);
    const cs = await runPitr(['connection-string', r.json.name], env);
    expect(cs.code, cs.stderr).toBe(0);
    const uri = cs.stdout.trim();
    expect(uri).toMatch(/^postgres(ql)?:\/\/[^:]+:npg_[^@]+@/);
    expect(await counts(uri)).toEqual({ all: 5001, deleted: 100, after: 0 });
    expect(await counts(prod.url)).toMatchObject({ deleted: 0, after: 1 });
    const created = postsTo('/branches').at(-1)!.body as { branch: { parent_timestamp: string; expires_at: string }; endpoints: { type: string }[] };
    expect(created.branch.parent_timestamp).toBe(describePointInTime(parsePointInTime(t1)));
    expect(created.endpoints).toEqual([{ type: 'read_write' }]);
  });

  it('refuses a target outside the history window before calling the create API', async () => {
    const before = postsTo('/branches').length;
    const r = await runPitr(['--at', '-3d'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/outside the project's history window \(24 h\): recoverable from .* to now/);
    expect(postsTo('/branches').length).toBe(before);
  });

  it('retries 423 (locked) and then succeeds', async () => {
    fake.inject('POST', '/projects/:projectId/branches', [{ status: 423 }, { status: 423 }]);
    const before = postsTo('/branches').length;
    const r = await runPitr(['--at', t1, '--json', '--name', 'after-locks'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(postsTo('/branches').length - before).toBe(3);
  });

  it('honours Retry-After on 429', async () => {
    fake.inject('GET', '/projects/:projectId/branches', [{ status: 429, retryAfterSeconds: 2 }]);
    const started = Date.now();
    const r = await runPitr(['branches', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
  });

  it('gives up on persistent 5xx with a one-line error', async () => {
    fake.inject('GET', '/projects/:projectId', Array.from({ length: 6 }, () => ({ status: 503 as const })));
    const r = await runPitr(['--at', t1], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/pitr: error: get project .*: the Neon API failed \(503: .*\) after 6 tries/);
  });

  it('reports a failed operation with its id and error', async () => {
    fake.inject('POST', '/projects/:projectId/branches', [{ failOperation: true, error: 'compute quota exceeded' }]);
    const r = await runPitr(['--at', t1, '--name', 'doomed'], env);
    expect(r.code).toBe(1);
    // Both operations of the create fail; whichever a poll sees first is reported (each is polled at its own moment).
    expect(r.stderr).toMatch(/Neon operation (create_branch|start_compute) \([0-9a-f-]+\) failed: compute quota exceeded \(the half-created branch doomed was deleted\)/);
    expect(fake.state().branches.map((b: { name: string }) => b.name)).not.toContain('doomed');
  });

  it('times out waiting for an operation that never finishes', async () => {
    fake.inject('POST', '/projects/:projectId/branches', [{ stallOperation: true }]);
    const r = await runPitr(['--at', t1, '--name', 'stalled', '--timeout', '2s'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('timed out after 2 s waiting for Neon');
    expect(r.stderr).toMatch(/half-created branch stalled (was deleted|could not be deleted .* it expires at)/);
  });

  it('--driver ws runs the same flow through a WebSocket proxy', async () => {
    const r = await runPitr(['--at', t1, '--json', '--driver', 'ws', '--ws-proxy', proxy.template, '--name', 'over-ws'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(proxy.connections).toBeGreaterThan(0);
    // Every feature works over the WebSocket driver: the diff (plain queries, no COPY) too.
    const before = proxy.connections;
    const d = await runPitr(['diff', 'items', '--branch', 'over-ws', '--driver', 'ws', '--ws-proxy', proxy.template, '--json'], env);
    expect(d.code, d.stderr).toBe(0);
    expect(d.json.summary).toMatchObject({ missing: 100, extra: 1 });
    expect(proxy.connections).toBeGreaterThanOrEqual(before + 2);
  });

  it('prune deletes only pitr branches that expired; foreign, default and protected branches are refused', async () => {
    fake.addForeignBranch('dev-alice');
    fake.addForeignBranch('release', { protected: true });
    const short = await runPitr(['--at', t1, '--ttl', '1s', '--name', 'short-lived', '--json'], env);
    expect(short.code, short.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, 1200));
    const prune = await runPitr(['branches', 'prune', '--json'], env);
    expect(prune.code, prune.stderr).toBe(0);
    expect(prune.json.deleted.map((b: { name: string }) => b.name)).toEqual(['short-lived']);
    const names = fake.state().branches.map((b: { name: string }) => b.name);
    expect(names).toEqual(expect.arrayContaining(['main', 'dev-alice', 'release']));
    expect(names).not.toContain('short-lived');
    for (const [branch, why] of [
      ['dev-alice', 'was not created by pitr'],
      ['release', 'protected'],
      ['main', 'default branch'],
    ]) {
      const r = await runPitr(['branches', 'delete', branch!], env);
      expect(r.code, branch).toBe(3);
      expect(r.stderr).toContain(why);
    }
    const list = await runPitr(['branches', '--json'], env);
    expect(list.json.branches.every((b: { name: string }) => !['main', 'dev-alice', 'release'].includes(b.name))).toBe(true);
  });

  it('Time Travel: reads the past without creating a branch, read-only', async () => {
    const provider = new NeonProvider({ apiKey: API_KEY, apiHost: fake.apiHost, projectId: fake.projectId, operationTimeoutMs: 60_000 });
    const branchesBefore = fake.state().branches.length;
    const pit = await provider.openPointInTime!(parsePointInTime(t1));
    expect(pit.connectionUrl).toContain('options=neon_timestamp');
    expect(await counts(pit.connectionUrl)).toEqual({ all: 5001, deleted: 100, after: 0 });
    const client = new pg.Client({ connectionString: pit.connectionUrl });
    await client.connect();
    await expect(client.query(`insert into items values (1, 'x')`)).rejects.toThrow(/read-only/);
    await client.end();
    expect(fake.state().branches.length).toBe(branchesBefore);
  });

  it('preview and diff --at read the past through Time Travel, without a branch', async () => {
    const branchesBefore = fake.state().branches.length;
    const r = await runPitr(['preview', '--at', t1, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.tables).toEqual([expect.objectContaining({ table: 'public.items', missing: 100, changed: 0, extra: 1 })]);
    const d = await runPitr(['diff', 'items', '--at', t1, '--format', 'csv', '--where', 'id <= 2'], env);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout.trim().split('\n')).toEqual(['kind,changed_columns,id,note', 'missing,,1,before', 'missing,,2,before']);
    expect(fake.state().branches.length).toBe(branchesBefore);
  });

  it('playbooks through the Neon API: accidental-deletion, data-corruption, restore-drill', async () => {
    await prod.query(`update items set note = 'corrupted' where id between 201 and 210`);
    const deletion = await runPitr(['playbook', 'run', 'accidental-deletion', '--set', `at=${t1}`, '--set', 'table=items', '--set', 'where=id <= 100', '--yes', '--json'], env);
    expect(deletion.code, deletion.stderr + deletion.stdout).toBe(0);
    expect(deletion.json.steps.find((s: { id: string }) => s.id === 'recover').outputs).toMatchObject({ inserted: 100, conflicts: 0 });
    expect(await counts(prod.url)).toMatchObject({ deleted: 100, after: 1 });
    const corruption = await runPitr(['playbook', 'run', 'data-corruption', '--set', `at=${t1}`, '--set', 'tables=items', '--yes', '--json'], env);
    expect(corruption.code, corruption.stderr + corruption.stdout).toBe(0);
    expect(corruption.json.steps.find((s: { id: string }) => s.id === 'recover').outputs).toMatchObject({ updated: 10 });
    expect(Number((await prod.query<{ n: string }>(`select count(*) as n from items where note = 'corrupted'`))[0]!.n)).toBe(0);
    const drill = await runPitr(['playbook', 'run', 'restore-drill', '--set', 'table=items', '--yes', '--json'], env);
    expect(drill.code, drill.stderr + drill.stdout).toBe(0);
  });

  it('restore in place: asks for confirmation, keeps the old state under a name, URI unchanged', async () => {
    const uriBefore = (await runPitr(['connection-string', 'main'], env)).stdout.trim();
    const stateBefore = await counts(uriBefore);
    const refusedRun = await runPitr(['restore', '--at', t1, '--no-input'], env);
    expect(refusedRun.code).toBe(3);
    expect(postsTo('/restore')).toHaveLength(0);
    const dry = await runPitr(['restore', '--at', t1, '--dry-run', '--json'], env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.json).toMatchObject({ applied: false, branch: { name: 'main' } });
    expect(postsTo('/restore')).toHaveLength(0);

    const r = await runPitr(['restore', '--at', t1, '--yes', '--preserve-as', 'main-before-test', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ applied: true, preservedAs: 'main-before-test' });
    expect(r.json.preservedBranchId).toBeTruthy();
    const uriAfter = (await runPitr(['connection-string', 'main'], env)).stdout.trim();
    expect(uriAfter).toBe(uriBefore);
    expect(await counts(uriAfter)).toEqual({ all: 5001, deleted: 100, after: 0 });
    const kept = (await runPitr(['connection-string', 'main-before-test'], env)).stdout.trim();
    expect(await counts(kept)).toEqual(stateBefore);
  });

  it('never prints the API key, in any output of any run', () => {
    expect(cliTranscript.length).toBeGreaterThan(15);
    const leaks = cliTranscript.filter((run) => (run.stdout + run.stderr).includes(API_KEY));
    expect(leaks.map((run) => run.args.join(' '))).toEqual([]);
    // Authenticated every time, with the key only in the header.
    expect(fake.requests.every((req: { authorization: string | null }) => req.authorization === `Bearer ${API_KEY}`)).toBe(true);
  });

  it('failed-migration playbook through the Neon API rolls production back in place, keeping the current state', async () => {
    // The failed migration, on production as it is now (main's endpoint).
    const mainUri = (await runPitr(['connection-string', 'main'], env)).stdout.trim();
    const main = new pg.Client({ connectionString: mainUri });
    await main.connect();
    await main.query(`alter table items add column half_done int`);
    await main.query(`insert into items (id, note) values (777777, 'written after the migration')`);
    await main.end();
    const before = (await runPitr(['branches', '--json'], env)).json;
    expect(before).toBeTruthy();
    const r = await runPitr(['playbook', 'run', 'failed-migration', '--set', `at=${t1}`, '--set', 'copy_back=items', '--yes', '--json'], env);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const schema = r.json.steps.find((s: { id: string }) => s.id === 'schema').outputs;
    expect(schema.schemaIdentical).toBe(false);
    const rollback = r.json.steps.find((s: { id: string }) => s.id === 'rollback').outputs;
    expect(rollback).toMatchObject({ applied: true, branch: { name: 'main' } });
    expect(rollback.preservedAs).toMatch(/^main-before-pitr-/);
    // Rolled back (no half-done column), and the row written since came back from the kept branch.
    const after = new pg.Client({ connectionString: mainUri });
    await after.connect();
    const columns = await after.query(`select column_name from information_schema.columns where table_name = 'items' order by ordinal_position`);
    const row = await after.query(`select note from items where id = 777777`);
    await after.end();
    expect(columns.rows.map((c) => c.column_name)).toEqual(['id', 'note']);
    expect(row.rows).toEqual([{ note: 'written after the migration' }]);
    expect(r.json.steps.find((s: { id: string }) => s.id === 'copy-back').outputs).toMatchObject({ conflicts: 0, verified: true });
  });
});

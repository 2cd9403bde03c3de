import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { createApiClient, EndpointType, OperationStatus, type Api, type Operation } from '@neondatabase/api-client';
import { makeTempRoot, startCluster, type TestCluster, localEnv } from '../support/cluster.js';
import { processesUsing, runPitr } from '../support/cli.js';
import { startFakeNeon, type FakeNeon } from '../fakes/neon/index.js';

/**
 * The fake Neon itself, driven through the real api-client: real WAL replay behind branches at a
 * timestamp, a restore that keeps the endpoint's URI, Time Travel through the endpoint proxy,
 * injected faults, and refusals that happen before any local work.
 */
describe('fake Neon API backed by local Postgres', () => {
  const API_KEY = 'napi_fake_test_key_0123456789';
  let prod: TestCluster;
  let work: string;
  let fake: FakeNeon;
  let api: Api<unknown>;
  let projectId: string;
  let mainId: string;
  let t1: string;
  let lsn1: string;
  let t1BranchId: string;
  let t1Uri: string;

  const DELETED = 100; // rows 1..100 are deleted after T1

  async function query<R extends pg.QueryResultRow>(url: string, sql: string): Promise<R[]> {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 90_000 });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query<R>(sql)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async function counts(url: string) {
    const [row] = await query<{ deleted: number; before_t1: number; after_t1: number }>(
      url,
      `select (select count(*) from items where id <= ${DELETED})::int as deleted,
              (select count(*) from items where label = 'before-t1')::int as before_t1,
              (select count(*) from items where label = 'after-t1')::int as after_t1`,
    );
    return row!;
  }

  /** The failed HTTP response of a call that must fail. */
  async function httpError(call: Promise<unknown>): Promise<{ status: number; data: { code: string; message: string }; headers: Record<string, unknown> }> {
    try {
      await call;
    } catch (err) {
      const response = (err as { response?: { status: number; data: { code: string; message: string }; headers: Record<string, unknown> } }).response;
      if (response) return response;
      throw err;
    }
    throw new Error('expected the request to fail');
  }

  /** Polls every operation until none is scheduling/running, as a Neon client must. */
  async function settle(operations: Operation[], timeoutMs = 110_000): Promise<Operation[]> {
    const deadline = Date.now() + timeoutMs;
    let current = operations;
    for (;;) {
      current = await Promise.all(current.map(async (op) => (await api.getProjectOperation(projectId, op.id)).data.operation));
      if (current.every((op) => op.status !== OperationStatus.Scheduling && op.status !== OperationStatus.Running)) return current;
      if (Date.now() > deadline) throw new Error(`operations still running: ${current.map((o) => `${o.action}=${o.status}`).join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function uriOf(branchId: string): Promise<string> {
    return (await api.getConnectionUri({ projectId, branch_id: branchId, database_name: 'postgres', role_name: 'postgres' })).data.uri;
  }

  const instanceDirs = async () => readdir(join(work, 'fake', `fake-neon-${projectId}`, 'branches')).catch(() => [] as string[]);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-fake-neon-');
    const env = localEnv(prod, work);
    await prod.query(`
      create table items(id int primary key, label text not null);
      insert into items select g, 'item ' || g from generate_series(1, 1000) g;`);
    const backup = await runPitr(['backup'], env);
    expect(backup.code, backup.stderr).toBe(0);
    await prod.query(`insert into items values (5001, 'before-t1')`);
    // The API takes millisecond timestamps: keep every commit a few ms away from T1.
    await sleep(20);
    const [mark] = await prod.query<{ now: Date; lsn: string }>('select now() as now, pg_current_wal_insert_lsn()::text as lsn');
    t1 = mark!.now.toISOString();
    lsn1 = mark!.lsn;
    await sleep(20);
    await prod.query(`delete from items where id <= ${DELETED}`);
    await prod.query(`insert into items values (6001, 'after-t1')`);

    fake = await startFakeNeon({
      apiKey: API_KEY,
      production: { url: prod.url, backupDir: env.PITR_BACKUP_DIR!, walArchive: prod.archiveDir, workDir: join(work, 'fake') },
      operationMs: 200,
    });
    projectId = fake.projectId;
    mainId = fake.defaultBranchId;
    api = createApiClient({ apiKey: API_KEY, baseURL: fake.apiHost, timeout: 30_000 });
  });

  afterAll(async () => {
    await fake?.close();
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('answers 401 without the right API key and 404 for an unknown project', async () => {
    const stranger = createApiClient({ apiKey: 'napi_wrong', baseURL: fake.apiHost });
    const denied = await httpError(stranger.getProject(projectId));
    expect(denied.status).toBe(401);
    expect(denied.data).toMatchObject({ code: '', message: 'authentication failed' });
    expect((await httpError(api.getProject('no-such-project-1'))).status).toBe(404);
    expect(fake.requests.at(-1)).toMatchObject({ method: 'GET', path: '/projects/no-such-project-1', status: 404, authorization: `Bearer ${API_KEY}` });
  });

  it('describes the project, its default branch, database and role', async () => {
    const { project } = (await api.getProject(projectId)).data;
    const [version] = await prod.query<{ num: number }>(`select current_setting('server_version_num')::int as num`);
    expect(project).toMatchObject({ id: projectId, history_retention_seconds: 86_400, pg_version: Math.floor(version!.num / 10_000) });
    const { branches, annotations } = (await api.listProjectBranches({ projectId })).data;
    expect(branches).toHaveLength(1);
    expect(branches[0]).toMatchObject({ id: mainId, name: 'main', default: true, current_state: 'ready' });
    expect(annotations).toEqual({});
    expect((await api.listProjectBranchDatabases(projectId, mainId)).data.databases).toMatchObject([{ name: 'postgres', owner_name: 'postgres' }]);
    expect((await api.listProjectBranchRoles(projectId, mainId)).data.roles).toMatchObject([{ name: 'postgres' }]);
    const { password } = (await api.getProjectBranchRolePassword(projectId, mainId, 'postgres')).data;
    expect(password).toMatch(/^npg_\w{12}$/);
    const mainUri = await uriOf(mainId);
    expect(mainUri).toMatch(new RegExp(`^postgresql://postgres:${password}@127\\.0\\.0\\.1:\\d+/postgres$`));
    // main's endpoint is production itself.
    expect(await counts(mainUri)).toEqual({ deleted: 0, before_t1: 1, after_t1: 1 });
    expect((await httpError(api.getConnectionUri({ projectId, database_name: 'nope', role_name: 'postgres' }))).status).toBe(400);
  });

  it('creates a branch at T1 by real WAL replay: deleted rows present, later writes absent', async () => {
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
    const res = await api.createProjectBranch(projectId, {
      branch: { parent_id: mainId, name: 'pitr-at-t1', parent_timestamp: t1, expires_at: expiresAt },
      endpoints: [{ type: EndpointType.ReadWrite }],
      annotation_value: { pitr: 'recovery' },
    });
    expect(res.status).toBe(201);
    const created = res.data;
    expect(created.branch).toMatchObject({ name: 'pitr-at-t1', parent_id: mainId, current_state: 'init', pending_state: 'ready', expires_at: expiresAt });
    expect(created.operations.map((o) => o.action)).toEqual(['create_branch', 'start_compute']);
    expect(created.operations.every((o) => o.status === 'scheduling' || o.status === 'running')).toBe(true);
    expect(created.endpoints).toHaveLength(1);
    expect(created.connection_uris?.[0]?.connection_uri).toContain(':npg_');
    t1BranchId = created.branch.id;

    const ops = await settle(created.operations);
    expect(ops.map((o) => o.status)).toEqual(['finished', 'finished']);
    const { branch, annotation } = (await api.getProjectBranch(projectId, t1BranchId)).data;
    expect(branch).toMatchObject({ current_state: 'ready', parent_timestamp: new Date(t1).toISOString() });
    expect(branch.parent_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(annotation.value).toEqual({ pitr: 'recovery' });
    expect((await api.listProjectBranchEndpoints(projectId, t1BranchId)).data.endpoints[0]).toMatchObject({ current_state: 'active', type: 'read_write' });

    t1Uri = await uriOf(t1BranchId);
    expect(t1Uri).toBe(created.connection_uris?.[0]?.connection_uri);
    expect(await counts(t1Uri)).toEqual({ deleted: DELETED, before_t1: 1, after_t1: 0 });
    // A separate copy: writing to it leaves production alone.
    await query(t1Uri, `insert into items values (9001, 'branch-only')`);
    expect(await prod.query(`select 1 from items where id = 9001`)).toHaveLength(0);

    const listed = (await api.listProjectBranches({ projectId, search: 'at-t1' })).data;
    expect(listed.branches.map((b) => b.id)).toEqual([t1BranchId]);
    expect(listed.annotations[t1BranchId]).toMatchObject({ object: { type: 'console/branch', id: t1BranchId }, value: { pitr: 'recovery' } });
  });

  it('creates a branch at an LSN', async () => {
    const res = await api.createProjectBranch(projectId, { branch: { name: 'pitr-at-lsn1', parent_lsn: lsn1 }, endpoints: [{ type: EndpointType.ReadWrite }] });
    expect(res.data.branch.parent_lsn).toBe(lsn1);
    expect((await settle(res.data.operations)).map((o) => o.status)).toEqual(['finished', 'finished']);
    expect(await counts(await uriOf(res.data.branch.id))).toEqual({ deleted: DELETED, before_t1: 1, after_t1: 0 });
    await settle((await api.deleteProjectBranch({ projectId, branchId: res.data.branch.id })).data.operations);
  });

  it('refuses bad requests with Neon-style errors before any local work', async () => {
    const before = { state: fake.state(), dirs: await instanceDirs() };
    const create = (branch: Record<string, unknown>) => httpError(api.createProjectBranch(projectId, { branch, endpoints: [{ type: EndpointType.ReadWrite }] }));

    const tooOld = await create({ name: 'too-old', parent_timestamp: new Date(Date.now() - 86_400_000 - 60_000).toISOString() });
    expect(tooOld.status).toBe(400);
    expect(tooOld.data.message).toMatch(/timestamp .* is outside of the history retention window/);
    const future = await create({ name: 'future', parent_timestamp: new Date(Date.now() + 60_000).toISOString() });
    expect(future.status).toBe(400);
    expect(future.data.message).toMatch(/outside of the history retention window: it is in the future/);
    expect((await create({ name: 'both', parent_timestamp: t1, parent_lsn: '0/1000000' })).status).toBe(400);
    expect((await create({ name: 'pitr-at-t1', parent_timestamp: t1 })).status).toBe(409);
    expect((await create({ name: 'bad-time', parent_timestamp: 'yesterday' })).status).toBe(400);
    expect((await create({ name: 'future-lsn', parent_lsn: 'FFFFFFFF/0' })).status).toBe(400);

    const after = fake.state();
    expect(after.branches).toHaveLength(before.state.branches.length);
    expect(after.operations).toHaveLength(before.state.operations.length);
    expect(await instanceDirs()).toEqual(before.dirs);
  });

  it('fails the operations with the local restore error when the point cannot be restored', async () => {
    // Inside Neon's window, but before the oldest base backup: LocalProvider refuses it.
    const res = await api.createProjectBranch(projectId, {
      branch: { name: 'before-backups', parent_timestamp: new Date(Date.now() - 3_600_000).toISOString() },
      endpoints: [{ type: EndpointType.ReadWrite }],
    });
    const ops = await settle(res.data.operations);
    expect(ops.map((o) => o.status)).toEqual(['failed', 'failed']);
    expect(ops[0]!.error).toMatch(/before the oldest base backup/);
    const deleted = await api.deleteProjectBranch({ projectId, branchId: res.data.branch.id });
    expect((await settle(deleted.data.operations)).every((o) => o.status === 'finished')).toBe(true);
  });

  it('applies injected faults in order: 423, 429 with Retry-After, 500, hang, failOperation, stallOperation', async () => {
    const body = { branch: { name: 'faulty', parent_timestamp: t1 }, endpoints: [{ type: EndpointType.ReadWrite }] };
    fake.inject('POST', '/projects/:projectId/branches', [{ status: 423 }, { failOperation: true, error: 'disk on fire' }]);
    const locked = await httpError(api.createProjectBranch(projectId, body));
    expect(locked.status).toBe(423);
    expect(locked.data.message).toMatch(/conflicting operations/);
    const dirs = await instanceDirs();
    const res = await api.createProjectBranch(projectId, body);
    expect(res.status).toBe(201);
    const ops = await settle(res.data.operations);
    expect(ops.map((o) => [o.status, o.error])).toEqual([
      ['failed', 'disk on fire'],
      ['failed', 'disk on fire'],
    ]);
    expect(await instanceDirs()).toEqual(dirs); // an injected failure does no local work
    expect((await api.getProjectBranch(projectId, res.data.branch.id)).data.branch.current_state).toBe('init');
    await settle((await api.deleteProjectBranch({ projectId, branchId: res.data.branch.id })).data.operations);

    fake.inject('GET', '/projects/:projectId', [{ status: 429, retryAfterSeconds: 7 }]);
    const limited = await httpError(api.getProject(projectId));
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('7');

    fake.inject('GET', '/projects/:projectId/branches', [{ status: 500 }]);
    expect((await httpError(api.listProjectBranches({ projectId }))).status).toBe(500);
    expect((await api.listProjectBranches({ projectId })).status).toBe(200);

    fake.inject('GET', '/projects/:projectId', [{ hang: true }]);
    const impatient = createApiClient({ apiKey: API_KEY, baseURL: fake.apiHost, timeout: 300 });
    await expect(impatient.getProject(projectId)).rejects.toMatchObject({ code: 'ECONNABORTED' });
    expect((await api.getProject(projectId)).status).toBe(200);

    fake.inject('POST', '/projects/:projectId/branches', [{ stallOperation: true }]);
    const stalled = await api.createProjectBranch(projectId, { branch: { name: 'stalled', parent_timestamp: t1 } });
    await sleep(600);
    const [op] = (await Promise.all(stalled.data.operations.map((o) => api.getProjectOperation(projectId, o.id)))).map((r) => r.data.operation);
    expect(op!.status).toBe('running');
    await api.deleteProjectBranch({ projectId, branchId: stalled.data.branch.id });

    const statuses = fake.requests.filter((r) => r.path === `/projects/${projectId}/branches` && r.method === 'POST').map((r) => r.status);
    expect(statuses.slice(-3)).toEqual([423, 201, 201]);
    expect(fake.requests.some((r) => r.status === 0 && r.path === `/projects/${projectId}`)).toBe(true);
  });

  it("refuses to delete the default or a protected branch; deleting a branch removes its instance", async () => {
    const main = await httpError(api.deleteProjectBranch({ projectId, branchId: mainId }));
    expect(main.status).toBe(400);
    expect(main.data.message).toMatch(/default branch/);
    const guarded = fake.addForeignBranch('dev/alice', { protected: true });
    expect((await httpError(api.deleteProjectBranch({ projectId, branchId: guarded.id }))).status).toBe(422);
    const scratch = fake.addForeignBranch('dev/bob');
    await settle((await api.deleteProjectBranch({ projectId, branchId: scratch.id })).data.operations);

    const dirs = (await instanceDirs()).length;
    const deleted = await api.deleteProjectBranch({ projectId, branchId: t1BranchId });
    expect(deleted.data.branch.id).toBe(t1BranchId);
    expect((await settle(deleted.data.operations)).every((o) => o.status === 'finished')).toBe(true);
    expect((await httpError(api.getProjectBranch(projectId, t1BranchId))).status).toBe(404);
    expect((await instanceDirs()).length).toBe(dirs - 1);
    await expect(query(t1Uri, 'select 1')).rejects.toThrow();
  });

  it("serves Time Travel through main's endpoint: the old rows, read-only", async () => {
    const mainUri = await uriOf(mainId);
    const travel = new URL(mainUri);
    travel.searchParams.set('options', `neon_timestamp:${t1}`);
    expect(await counts(travel.toString())).toEqual({ deleted: DELETED, before_t1: 1, after_t1: 0 });
    await expect(query(travel.toString(), `insert into items values (7001, 'time-travel')`)).rejects.toMatchObject({ code: '25006' });
    const byLsn = new URL(mainUri);
    byLsn.searchParams.set('options', `-c statement_timeout=5000 neon_lsn:${lsn1}`);
    expect(await counts(byLsn.toString())).toEqual({ deleted: DELETED, before_t1: 1, after_t1: 0 });
    // The same endpoint without the option is still production.
    expect(await counts(mainUri)).toEqual({ deleted: 0, before_t1: 1, after_t1: 1 });

    const tooOld = new URL(mainUri);
    tooOld.searchParams.set('options', `neon_timestamp:${new Date(Date.now() - 2 * 86_400_000).toISOString()}`);
    await expect(query(tooOld.toString(), 'select 1')).rejects.toThrow(/outside of the history retention window/);
  });

  it('restores main to T1 in place: same URI, old state preserved under the given name', async () => {
    const mainUri = await uriOf(mainId);
    expect((await httpError(api.restoreProjectBranch(projectId, mainId, { source_branch_id: mainId, source_timestamp: t1 }))).status).toBe(400);
    expect((await httpError(api.restoreProjectBranch(projectId, mainId, { source_branch_id: mainId, preserve_under_name: 'x' }))).status).toBe(400);

    // A restore whose operations fail is undone: main keeps its data, no backup branch remains.
    fake.inject('POST', '/projects/:projectId/branches/:branchId/restore', [{ failOperation: true, error: 'restore broke' }]);
    const broken = await api.restoreProjectBranch(projectId, mainId, { source_branch_id: mainId, source_timestamp: t1, preserve_under_name: 'doomed_backup' });
    expect((await settle(broken.data.operations)).every((o) => o.status === 'failed' && o.error === 'restore broke')).toBe(true);
    expect((await api.getProjectBranch(projectId, mainId)).data.branch).toMatchObject({ current_state: 'ready' });
    expect((await api.getProjectBranch(projectId, mainId)).data.branch.parent_id).toBeUndefined();
    expect((await api.listProjectBranches({ projectId, search: 'doomed_backup' })).data.branches).toEqual([]);
    expect(await counts(mainUri)).toEqual({ deleted: 0, before_t1: 1, after_t1: 1 });

    const res = await api.restoreProjectBranch(projectId, mainId, { source_branch_id: mainId, source_timestamp: t1, preserve_under_name: 'main_before_restore' });
    expect(res.data.branch.id).toBe(mainId);
    expect((await settle(res.data.operations)).every((o) => o.status === 'finished')).toBe(true);

    const { branch } = (await api.getProjectBranch(projectId, mainId)).data;
    expect(branch).toMatchObject({ name: 'main', default: true, current_state: 'ready' });
    const preserved = (await api.listProjectBranches({ projectId, search: 'main_before_restore' })).data.branches[0]!;
    expect(branch.parent_id).toBe(preserved.id);
    expect(await uriOf(mainId)).toBe(mainUri);
    expect(await counts(mainUri)).toEqual({ deleted: DELETED, before_t1: 1, after_t1: 0 });
    // The preserved branch took over the old state: production itself.
    expect(await counts(await uriOf(preserved.id))).toEqual({ deleted: 0, before_t1: 1, after_t1: 1 });
    // main is read-write after the restore, and its writes do not reach the preserved state.
    await query(mainUri, `insert into items values (8001, 'after-restore')`);
    expect(await prod.query(`select 1 from items where id = 8001`)).toHaveLength(0);
    // The backup is main's parent now: Neon will not delete a branch with children.
    expect((await httpError(api.deleteProjectBranch({ projectId, branchId: preserved.id }))).status).toBe(400);
  });

  it('close() stops and deletes every local instance it made, and leaves production alone', async () => {
    expect((await instanceDirs()).length).toBeGreaterThan(0);
    await fake.close();
    expect(await processesUsing(join(work, 'fake'))).toEqual([]);
    expect(await instanceDirs()).toEqual([]);
    expect(await prod.query('select count(*)::int as n from items')).toHaveLength(1);
  });
});

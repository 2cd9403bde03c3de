import { afterAll, afterEach, beforeAll, describe as group, expect, it, vi } from 'vitest';
import { restoreInPlace } from '../../src/providers/neon/restore.js';
import { formatCompactUtc } from '../../src/time/index.js';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import type { Branch } from '@neondatabase/api-client';
import { NeonApiError } from '../../src/providers/neon/api.js';
import { describe, isLimitError, isSnapshotApiMissing, NeonLookup, refuseUndeletable, refuseXid, slug, type Annotated, type NeonSettings } from '../../src/providers/neon/lookup.js';
import { PitrError } from '../../src/errors.js';
import { refusal } from '../support/refusal.js';

const HOST = 'http://neon.test/api/v2';
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

function lookup(over: Partial<NeonSettings> = {}): NeonLookup {
  return new NeonLookup({ apiKey: 'napi_unit_test_key', apiHost: HOST, maxAttempts: 1, projectId: 'p1', operationTimeoutMs: 1000, ...over });
}

function branch(id: string, name: string, over: Partial<Branch> = {}): Branch {
  return { id, name, project_id: 'p1', created_at: '2026-11-25T10:00:00Z', updated_at: '2026-11-25T10:00:00Z', current_state: 'ready', default: false, protected: false, ...over } as Branch;
}
const annotated = (b: Branch, annotation?: Record<string, string>): Annotated => ({ branch: b, annotation });

const main = branch('br-main', 'main', { default: true });
const staging = branch('br-staging', 'staging');
const recovery = annotated(branch('br-r1', 'pitr-r1', { parent_id: 'br-main', parent_timestamp: '2026-11-25T09:00:00Z' }), { pitr: 'recovery', 'pitr-target': '2026-11-25T09:00:00.000Z' });
const legacy = annotated(branch('br-r2', 'pitr-r2', { parent_lsn: '0/16B3748', current_state: 'init' }), { pitr: 'yes' });
const snapshot = annotated(branch('br-s1', 'pitr-snap-before', { current_state: 'archived' as Branch['current_state'] }), { pitr: 'snapshot' });
const restored = annotated(branch('br-r3', 'pitr-restored', { restored_from: 'snap-1' } as Partial<Branch>));
const restoredSnap = annotated(branch('br-r4', 'pitr-snap-x', { restored_from: 'snap-2' } as Partial<Branch>));
const foreignRestored = annotated(branch('br-r5', 'team-copy', { restored_from: 'snap-3' } as Partial<Branch>));
const all = [annotated(main), annotated(staging), recovery, legacy, snapshot, restored, restoredSnap, foreignRestored, annotated(branch('br-d', 'pitr-x', { default: true }), { pitr: 'recovery' })];

const apiError = (status: number | undefined, neonMessage: string) => new NeonApiError('neon_api', `HTTP ${status}: ${neonMessage}`, status, neonMessage);

group('Neon error classification', () => {
  it.each([
    [400, 'snapshot limit reached', true],
    [422, 'maximum number of snapshots exceeded', true],
    [429, 'rate limit', false],
    [423, 'locked: limit', false],
    [500, 'limit', false],
    [400, 'bad request', false],
  ])('%i "%s": over a limit = %s', (status, message, expected) => {
    expect(isLimitError(apiError(status, message))).toBe(expected);
  });

  it.each([
    [403, 'forbidden', true],
    [404, 'not found', true],
    [405, 'method', true],
    [501, 'not implemented', true],
    [400, 'snapshots are not enabled for this project', true],
    [402, 'upgrade your plan', true],
    [403, 'snapshot quota exceeded', false],
    [400, 'bad name', false],
    [500, 'feature', false],
    [undefined, 'network', false],
  ])('%s "%s": snapshot API missing = %s', (status, message, expected) => {
    expect(isSnapshotApiMissing(apiError(status, message))).toBe(expected);
  });

  it('other errors are neither', () => {
    expect(isSnapshotApiMissing(new PitrError('x', 'y'))).toBe(false);
    expect(isLimitError(new Error('limit'))).toBe(false);
  });
});

group('Neon naming and refusals', () => {
  it('slug keeps letters, digits and dashes', () => {
    expect(slug('before deploy #42')).toBe('before-deploy-42');
    expect(slug('ok-1')).toBe('ok-1');
  });

  it('a transaction id is refused with the LSN alternative; times, LSNs and nothing pass', () => {
    const err = refusal(() => refuseXid({ kind: 'xid', xid: '812', input: 'xid:812' }));
    expect(err).toMatchObject({ code: 'xid_not_supported', exitClass: 'usage' });
    expect(err.message).toContain('xid:812');
    const lsn = { kind: 'lsn' as const, lsn: '0/1', input: 'lsn:0/1' };
    expect(refuseXid(lsn)).toBe(lsn);
    expect(refuseXid(undefined)).toBeUndefined();
  });

  it('default and protected branches are never deleted', () => {
    expect(refusal(() => refuseUndeletable(main))).toMatchObject({ code: 'refuse_default_branch', exitClass: 'refused' });
    expect(refusal(() => refuseUndeletable(branch('b', 'prod', { protected: true })))).toMatchObject({ code: 'refuse_protected_branch' });
    expect(() => refuseUndeletable(staging)).not.toThrow();
  });
});

group('NeonLookup over the project data', () => {
  it('refuses a missing project and an unknown snapshot method before any request', () => {
    expect(refusal(() => lookup({ projectId: '' }))).toMatchObject({ code: 'missing_project', exitClass: 'usage' });
    expect(refusal(() => lookup({ snapshots: 'cloud' as 'api' }))).toMatchObject({ code: 'bad_snapshot_method' });
    expect(lookup().snapshotMethod).toBe('auto');
    expect(lookup({ snapshots: 'branch' }).snapshotMethod).toBe('branch');
    expect(lookup().projectId).toBe('p1');
  });

  it('production: --source by id, then by name, else the default branch', async () => {
    const n = lookup();
    await expect(n.sourceBranch(all)).resolves.toBe(main);
    await expect(lookup({ source: 'staging' }).sourceBranch(all)).resolves.toBe(staging);
    await expect(lookup({ source: 'br-staging' }).sourceBranch(all)).resolves.toBe(staging);
    await expect(lookup({ source: 'nope' }).sourceBranch(all)).rejects.toMatchObject({ code: 'unknown_source', message: expect.stringContaining('branches: main, staging') });
    await expect(n.sourceBranch([annotated(staging)])).rejects.toMatchObject({ code: 'unknown_source', message: 'project p1 has no default branch' });
  });

  it("pitr's recovery branches and snapshot branches are told apart; others are never ours", () => {
    const n = lookup();
    expect(n.ours(all).map((b) => b.branch.name)).toEqual(['pitr-r1', 'pitr-r2', 'pitr-restored']);
    expect(n.snapshotBranches(all).map((b) => b.branch.name)).toEqual(['pitr-snap-before']);
  });

  it('find by id or name; freeName avoids taken names', async () => {
    const n = lookup();
    await expect(n.find('br-staging', all)).resolves.toMatchObject({ branch: staging });
    await expect(n.find('pitr-r1', all)).resolves.toBe(recovery);
    await expect(n.find('ghost', all)).rejects.toMatchObject({ code: 'unknown_branch' });
    expect(n.freeName('pitr-r1', all)).toBe('pitr-r1-2');
    expect(n.freeName('fresh', all)).toBe('fresh');
  });

  it('recovery branches carry their recorded target, else the parent time or LSN, and a state', () => {
    const n = lookup();
    expect(n.toRecoveryBranch(recovery, 'p1/main')).toMatchObject({ id: 'br-r1', provider: 'neon', target: '2026-11-25T09:00:00.000Z', state: 'running', expiresAt: null, details: { parentId: 'br-main' } });
    expect(n.toRecoveryBranch(legacy, 'p1/main')).toMatchObject({ target: 'lsn:0/16B3748', state: 'creating', details: { parentId: null } });
    expect(n.toRecoveryBranch({ branch: branch('b', 'x', { parent_timestamp: '2026-11-25T08:00:00Z' }), annotation: undefined }, 's').target).toBe('2026-11-25T08:00:00Z');
    expect(n.toRecoveryBranch(snapshot, 's')).toMatchObject({ target: '', state: 'unknown' });
  });

  it('the history window: times before it are refused, other points are not checked', () => {
    const n = lookup();
    const w = n.window(3600, Date.parse('2026-11-25T12:00:00Z'));
    expect(w.oldest.toISOString()).toBe('2026-11-25T11:00:00.000Z');
    expect(() => n.checkWindow({ kind: 'time', at: new Date(Date.now() - 60_000), input: 'x' }, 3600)).not.toThrow();
    expect(() => n.checkWindow({ kind: 'lsn', lsn: '0/1', input: 'lsn:0/1' }, 3600)).not.toThrow();
    expect(refusal(() => n.checkWindow({ kind: 'time', at: new Date(Date.now() - 7200_000), input: 'x' }, 3600))).toMatchObject({ code: 'outside_history', message: expect.stringContaining('(1 h)') });
  });

  it('discardHalfMade says whether the half-made object was deleted; foreign errors pass through', async () => {
    const n = lookup();
    const original = new PitrError('op_failed', 'create failed', { exit: 'refused', detail: 'd' });
    const ok = (await n.discardHalfMade('branch x', () => Promise.resolve(), 'delete it by hand', original)) as PitrError;
    expect(ok).toMatchObject({ code: 'op_failed', message: 'create failed (the branch x was deleted)', exitClass: 'refused', detail: 'd' });
    const bad = (await n.discardHalfMade('branch x', () => Promise.reject(new Error('503')), 'delete it by hand', new PitrError('op_failed', 'create failed'))) as PitrError;
    expect(bad.message).toBe('create failed (the branch x could not be deleted (503); delete it by hand)');
    const foreign = new Error('boom');
    expect(await n.discardHalfMade('x', () => Promise.reject(new Error('never')), '', foreign)).toBe(foreign);
  });
});

group('NeonLookup through the API', () => {
  function serve(databases: { name: string; owner_name: string }[]) {
    server.use(
      http.get(`${HOST}/projects/p1`, () => HttpResponse.json({ project: { id: 'p1', name: 'shop', pg_version: 16, region_id: 'aws-eu', history_retention_seconds: 86400 } })),
      http.get(`${HOST}/projects/p1/branches`, () => HttpResponse.json({ branches: [main, staging, recovery.branch], annotations: { 'br-r1': { value: recovery.annotation } } })),
      http.get(`${HOST}/projects/p1/branches/:id/databases`, () => HttpResponse.json({ databases })),
      http.get(`${HOST}/projects/p1/connection_uri`, ({ request }) => {
        const q = new URL(request.url).searchParams;
        return HttpResponse.json({ uri: `postgres://${q.get('role_name')}@ep.test/${q.get('database_name')}?branch=${q.get('branch_id')}` });
      }),
      http.delete(`${HOST}/projects/p1/branches/:id`, () => HttpResponse.json({ branch: staging, operations: [] })),
    );
  }

  it('lists branches with their annotations and describes the source', async () => {
    serve([{ name: 'app', owner_name: 'app_owner' }]);
    const n = lookup();
    const listed = await n.branches();
    expect(listed.map((b) => [b.branch.name, b.annotation?.pitr ?? null])).toEqual([['main', null], ['staging', null], ['pitr-r1', 'recovery']]);
    const info = await describe(n);
    expect(info).toMatchObject({ provider: 'neon', source: 'shop/main', pgVersion: '16', problems: [], details: { projectId: 'p1', region: 'aws-eu', historyRetentionSeconds: 86400 } });
    await expect(n.find('staging')).resolves.toMatchObject({ branch: staging });
    await expect(n.createdMeanwhile('pitr-r1')).resolves.toMatchObject({ branch: recovery.branch, operations: [] });
    await expect(n.createdMeanwhile('absent')).resolves.toBeUndefined();
  });

  it('database and role: the only one, the one asked for, or a refusal naming the choices', async () => {
    serve([{ name: 'app', owner_name: 'app_owner' }]);
    await expect(lookup().databaseAndRole('br-main')).resolves.toEqual({ database: 'app', role: 'app_owner' });
    await expect(lookup({ role: 'reader' }).databaseAndRole('br-main')).resolves.toEqual({ database: 'app', role: 'reader' });
    await expect(lookup({ database: 'other' }).databaseAndRole('br-main')).rejects.toMatchObject({ code: 'unknown_database', message: expect.stringContaining('databases: app') });
    server.resetHandlers();
    serve([{ name: 'app', owner_name: 'o1' }, { name: 'billing', owner_name: 'o2' }]);
    await expect(lookup().databaseAndRole('br-main')).rejects.toMatchObject({ code: 'choose_database', message: expect.stringContaining('app, billing') });
    await expect(lookup({ database: 'billing' }).databaseAndRole('br-main')).resolves.toEqual({ database: 'billing', role: 'o2' });
    server.resetHandlers();
    serve([]);
    await expect(lookup({ database: 'x' }).databaseAndRole('br-main')).rejects.toMatchObject({ message: expect.stringContaining('databases: none') });
  });

  it('connection URI and the clean-up of a half-created branch', async () => {
    serve([]);
    const n = lookup();
    await expect(n.connectionUri('br-main', 'app', 'r')).resolves.toBe('postgres://r@ep.test/app?branch=br-main');
    const err = (await n.discardHalfCreated(staging, 'delete it in the console', new PitrError('op_failed', 'timed out'))) as PitrError;
    expect(err.message).toBe('timed out (the half-created branch staging was deleted)');
  });

  it('a production branch that is not ready is reported as a problem', async () => {
    server.use(
      http.get(`${HOST}/projects/p1`, () => HttpResponse.json({ project: { id: 'p1', pg_version: 16, region_id: 'r', history_retention_seconds: 3600 } })),
      http.get(`${HOST}/projects/p1/branches`, () => HttpResponse.json({ branches: [{ ...main, current_state: 'init' }] })),
    );
    const info = await describe(lookup());
    expect(info.source).toBe('p1/main');
    expect(info.problems).toEqual(['the production branch main is init']);
  });
});

group('In-place restore: the name that keeps the current state', () => {
  const now = new Date();
  const compact = formatCompactUtc(now);
  const serve = (names: string[]) =>
    server.use(
      http.get(`${HOST}/projects/p1`, () => HttpResponse.json({ project: { id: 'p1', pg_version: 16, region_id: 'r', history_retention_seconds: 86400 } })),
      http.get(`${HOST}/projects/p1/branches`, () => HttpResponse.json({ branches: [main, ...names.map((name, i) => branch(`br-x${i}`, name))] })),
    );
  const at = { kind: 'time' as const, at: new Date(now.getTime() - 60_000), input: '1 minute ago' };

  it('the default name is made free: a rollback started in the same second as the last one does not fail', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now });
    try {
      serve([`main-before-pitr-${compact}`]);
      const plan = await restoreInPlace(lookup(), at, { dryRun: true });
      expect(plan.preservedAs).not.toBe(`main-before-pitr-${compact}`);
      expect(plan.preservedAs.startsWith(`main-before-pitr-${compact}`)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a name the user chose is refused when taken, never changed', async () => {
    serve(['keep-me']);
    await expect(restoreInPlace(lookup(), at, { dryRun: true, preserveName: 'keep-me' })).rejects.toMatchObject({ code: 'name_taken' });
    expect((await restoreInPlace(lookup(), at, { dryRun: true, preserveName: 'free' })).preservedAs).toBe('free');
  });
});

import { describe, expect, it } from 'vitest';
import { http, HttpResponse } from 'msw';
import { branch, HOST, lookup, neonMswServer } from '../support/neon-msw.js';
import type { Snapshot as ApiSnapshot } from '@neondatabase/api-client';
import { NeonApiError } from '../../src/providers/neon/api.js';
import type { Annotated } from '../../src/providers/neon/lookup.js';
import { apiMissing, apiSnapshot, apiSnapshots, branchSnapshot, collectSnapshots, findSnapshotOrFail, limitReached, requireSnapshot, snapshotPoint, snapshotSource } from '../../src/providers/neon/snapshots.js';
import type { Snapshot } from '../../src/providers/types.js';
import { refusal } from '../support/refusal.js';

const server = neonMswServer();

const main: Annotated = { branch: branch('br-main', 'main', { default: true }), annotation: undefined };
const atTime: Annotated = {
  branch: branch('br-s1', 'pitr-snap-before-deploy', { parent_id: 'br-main', parent_timestamp: '2026-11-25T09:00:00Z', parent_lsn: '0/AA', created_at: '2026-11-25T09:01:00Z' }),
  annotation: { pitr: 'snapshot', 'pitr-target': '2026-11-25T09:00:00.123Z', 'pitr-snapshot': 'before deploy' },
};
const atLsn: Annotated = {
  branch: branch('br-s2', 'pitr-snap-lsn', { parent_lsn: '0/BB', created_at: '2026-11-25T11:00:00Z' }),
  annotation: { pitr: 'snapshot', 'pitr-target': 'lsn:0/BB', 'pitr-source': 'br-gone' },
};
const head: Annotated = { branch: branch('br-s3', 'pitr-snap-head', { created_at: '2026-11-25T08:00:00Z' }), annotation: { pitr: 'snapshot', 'pitr-target': 'head' } };
const apiTimed = { id: 'snap-1', name: 'pitr-snap-nightly', created_at: '2026-11-25T07:00:00Z', timestamp: '2026-11-25T06:59:00Z', lsn: '0/CC', source_branch_id: 'br-main', expires_at: '2026-12-25T00:00:00Z' } as ApiSnapshot;
const apiUntimed = { id: 'snap-2', name: 'pitr-snap-quick', created_at: '2026-11-25T12:00:00Z' } as ApiSnapshot;
const all = [main, atTime, atLsn, head, { branch: branch('br-x', 'other'), annotation: undefined }];

describe('Neon snapshots as pitr sees them', () => {
  it('a snapshot branch: its name, point and where it came from', () => {
    const s = branchSnapshot(lookup(), atTime);
    expect(s).toMatchObject({ name: 'before deploy', id: 'br-s1', method: 'branch', at: '2026-11-25T09:00:00Z', lsn: '0/AA', details: { branch: 'pitr-snap-before-deploy', sourceBranchId: 'br-main', requested: '2026-11-25T09:00:00.123Z' } });
    expect(branchSnapshot(lookup(), atLsn)).toMatchObject({ name: 'lsn', at: null, lsn: '0/BB', details: { sourceBranchId: 'br-gone' } });
    expect(branchSnapshot(lookup(), head)).toMatchObject({ name: 'head', at: '2026-11-25T08:00:00Z', lsn: null });
    expect(branchSnapshot(lookup(), { branch: branch('b', 'pitr-snap-bare'), annotation: undefined }).details).toMatchObject({ requested: null, sourceBranchId: null });
  });

  it("a snapshot of Neon's API: its time, else its creation time (marked as such)", () => {
    expect(apiSnapshot(lookup(), apiTimed)).toMatchObject({ name: 'nightly', method: 'neon-snapshot', at: '2026-11-25T06:59:00Z', lsn: '0/CC', details: { sourceBranchId: 'br-main', expiresAt: '2026-12-25T00:00:00Z' } });
    expect(apiSnapshot(lookup(), apiTimed).details).not.toHaveProperty('atIsCreationTime');
    expect(apiSnapshot(lookup(), apiUntimed)).toMatchObject({ at: '2026-11-25T12:00:00Z', lsn: null, details: { atIsCreationTime: true, sourceBranchId: null } });
  });

  it('collects both kinds, oldest first; an unknown name is refused listing the known ones', () => {
    const n = lookup();
    expect(collectSnapshots(n, all, [apiTimed, apiUntimed]).map((f) => f.snapshot.name)).toEqual(['nightly', 'head', 'before deploy', 'lsn', 'quick']);
    expect(requireSnapshot(n, 'quick', all, [apiUntimed]).api).toBe(apiUntimed);
    expect(requireSnapshot(n, 'lsn', all, []).branch).toBe(atLsn);
    expect(refusal(() => requireSnapshot(n, 'nope', all, []))).toMatchObject({ code: 'unknown_snapshot', exitClass: 'usage', message: expect.stringContaining('snapshots: head, before deploy, lsn') });
    expect(refusal(() => requireSnapshot(n, 'nope', [main], [])).message).toContain('pitr snapshot create --name <name>');
  });

  it('the source branch while it exists', () => {
    const n = lookup();
    expect(snapshotSource(n, { snapshot: branchSnapshot(n, atTime), branch: atTime }, all)).toBe(main.branch);
    expect(snapshotSource(n, { snapshot: branchSnapshot(n, atLsn), branch: atLsn }, all)).toBeUndefined();
    expect(snapshotSource(n, { snapshot: apiSnapshot(n, apiTimed), api: apiTimed }, all)).toBe(main.branch);
    expect(snapshotSource(n, { snapshot: apiSnapshot(n, apiUntimed), api: apiUntimed }, all)).toBeUndefined();
  });

  it('the point a snapshot stands for: the time asked for, else its LSN, else its time', () => {
    const n = lookup();
    const p1 = snapshotPoint(n, branchSnapshot(n, atTime));
    expect(p1.kind === 'time' && p1.at.toISOString()).toBe('2026-11-25T09:00:00.123Z');
    expect(snapshotPoint(n, branchSnapshot(n, atLsn))).toEqual({ kind: 'lsn', lsn: '0/BB', input: 'lsn:0/BB' });
    const headPoint = snapshotPoint(n, branchSnapshot(n, head));
    expect(headPoint.kind === 'time' && headPoint.at.toISOString()).toBe('2026-11-25T08:00:00.000Z');
    const api = snapshotPoint(n, apiSnapshot(n, apiTimed));
    expect(api.kind === 'time' && api.at.toISOString()).toBe('2026-11-25T06:59:00.000Z');
    const created = snapshotPoint(n, apiSnapshot(n, apiUntimed));
    expect(created.kind === 'time' && created.at.toISOString()).toBe('2026-11-25T12:00:00.000Z');
  });

  it('a snapshot with neither time nor LSN, or a time that is not one, is refused', () => {
    const n = lookup();
    const bare: Snapshot = { name: 's', id: 'i', provider: 'neon', method: 'neon-snapshot', at: null, lsn: null, createdAt: 'x', details: {} } as Snapshot;
    expect(refusal(() => snapshotPoint(n, bare))).toMatchObject({ code: 'snapshot_without_point', message: expect.stringContaining('pitr --at snapshot:s') });
    expect(refusal(() => snapshotPoint(n, { ...bare, at: 'lsn:0/1' }))).toMatchObject({ code: 'snapshot_without_point', message: 'Neon reports no usable time for snapshot s' });
  });

  it('the one-line errors for a missing API and a full plan', () => {
    const err = new NeonApiError('neon_api', 'x', 403, 'forbidden');
    expect(apiMissing(lookup(), err)).toMatchObject({ code: 'snapshot_api_unavailable', message: expect.stringContaining('project p1 (403: forbidden)') });
    expect(limitReached(lookup(), err)).toMatchObject({ code: 'snapshot_limit', message: expect.stringContaining('pitr snapshot delete <name>') });
  });
});

describe("listing Neon's snapshot API", () => {
  const list = (status: number, body: unknown) => server.use(http.get(`${HOST}/projects/p1/snapshots`, () => HttpResponse.json(body as never, { status })));

  it("'branch' never asks; 'auto' asks once and keeps only pitr's", async () => {
    await expect(apiSnapshots(lookup({ snapshots: 'branch' }))).resolves.toEqual([]);
    list(200, { snapshots: [apiTimed, { ...apiUntimed, name: 'someone-elses' }] });
    const n = lookup();
    await expect(apiSnapshots(n)).resolves.toEqual([apiTimed]);
    expect(n.snapshotApi).toBe(true);
  });

  it("a missing API: 'auto' falls back to branches (and stops asking), 'api' is an error", async () => {
    list(404, { code: '', message: 'not found' });
    const n = lookup();
    await expect(apiSnapshots(n)).resolves.toEqual([]);
    expect(n.snapshotApi).toBe(false);
    await expect(apiSnapshots(n)).resolves.toEqual([]);
    await expect(apiSnapshots(lookup({ snapshots: 'api' }))).rejects.toMatchObject({ code: 'snapshot_api_unavailable' });
  });

  it('other API errors pass through', async () => {
    list(400, { code: '', message: 'bad request' });
    await expect(apiSnapshots(lookup())).rejects.toBeInstanceOf(NeonApiError);
  });

  it('findSnapshotOrFail looks in branches and the API together', async () => {
    list(200, { snapshots: [apiTimed] });
    server.use(http.get(`${HOST}/projects/p1/branches`, () => HttpResponse.json({ branches: all.map((a) => a.branch), annotations: { 'br-s1': { value: atTime.annotation } } })));
    const found = await findSnapshotOrFail(lookup(), 'nightly');
    expect(found.api).toEqual(apiTimed);
    expect(found.all).toHaveLength(all.length);
    await expect(findSnapshotOrFail(lookup(), 'before deploy')).resolves.toMatchObject({ snapshot: { id: 'br-s1' } });
  });
});

import { describe, expect, it } from 'vitest';
import { http, HttpResponse } from 'msw';
import { branch, HOST, lookup, neonMswServer } from '../support/neon-msw.js';
import type { Branch } from '@neondatabase/api-client';
import { createSnapshot, deleteSnapshot, getSnapshot, listSnapshots } from '../../src/providers/neon/snapshots.js';
import { parsePointInTime } from '../../src/time/index.js';

/** Creating and deleting snapshots against msw's Neon API: the decisions made on the API's answers. */
const server = neonMswServer();

const main = branch('br-main', 'main', { default: true });
const snapBranch = branch('br-s1', 'pitr-snap-kept', { parent_id: 'br-main', parent_timestamp: '2026-11-25T09:00:00Z' });
const child = branch('br-c', 'pitr-from-kept', { parent_id: 'br-s1' });
const recovery = branch('br-r1', 'pitr-r1', { parent_id: 'br-main' });
const foreign = branch('br-f', 'pitr-snap-foreign');
const apiSnap = { id: 'snap-1', name: 'pitr-snap-api', created_at: '2026-11-25T07:00:00Z', timestamp: '2026-11-25T06:59:00Z', lsn: '0/CC', source_branch_id: 'br-main' };

const requests: string[] = [];
function serve(options: { branches?: Branch[]; snapshots?: unknown[] | number; createSnapshotStatus?: number } = {}) {
  requests.length = 0;
  const branches = options.branches ?? [main, snapBranch, recovery, foreign];
  const annotations: Record<string, { value: Record<string, string> }> = {
    'br-s1': { value: { pitr: 'snapshot', 'pitr-snapshot': 'kept', 'pitr-target': '2026-11-25T09:00:00.000Z' } },
    'br-r1': { value: { pitr: 'recovery' } },
  };
  server.use(
    http.all(`${HOST}/*`, ({ request }) => {
      requests.push(`${request.method} ${new URL(request.url).pathname.replace('/api/v2', '')}`);
      return undefined;
    }),
    http.get(`${HOST}/projects/p1`, () => HttpResponse.json({ project: { id: 'p1', history_retention_seconds: 86400 } })),
    http.get(`${HOST}/projects/p1/branches`, () => HttpResponse.json({ branches, annotations })),
    http.get(`${HOST}/projects/p1/snapshots`, () =>
      typeof options.snapshots === 'number' ? HttpResponse.json({ code: '', message: 'not found' }, { status: options.snapshots }) : HttpResponse.json({ snapshots: options.snapshots ?? [apiSnap] }),
    ),
    http.post(`${HOST}/projects/p1/branches`, async ({ request }) => {
      const body = (await request.json()) as { branch: { name: string; parent_timestamp?: string; parent_lsn?: string } };
      return HttpResponse.json({ branch: branch('br-new', body.branch.name, { parent_id: 'br-main', ...body.branch }), operations: [] }, { status: 201 });
    }),
    http.get(`${HOST}/projects/p1/branches/br-new`, () =>
      HttpResponse.json({ branch: branch('br-new', 'pitr-snap-new', { parent_id: 'br-main', parent_lsn: '0/DD', parent_timestamp: '2026-11-25T11:00:00Z' }) }),
    ),
    http.post(`${HOST}/projects/p1/branches/br-main/snapshot`, () =>
      options.createSnapshotStatus
        ? HttpResponse.json({ code: '', message: options.createSnapshotStatus === 422 ? 'snapshot limit exceeded' : 'not enabled' }, { status: options.createSnapshotStatus })
        : HttpResponse.json({ snapshot: { id: 'snap-new', name: 'pitr-snap-new', created_at: '2026-11-25T12:00:00Z' }, operations: [] }),
    ),
    http.delete(`${HOST}/projects/p1/snapshots/:id`, () => HttpResponse.json({ operations: [] })),
    http.delete(`${HOST}/projects/p1/branches/:id`, () => HttpResponse.json({ branch: snapBranch, operations: [] })),
  );
}

describe('creating a Neon snapshot', () => {
  it('refuses bad names, snapshot targets and taken names before creating anything', async () => {
    serve();
    await expect(createSnapshot(lookup(), 'bad name!', {})).rejects.toMatchObject({ exitClass: 'usage' });
    await expect(createSnapshot(lookup(), 'x', { at: parsePointInTime('snapshot:kept') })).rejects.toMatchObject({ code: 'bad_time' });
    await expect(createSnapshot(lookup(), 'x', { at: parsePointInTime('xid:5') })).rejects.toMatchObject({ code: 'xid_not_supported' });
    await expect(createSnapshot(lookup(), 'kept', {})).rejects.toMatchObject({ code: 'snapshot_exists', message: expect.stringContaining('taken at 2026-11-25T09:00:00Z') });
    await expect(createSnapshot(lookup(), 'foreign', {})).rejects.toMatchObject({ code: 'snapshot_exists', message: expect.stringContaining('not a pitr snapshot') });
    await expect(createSnapshot(lookup(), 'x', { at: parsePointInTime('2020-01-01T00:00:00Z') })).rejects.toMatchObject({ code: 'outside_history' });
    expect(requests.filter((r) => r.startsWith('POST') || r.startsWith('DELETE'))).toEqual([]);
  });

  it("'branch' keeps it as a branch of production at the LSN asked for", async () => {
    serve();
    const progress: string[] = [];
    const s = await createSnapshot(lookup({ snapshots: 'branch' }), 'new', { at: parsePointInTime('lsn:0/DD'), onProgress: (p) => progress.push(p.message) });
    expect(s).toMatchObject({ name: 'new', method: 'branch', lsn: '0/DD', details: { requested: 'lsn:0/DD', sourceBranchId: 'br-main' } });
    expect(progress[0]).toMatch(/creating branch pitr-snap-new \(no compute\) from main/);
    expect(requests).toContain('POST /projects/p1/branches');
  });

  it("'auto' uses the snapshot API where there is one", async () => {
    serve();
    const s = await createSnapshot(lookup(), 'new', {});
    expect(s).toMatchObject({ name: 'new', method: 'neon-snapshot', id: 'snap-new' });
    expect(requests).toContain('POST /projects/p1/branches/br-main/snapshot');
  });

  it("'auto' falls back to a branch when creating through the API says the feature is off", async () => {
    serve({ createSnapshotStatus: 403 });
    const progress: string[] = [];
    const s = await createSnapshot(lookup(), 'new', { at: parsePointInTime(new Date(Date.now() - 60_000).toISOString()), onProgress: (p) => progress.push(p.message) });
    expect(s.method).toBe('branch');
    expect(progress.some((m) => m.includes('not available here (403)'))).toBe(true);
  });

  it("a full plan is a snapshot_limit error; 'api' without the API is an error", async () => {
    serve({ createSnapshotStatus: 422 });
    await expect(createSnapshot(lookup(), 'new', {})).rejects.toMatchObject({ code: 'snapshot_limit' });
    serve({ createSnapshotStatus: 403 });
    await expect(createSnapshot(lookup({ snapshots: 'api' }), 'new', {})).rejects.toMatchObject({ code: 'snapshot_api_unavailable' });
  });
});

describe('listing and deleting Neon snapshots', () => {
  it('lists and gets both kinds', async () => {
    serve();
    expect((await listSnapshots(lookup())).map((s) => s.name)).toEqual(['api', 'kept']);
    await expect(getSnapshot(lookup(), 'kept')).resolves.toMatchObject({ id: 'br-s1' });
  });

  it("refuses to delete recovery branches, other people's branches and unknown names", async () => {
    serve();
    await expect(deleteSnapshot(lookup(), 'pitr-r1')).rejects.toMatchObject({ code: 'refuse_recovery_branch', exitClass: 'refused' });
    await expect(deleteSnapshot(lookup(), 'foreign')).rejects.toMatchObject({ code: 'refuse_foreign_branch' });
    await expect(deleteSnapshot(lookup(), 'ghost')).rejects.toMatchObject({ code: 'unknown_snapshot' });
    expect(requests.filter((r) => r.startsWith('DELETE'))).toEqual([]);
  });

  it('a snapshot branch with branches made from it is in use', async () => {
    serve({ branches: [main, snapBranch, child] });
    await expect(deleteSnapshot(lookup(), 'kept')).rejects.toMatchObject({ code: 'snapshot_in_use', message: expect.stringContaining('pitr-from-kept') });
  });

  it('deletes a snapshot branch or an API snapshot', async () => {
    serve();
    await expect(deleteSnapshot(lookup(), 'kept')).resolves.toMatchObject({ name: 'kept' });
    expect(requests).toContain('DELETE /projects/p1/branches/br-s1');
    await expect(deleteSnapshot(lookup(), 'api')).resolves.toMatchObject({ name: 'api' });
    expect(requests).toContain('DELETE /projects/p1/snapshots/snap-1');
  });
});

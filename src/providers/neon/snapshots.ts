import type { Branch, Operation, Snapshot as ApiSnapshot } from '@neondatabase/api-client';
import { badInput, PitrError, refused } from '../../errors.js';
import { commandLine } from '../../system/shell-quote.js';
import { checkSnapshotName, describePointInTime, formatTarget, parsePointInTime } from '../../time/index.js';
import type { CreateSnapshotOptions, Snapshot } from '../types.js';
import { NeonApiError } from './api.js';
import { waitForOperations } from './operations.js';
import { targetString } from '../naming.js';
import { refuseUndeletable, refuseXid, type NeonPoint, isLimitError, isSnapshotApiMissing, KIND_SNAPSHOT, MARK, NeonLookup, SNAPSHOT_PREFIX, type Annotated, type FoundSnapshot } from './lookup.js';

/** pitr's snapshots: branches without compute, or Neon's snapshot API (Beta), found, created and deleted. */

/** The one-line error for 'api' when the project has no snapshot API. */
export function apiMissing(n: NeonLookup, err: NeonApiError): PitrError {
  return new PitrError(
    'snapshot_api_unavailable',
    `the Neon snapshot API is not available for project ${n.projectId} (${err.status}: ${err.neonMessage}); set neonSnapshots to auto or branch to keep snapshots as branches without compute`,
  );
}

export function limitReached(n: NeonLookup, err: NeonApiError): PitrError {
  return new PitrError(
    'snapshot_limit',
    `Neon refused another snapshot (${err.status}: ${err.neonMessage}); delete one you no longer need (pitr snapshot delete <name>), or set neonSnapshots to branch to keep snapshots as branches`,
  );
}

/** pitr's snapshots in Neon's snapshot API ([] when the method is 'branch' or the API is missing in 'auto'). */
export async function apiSnapshots(n: NeonLookup): Promise<ApiSnapshot[]> {
  const method = n.snapshotMethod;
  if (method === 'branch' || (method === 'auto' && n.snapshotApi === false)) return [];
  try {
    const { snapshots } = await n.api.call(`list snapshots of ${n.projectId}`, (c) => c.listSnapshots(n.projectId));
    n.snapshotApi = true;
    return snapshots.filter((s) => s.name.startsWith(SNAPSHOT_PREFIX));
  } catch (err) {
    if (!isSnapshotApiMissing(err)) throw err;
    if (method === 'api') throw apiMissing(n, err);
    n.log.debug({ status: err.status, message: err.neonMessage }, 'no Neon snapshot API here: snapshots are branches');
    n.snapshotApi = false;
    return [];
  }
}

export function branchSnapshot(n: NeonLookup, b: Annotated): Snapshot {
  const { branch, annotation } = b;
  const requested = annotation?.['pitr-target'];
  return {
    name: annotation?.['pitr-snapshot'] ?? branch.name.slice(SNAPSHOT_PREFIX.length),
    id: branch.id,
    provider: 'neon',
    method: 'branch',
    // What Neon recorded as the branch point; a snapshot of the head falls back to when it was made.
    at: branch.parent_timestamp ?? (requested?.startsWith('lsn:') ? null : branch.created_at),
    lsn: branch.parent_lsn ?? null,
    createdAt: branch.created_at,
    details: {
      projectId: n.projectId,
      branch: branch.name,
      sourceBranchId: annotation?.['pitr-source'] ?? branch.parent_id ?? null,
      requested: requested ?? null,
      state: branch.current_state,
      protected: branch.protected,
    },
  };
}

export function apiSnapshot(n: NeonLookup, s: ApiSnapshot): Snapshot {
  return {
    name: s.name.slice(SNAPSHOT_PREFIX.length),
    id: s.id,
    provider: 'neon',
    method: 'neon-snapshot',
    at: s.timestamp ?? s.created_at,
    lsn: s.lsn ?? null,
    createdAt: s.created_at,
    details: {
      projectId: n.projectId,
      snapshot: s.name,
      sourceBranchId: s.source_branch_id ?? null,
      ...(s.timestamp ? {} : { atIsCreationTime: true }),
      ...(s.expires_at ? { expiresAt: s.expires_at } : {}),
    },
  };
}

/** Every snapshot pitr knows, oldest first. */
export function collectSnapshots(n: NeonLookup, all: Annotated[], apiList: ApiSnapshot[]): FoundSnapshot[] {
  const found: FoundSnapshot[] = [
    ...n.snapshotBranches(all).map((branch) => ({ snapshot: branchSnapshot(n, branch), branch })),
    ...apiList.map((api) => ({ snapshot: apiSnapshot(n, api), api })),
  ];
  return found.sort((a, b) => a.snapshot.createdAt.localeCompare(b.snapshot.createdAt) || a.snapshot.name.localeCompare(b.snapshot.name));
}

export function requireSnapshot(n: NeonLookup, name: string, all: Annotated[], apiList: ApiSnapshot[]): FoundSnapshot {
  const known = collectSnapshots(n, all, apiList);
  const found = known.find((s) => s.snapshot.name === name);
  if (found) return found;
  const names = known.map((s) => s.snapshot.name);
  throw badInput(
    'unknown_snapshot',
    `no snapshot "${name}" in project ${n.projectId} (${names.length ? `snapshots: ${names.join(', ')}` : 'no snapshots yet; take one with pitr snapshot create --name <name>'})`,
  );
}

export async function findSnapshotOrFail(n: NeonLookup, name: string): Promise<FoundSnapshot & { all: Annotated[] }> {
  const [all, apiList] = await Promise.all([n.branches(), apiSnapshots(n)]);
  return { ...requireSnapshot(n, name, all, apiList), all };
}

/** The production branch a snapshot was taken of, while it still exists. */
export function snapshotSource(n: NeonLookup, found: FoundSnapshot, all: Annotated[]): Branch | undefined {
  const id = found.branch ? (found.branch.annotation?.['pitr-source'] ?? found.branch.branch.parent_id) : found.api?.source_branch_id;
  return id ? all.find((b) => b.branch.id === id)?.branch : undefined;
}

/** The point on production a snapshot stands for: the time asked for, else its LSN, else its time. */
export function snapshotPoint(n: NeonLookup, s: Snapshot): NeonPoint {
  const requested = typeof s.details?.requested === 'string' ? s.details.requested : null;
  const exactTime = s.method === 'branch' ? requested !== null && requested !== 'head' && !requested.startsWith('lsn:') : s.details?.atIsCreationTime !== true;
  const time = (text: string) => {
    const point = parsePointInTime(text);
    if (point.kind !== 'time') throw new PitrError('snapshot_without_point', `Neon reports no usable time for snapshot ${s.name}`);
    return point;
  };
  if (exactTime && s.at) return time(s.method === 'branch' ? requested! : s.at);
  if (s.lsn) return { kind: 'lsn', lsn: s.lsn, input: `lsn:${s.lsn}` };
  if (s.at) return time(s.at);
  throw new PitrError('snapshot_without_point', `Neon reports neither a time nor an LSN for snapshot ${s.name}; make a branch from it instead: pitr --at snapshot:${s.name}`);
}

export async function createSnapshot(n: NeonLookup, name: string, options: CreateSnapshotOptions): Promise<Snapshot> {
  checkSnapshotName(name);
  const at = refuseXid(options.at);
  if (at?.kind === 'snapshot') {
    throw badInput('bad_time', `a snapshot captures production now or at a time or LSN, not another snapshot (${at.input})`);
  }
  const [project, all, apiList] = await Promise.all([n.project(), n.branches(), apiSnapshots(n)]);
  if (at) n.checkWindow(at, project.history_retention_seconds);
  const source = await n.sourceBranch(all);
  const existing = collectSnapshots(n, all, apiList).find((s) => s.snapshot.name === name);
  if (existing) {
    const when = existing.snapshot.at ?? (existing.snapshot.lsn && `LSN ${existing.snapshot.lsn}`) ?? existing.snapshot.createdAt;
    throw badInput('snapshot_exists', `a snapshot named ${name} already exists (taken at ${when}); choose another name or delete it first with ${commandLine('pitr', 'snapshot', 'delete', name)}`);
  }
  const branchName = `${SNAPSHOT_PREFIX}${name}`;
  if (all.some((b) => b.branch.name === branchName)) {
    throw badInput('snapshot_exists', `a branch named ${branchName} already exists in project ${n.projectId} (not a pitr snapshot); choose another snapshot name`);
  }
  const method = n.snapshotMethod;
  if (method === 'api' || (method === 'auto' && n.snapshotApi !== false)) {
    try {
      return await createApiSnapshot(n, name, source, options);
    } catch (err) {
      if (isLimitError(err)) throw limitReached(n, err as NeonApiError);
      if (!isSnapshotApiMissing(err)) throw err;
      if (method === 'api') throw apiMissing(n, err);
      n.snapshotApi = false;
      options.onProgress?.({ phase: 'neon', message: `Neon's snapshot API is not available here (${err.status}): keeping the snapshot as a branch without compute` });
    }
  }
  return createBranchSnapshot(n, name, source, options);
}

/** A snapshot as a branch of production at `at` (or its head): no compute, no expiry, annotated as pitr's. */
export async function createBranchSnapshot(n: NeonLookup, name: string, source: Branch, options: CreateSnapshotOptions): Promise<Snapshot> {
  const at = options.at as NeonPoint | undefined;
  const branchName = `${SNAPSHOT_PREFIX}${name}`;
  const requested = !at ? 'head' : targetString(at);
  const annotation = { [MARK]: KIND_SNAPSHOT, 'pitr-snapshot': name, 'pitr-source': source.id, 'pitr-target': requested };
  options.onProgress?.({ phase: 'neon', message: `creating branch ${branchName} (no compute) from ${source.name} at ${at ? describePointInTime(at) : 'its head'}` });
  const created = await n.api.call(
    `create branch ${branchName}`,
    (c) =>
      c.createProjectBranch(n.projectId, {
        branch: { parent_id: source.id, name: branchName, ...(at ? (at.kind === 'lsn' ? { parent_lsn: at.lsn } : { parent_timestamp: formatTarget(at) }) : {}) },
        endpoints: [],
        annotation_value: annotation,
      }),
    { retryServerErrors: true, beforeRetry: () => n.createdMeanwhile(branchName) },
  );
  try {
    await waitForOperations(n.api, n.projectId, created.operations, {
      timeoutMs: n.settings.operationTimeoutMs,
      ...(options.onProgress && { onProgress: options.onProgress }),
    });
  } catch (err) {
    throw await n.discardHalfCreated(created.branch, `delete it in the Neon console (it never expires)`, err);
  }
  // The branch point (parent_lsn, parent_timestamp) is final once the operations have finished.
  const fresh = await n.api.call(`get branch ${branchName}`, (c) => c.getProjectBranch(n.projectId, created.branch.id));
  return branchSnapshot(n, { branch: fresh.branch, annotation: fresh.annotation?.value ?? annotation });
}

/** A snapshot through Neon's snapshot API (Beta): no expiry, named with pitr's prefix. */
export async function createApiSnapshot(n: NeonLookup, name: string, source: Branch, options: CreateSnapshotOptions): Promise<Snapshot> {
  const at = options.at as NeonPoint | undefined;
  const apiName = `${SNAPSHOT_PREFIX}${name}`;
  const findByName = async () => {
    const { snapshots } = await n.api.call(`list snapshots of ${n.projectId}`, (c) => c.listSnapshots(n.projectId));
    return snapshots.find((s) => s.name === apiName);
  };
  options.onProgress?.({ phase: 'neon', message: `creating Neon snapshot ${apiName} of ${source.name} at ${at ? describePointInTime(at) : 'its head'}` });
  const created = await n.api.call(
    `create snapshot ${apiName}`,
    (c) =>
      c.createSnapshot({
        projectId: n.projectId,
        branchId: source.id,
        name: apiName,
        ...(at ? (at.kind === 'lsn' ? { lsn: at.lsn } : { timestamp: formatTarget(at) }) : {}),
      }),
    {
      retryServerErrors: true,
      beforeRetry: async () => {
        const made = await findByName();
        return made ? { snapshot: made, operations: [] as Operation[] } : undefined;
      },
    },
  );
  n.snapshotApi = true;
  try {
    await waitForOperations(n.api, n.projectId, created.operations, {
      timeoutMs: n.settings.operationTimeoutMs,
      ...(options.onProgress && { onProgress: options.onProgress }),
    });
  } catch (err) {
    const remove = () => n.api.call(`delete snapshot ${apiName}`, (c) => c.deleteSnapshot(n.projectId, created.snapshot.id));
    throw await n.discardHalfMade(`half-made snapshot ${apiName}`, remove, 'delete it in the Neon console', err);
  }
  // The LSN of a snapshot of the head is known once its operations have finished.
  const fresh = (await findByName()) ?? created.snapshot;
  return apiSnapshot(n, fresh);
}

export async function listSnapshots(n: NeonLookup): Promise<Snapshot[]> {
  const [all, apiList] = await Promise.all([n.branches(), apiSnapshots(n)]);
  return collectSnapshots(n, all, apiList).map((s) => s.snapshot);
}

export async function getSnapshot(n: NeonLookup, name: string): Promise<Snapshot> {
  return (await findSnapshotOrFail(n, name)).snapshot;
}

export async function deleteSnapshot(n: NeonLookup, name: string): Promise<Snapshot> {
  const [all, apiList] = await Promise.all([n.branches(), apiSnapshots(n)]);
  const known = collectSnapshots(n, all, apiList);
  const found = known.find((s) => s.snapshot.name === name);
  if (!found) {
    // Something that looks like it but is not pitr's snapshot: refused, never deleted.
    const lookalike = all.find((b) => b.branch.name === `${SNAPSHOT_PREFIX}${name}`) ?? all.find((b) => b.branch.name === name || b.branch.id === name);
    if (lookalike && n.ours(all).includes(lookalike)) {
      throw refused('refuse_recovery_branch', `${lookalike.branch.name} is a recovery branch, not a snapshot: delete it with ${commandLine('pitr', 'branches', 'delete', lookalike.branch.name)}`);
    }
    if (lookalike) {
      throw refused('refuse_foreign_branch', `${lookalike.branch.name} is not a snapshot pitr made: delete it in the Neon console or with neonctl if you mean it`);
    }
    requireSnapshot(n, name, all, apiList);
  }
  const snap = found!;
  if (snap.api) {
    const res = await n.api.call(`delete snapshot ${snap.api.name}`, (c) => c.deleteSnapshot(n.projectId, snap.api!.id));
    await waitForOperations(n.api, n.projectId, res.operations ?? [], { timeoutMs: n.settings.operationTimeoutMs });
    return snap.snapshot;
  }
  const { branch } = snap.branch!;
  refuseUndeletable(branch);
  const children = all.filter((b) => b.branch.parent_id === branch.id);
  if (children.length) {
    const names = children.map((b) => b.branch.name);
    throw refused(
      'snapshot_in_use',
      `snapshot ${name} has branches made from it (${names.join(', ')}); Neon deletes a branch only without children: delete those first (${commandLine('pitr', 'branches', 'delete', names[0]!)})`,
    );
  }
  const res = await n.api.call(`delete branch ${branch.name}`, (c) => c.deleteProjectBranch({ projectId: n.projectId, branchId: branch.id }));
  await waitForOperations(n.api, n.projectId, res.operations, { timeoutMs: n.settings.operationTimeoutMs });
  return snap.snapshot;
}

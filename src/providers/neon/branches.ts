import type { Branch, Endpoint, Operation } from '@neondatabase/api-client';
import { EndpointType } from '@neondatabase/api-client';
import { badInput, refused } from '../../errors.js';
import { commandLine } from '../../system/shell-quote.js';
import { describePointInTime, formatCompactUtc, formatTarget, type PointInTime } from '../../time/index.js';
import type { CreateBranchOptions, RecoveryBranch } from '../types.js';
import { waitForOperations } from './operations.js';
import { targetString } from '../naming.js';
import { MARK, NeonLookup, refuseUndeletable, refuseXid, PITR_PREFIX, slug, SNAPSHOT_PREFIX, type Annotated, type FoundSnapshot } from './lookup.js';
import { apiSnapshots, requireSnapshot, snapshotSource } from './snapshots.js';

/** Recovery branches: created at a time, an LSN or from a snapshot (with a compute and an expiry), listed, deleted. */

export async function createRecoveryBranch(n: NeonLookup, requested: PointInTime, options: CreateBranchOptions): Promise<RecoveryBranch> {
  const at = refuseXid(requested);
  const started = options.startedAt ?? Date.now();
  if (at.kind === 'snapshot') return createRecoveryBranchFromSnapshot(n, at.name, options, started);
  // Every round trip before the create is time the user waits: these two go together.
  const [project, all] = await Promise.all([n.project(), n.branches()]);
  // Refused before any write: Neon would reject it anyway, with a less helpful message.
  n.checkWindow(at, project.history_retention_seconds);
  const source = await n.sourceBranch(all);
  const target = targetString(at);
  return createComputeBranch(n, {
    all,
    options,
    started,
    parentId: source.id,
    point: at.kind === 'lsn' ? { parent_lsn: at.lsn } : { parent_timestamp: formatTarget(at) },
    defaultName: `${PITR_PREFIX}${slug(source.name)}-${at.kind === 'lsn' ? `lsn-${at.lsn.replace('/', '-')}` : formatCompactUtc(at.at)}`,
    from: `${source.name} at ${describePointInTime(at)}`,
    source,
    namesFrom: source.id,
    target,
    annotation: { [MARK]: 'recovery', 'pitr-source': source.id, 'pitr-target': target },
  });
}

/**
 * A recovery branch from a snapshot. A snapshot branch is the new branch's parent, taken at its
 * head: no timestamp, so no history window applies (keeping that state is what a snapshot is
 * for). A snapshot of Neon's API is restored into a new branch, then given an expiry and a compute.
 */
export async function createRecoveryBranchFromSnapshot(n: NeonLookup, name: string, options: CreateBranchOptions, started: number): Promise<RecoveryBranch> {
  const [all, apiList] = await Promise.all([n.branches(), apiSnapshots(n)]);
  const found = requireSnapshot(n, name, all, apiList);
  const source = snapshotSource(n, found, all) ?? (await n.sourceBranch(all));
  const target = `snapshot:${name}`;
  const defaultName = `${PITR_PREFIX}${slug(source.name)}-snap-${name}`;
  const details = { snapshot: { name, method: found.snapshot.method, id: found.snapshot.id, at: found.snapshot.at, lsn: found.snapshot.lsn } };
  if (found.api) return restoreApiSnapshotAsBranch(n, found, all, options, started, { source, defaultName, target, details });
  const branch = found.branch!.branch;
  return createComputeBranch(n, {
    all,
    options,
    started,
    parentId: branch.id,
    point: {},
    defaultName,
    from: `snapshot ${name} (branch ${branch.name}${found.snapshot.at ? `, ${found.snapshot.at}` : ''})`,
    source,
    // The snapshot branch has the databases production had then; production may have others now.
    namesFrom: branch.id,
    target,
    annotation: { [MARK]: 'recovery', 'pitr-source': source.id, 'pitr-target': target, 'pitr-snapshot': name },
    details,
  });
}

/** A new branch with a read-write compute and an expiry, waited for until it answers queries. */
export async function createComputeBranch(n: NeonLookup, p: {
  all: Annotated[];
  options: CreateBranchOptions;
  started: number;
  parentId: string;
  point: { parent_timestamp?: string; parent_lsn?: string };
  defaultName: string;
  /** For progress: "main at 2026-…" or "snapshot x (…)". */
  from: string;
  source: Branch;
  /** The branch whose databases and roles name the connection (they are the new branch's). */
  namesFrom: string;
  target: string;
  annotation: Record<string, string>;
  details?: Record<string, unknown>;
}): Promise<RecoveryBranch> {
  const { options, source } = p;
  // Needed only for the connection URI at the end: looked up while Neon works.
  const names = n.databaseAndRole(p.namesFrom);
  names.catch(() => undefined);
  const name = options.name ?? n.freeName(p.defaultName, p.all);
  const expiresAt = new Date(Date.now() + options.ttlMs).toISOString();
  options.onProgress?.({ phase: 'neon', message: `creating branch ${name} from ${p.from}` });
  const created = await n.api.call(
    `create branch ${name}`,
    (c) =>
      c.createProjectBranch(n.projectId, {
        branch: { parent_id: p.parentId, name, ...p.point, expires_at: expiresAt },
        endpoints: [{ type: EndpointType.ReadWrite }],
        annotation_value: p.annotation,
      }),
    // A create that failed with a 5xx may still have happened: look for it by name before trying again.
    { retryServerErrors: true, beforeRetry: () => n.createdMeanwhile(name) },
  );
  const branch = created.branch;
  let uri: string;
  try {
    await waitForOperations(n.api, n.projectId, created.operations, {
      timeoutMs: n.settings.operationTimeoutMs,
      ...(options.signal && { signal: options.signal }),
      ...(options.onProgress && { onProgress: options.onProgress }),
    });
    const { database, role } = await names;
    // The create response carries the URI when the branch has one database and role.
    const offered = created.connection_uris?.find((c) => c.connection_parameters.database === database && c.connection_parameters.role === role);
    uri = offered?.connection_uri ?? (await n.connectionUri(branch.id, database, role));
    options.onProgress?.({ phase: 'neon', message: 'checking that the branch answers queries' });
    await n.waitQueryable(uri, p.started + n.settings.operationTimeoutMs);
  } catch (err) {
    throw await n.discardHalfCreated(branch, `it expires at ${expiresAt}`, err);
  }
  return {
    id: branch.id,
    name: branch.name,
    provider: 'neon',
    source: source.name,
    target: p.target,
    connectionUrl: uri,
    createdAt: branch.created_at,
    expiresAt,
    secondsToQueryable: (Date.now() - p.started) / 1000,
    state: 'running',
    details: { projectId: n.projectId, sourceBranchId: source.id, ...p.details, ...(await names) },
  };
}

/**
 * A snapshot of Neon's API as a recovery branch: restoreSnapshot into a new branch (not
 * finalized, so production is untouched), then an expiry and a read-write compute. Such a branch
 * cannot carry an annotation; pitr knows it as its own by its name and `restored_from`.
 */
export async function restoreApiSnapshotAsBranch(n: NeonLookup, 
  found: FoundSnapshot,
  all: Annotated[],
  options: CreateBranchOptions,
  started: number,
  p: { source: Branch; defaultName: string; target: string; details: Record<string, unknown> },
): Promise<RecoveryBranch> {
  const snap = found.api!;
  const name = options.name ?? n.freeName(p.defaultName, all);
  if (!name.startsWith(PITR_PREFIX)) {
    throw badInput('bad_branch_name', `a branch restored from a Neon snapshot must be named ${PITR_PREFIX}… so pitr can recognise it (got ${name})`);
  }
  const expiresAt = new Date(Date.now() + options.ttlMs).toISOString();
  const wait = { timeoutMs: n.settings.operationTimeoutMs, ...(options.signal && { signal: options.signal }), ...(options.onProgress && { onProgress: options.onProgress }) };
  options.onProgress?.({ phase: 'neon', message: `restoring Neon snapshot ${snap.name} into a new branch ${name}` });
  const restored = await n.api.call(
    `restore snapshot ${snap.name}`,
    (c) => c.restoreSnapshot({ projectId: n.projectId, snapshotId: snap.id }, { name, finalize_restore: false }),
    {
      retryServerErrors: true,
      beforeRetry: async () => {
        const existing = (await n.branches()).find((b) => b.branch.name === name);
        return existing ? { branch: existing.branch, endpoints: [] as Endpoint[], operations: [] as Operation[] } : undefined;
      },
    },
  );
  const branch = restored.branch;
  let expiry: string | null = null;
  let uri: string;
  let names: { database: string; role: string };
  try {
    await waitForOperations(n.api, n.projectId, restored.operations, wait);
    // restoreSnapshot takes no expiry: set it at once, so a forgotten branch still goes away.
    const updated = await n.api.call(`set the expiry of ${name}`, (c) => c.updateProjectBranch(n.projectId, branch.id, { branch: { expires_at: expiresAt } }));
    expiry = expiresAt;
    await waitForOperations(n.api, n.projectId, updated.operations, wait);
    if (!restored.endpoints?.some((e) => e.type === EndpointType.ReadWrite)) {
      options.onProgress?.({ phase: 'neon', message: `starting a compute for ${name}` });
      const endpoint = await n.api.call(
        `add a compute to ${name}`,
        (c) => c.createProjectEndpoint(n.projectId, { endpoint: { branch_id: branch.id, type: EndpointType.ReadWrite } }),
        { retryServerErrors: false },
      );
      await waitForOperations(n.api, n.projectId, endpoint.operations, wait);
    }
    names = await n.databaseAndRole(branch.id);
    uri = await n.connectionUri(branch.id, names.database, names.role);
    options.onProgress?.({ phase: 'neon', message: 'checking that the branch answers queries' });
    await n.waitQueryable(uri, started + n.settings.operationTimeoutMs);
  } catch (err) {
    throw await n.discardHalfCreated(branch, expiry ? `it expires at ${expiry}` : `delete it with ${commandLine('pitr', 'branches', 'delete', name)}`, err);
  }
  return {
    id: branch.id,
    name: branch.name,
    provider: 'neon',
    source: p.source.name,
    target: p.target,
    connectionUrl: uri,
    createdAt: branch.created_at,
    expiresAt,
    secondsToQueryable: (Date.now() - started) / 1000,
    state: 'running',
    details: { projectId: n.projectId, sourceBranchId: p.source.id, ...p.details, ...names },
  };
}

export async function listRecoveryBranches(n: NeonLookup): Promise<RecoveryBranch[]> {
  const all = await n.branches();
  const names = new Map(all.map((b) => [b.branch.id, b.branch.name]));
  return n.ours(all).map((b) => n.toRecoveryBranch(b, names.get(b.annotation?.['pitr-source'] ?? b.branch.parent_id ?? '') ?? b.branch.parent_id ?? '?'));
}

export async function getRecoveryBranch(n: NeonLookup, idOrName: string): Promise<RecoveryBranch> {
  const found = await n.find(idOrName);
  return n.toRecoveryBranch(found, found.branch.parent_id ?? '?');
}

export async function deleteRecoveryBranch(n: NeonLookup, idOrName: string): Promise<RecoveryBranch> {
  const all = await n.branches();
  const found = await n.find(idOrName, all);
  const { branch } = found;
  refuseUndeletable(branch);
  if (n.snapshotBranches(all).includes(found)) {
    const name = found.annotation?.['pitr-snapshot'] ?? branch.name.slice(SNAPSHOT_PREFIX.length);
    throw refused('refuse_snapshot', `${branch.name} keeps pitr's snapshot ${name}, not a recovery branch: delete it with ${commandLine('pitr', 'snapshot', 'delete', name)} if you mean it`);
  }
  if (!n.ours(all).includes(found)) throw refused('refuse_foreign_branch', `${branch.name} was not created by pitr: delete it in the Neon console or with neonctl if you mean it`);
  const res = await n.api.call(`delete branch ${branch.name}`, (c) => c.deleteProjectBranch({ projectId: n.projectId, branchId: branch.id }));
  await waitForOperations(n.api, n.projectId, res.operations, { timeoutMs: n.settings.operationTimeoutMs });
  return n.toRecoveryBranch(found, branch.parent_id ?? '?');
}

export async function productionUrl(n: NeonLookup): Promise<string> {
  const source = await n.sourceBranch();
  const { database, role } = await n.databaseAndRole(source.id);
  return n.connectionUri(source.id, database, role);
}

/** The full URI of any branch of the project (as neonctl's `cs`), for psql. */
export async function connectionString(n: NeonLookup, idOrName: string): Promise<string> {
  const { branch } = await n.find(idOrName);
  const { database, role } = await n.databaseAndRole(branch.id);
  return n.connectionUri(branch.id, database, role);
}

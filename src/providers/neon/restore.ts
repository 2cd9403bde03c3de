import { badInput } from '../../errors.js';
import { formatCompactUtc, formatTarget, type PointInTime } from '../../time/index.js';
import type { RestoreInPlaceOptions, RestoreResult } from '../types.js';
import { waitForOperations } from './operations.js';
import { targetString } from '../naming.js';
import { NeonLookup, PITR_PREFIX, refuseXid, slug, type Annotated } from './lookup.js';
import { findSnapshotOrFail, snapshotSource } from './snapshots.js';

/** Production rolled back in place (Neon's branch restore, or a snapshot), keeping the current state under a name. */

/**
 * A name the user chose must be free (refused, never suffixed: they will look for it by that
 * name); the default is made free, since two rollbacks can start in the same second.
 */
function nameForPreservedState(n: NeonLookup, source: string, all: Annotated[], chosen: string | undefined): string {
  if (chosen === undefined) return n.freeName(`${source}-before-pitr-${formatCompactUtc(new Date())}`, all);
  if (all.some((b) => b.branch.name === chosen)) throw badInput('name_taken', `a branch named ${chosen} already exists`);
  return chosen;
}

/**
 * Rolls the production branch back in place through Neon's restore API. Neon keeps the current
 * state as a new branch (preserve_under_name), so the rollback itself can be undone.
 */
export async function restoreInPlace(n: NeonLookup, requested: PointInTime, options: RestoreInPlaceOptions): Promise<RestoreResult> {
  const at = refuseXid(requested);
  if (at.kind === 'snapshot') return restoreInPlaceFromSnapshot(n, at.name, options);
  const project = await n.project();
  n.checkWindow(at, project.history_retention_seconds);
  const all = await n.branches();
  const source = await n.sourceBranch(all);
  const preservedName = nameForPreservedState(n, source.name, all, options.preserveName);
  const plan = {
    branch: { id: source.id, name: source.name },
    target: targetString(at),
    preservedAs: preservedName,
  };
  if (options.dryRun) return { ...plan, applied: false, preservedBranchId: null };
  const res = await n.api.call(`restore branch ${source.name}`, (c) =>
    c.restoreProjectBranch(n.projectId, source.id, {
      source_branch_id: source.id,
      ...(at.kind === 'lsn' ? { source_lsn: at.lsn } : { source_timestamp: formatTarget(at) }),
      preserve_under_name: preservedName,
    }),
  );
  await waitForOperations(n.api, n.projectId, res.operations, {
    timeoutMs: n.settings.operationTimeoutMs,
    ...(options.onProgress && { onProgress: options.onProgress }),
  });
  const preserved = (await n.branches()).find((b) => b.branch.name === preservedName);
  return { ...plan, applied: true, preservedBranchId: preserved?.branch.id ?? null };
}

/**
 * Production rolled back to a snapshot. A snapshot branch: Neon's branch restore from it (its
 * head, so no history window applies), keeping the current state under a name. A snapshot of
 * the API: restoreSnapshot into a new branch, then finalize_restore, which moves production's
 * computes to it (same URIs) and renames the old branch to the preserved name.
 */
export async function restoreInPlaceFromSnapshot(n: NeonLookup, name: string, options: RestoreInPlaceOptions): Promise<RestoreResult> {
  const found = await findSnapshotOrFail(n, name);
  const { all } = found;
  const source = await n.sourceBranch(all);
  const taken = snapshotSource(n, found, all);
  if (taken && taken.id !== source.id) {
    throw badInput('snapshot_of_other_branch', `snapshot ${name} was taken of branch ${taken.name}, not of ${source.name}: pass --source ${taken.name} to restore that branch`);
  }
  const preservedName = nameForPreservedState(n, source.name, all, options.preserveName);
  const plan = { branch: { id: source.id, name: source.name }, target: `snapshot:${name}`, preservedAs: preservedName };
  if (options.dryRun) return { ...plan, applied: false, preservedBranchId: null };
  const wait = { timeoutMs: n.settings.operationTimeoutMs, ...(options.onProgress && { onProgress: options.onProgress }) };
  if (found.branch) {
    const res = await n.api.call(`restore branch ${source.name}`, (c) =>
      c.restoreProjectBranch(n.projectId, source.id, { source_branch_id: found.branch!.branch.id, preserve_under_name: preservedName }),
    );
    await waitForOperations(n.api, n.projectId, res.operations, wait);
    const preserved = (await n.branches()).find((b) => b.branch.name === preservedName);
    return { ...plan, applied: true, preservedBranchId: preserved?.branch.id ?? null };
  }
  const restoredName = n.freeName(`${PITR_PREFIX}${slug(source.name)}-restore-${formatCompactUtc(new Date())}`, all);
  options.onProgress?.({ phase: 'neon', message: `restoring Neon snapshot ${found.api!.name} into ${restoredName}` });
  const restored = await n.api.call(`restore snapshot ${found.api!.name}`, (c) =>
    c.restoreSnapshot({ projectId: n.projectId, snapshotId: found.api!.id }, { name: restoredName, target_branch_id: source.id, finalize_restore: false }),
  );
  await waitForOperations(n.api, n.projectId, restored.operations, wait);
  options.onProgress?.({ phase: 'neon', message: `moving ${source.name}'s computes to the restored branch; the current state stays as ${preservedName}` });
  const finalized = await n.api.call(`finalize the restore of ${source.name}`, (c) =>
    c.finalizeRestoreBranch(n.projectId, restored.branch.id, { name: preservedName }),
  );
  await waitForOperations(n.api, n.projectId, finalized.operations ?? [], wait);
  return { ...plan, branch: { id: restored.branch.id, name: source.name }, applied: true, preservedBranchId: source.id };
}

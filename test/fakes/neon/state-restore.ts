import {
  EndpointType,
  OperationAction,
  type BranchOperations,
  type BranchRestoreRequest,
  type Endpoint,
} from '@neondatabase/api-client';
import { Backend } from './backend.js';
import { completeHistory } from './history.js';
import { iso, newOperation, renderOperation } from './operations.js';
import { ApiError } from './validate.js';
import { endpointsHaveReadWrite, type BranchRecord, type EndpointRecord, type OperationFault } from './state-types.js';
import { NeonStateBranches } from './state-branches.js';

/** In-place restore of a branch (POST /branches/{id}/restore). */
export class NeonStateRestore extends NeonStateBranches {
  async restoreBranch(branchId: string, body: BranchRestoreRequest, fault: OperationFault | undefined): Promise<BranchOperations> {
    const target = this.requireBranch(branchId);
    if (!body || typeof body.source_branch_id !== 'string' || !body.source_branch_id) throw new ApiError(400, 'source_branch_id is required');
    const source = this.branches.get(body.source_branch_id);
    if (!source) throw new ApiError(404, `source branch ${body.source_branch_id} not found`);
    const self = source === target;
    // "If not empty, the previous state of the branch will be saved": '' means do not preserve.
    const preserveName = body.preserve_under_name || undefined;
    if (self && body.source_timestamp === undefined && body.source_lsn === undefined) {
      throw new ApiError(400, 'source_timestamp or source_lsn is required when a branch is restored to its own history');
    }
    if (!preserveName && self) throw new ApiError(400, 'preserve_under_name is required when a branch is restored to its own history');
    if (!preserveName && this.childrenOf(branchId).length) throw new ApiError(400, `preserve_under_name is required: branch ${branchId} has child branches`);
    if (preserveName !== undefined) this.checkNewName(preserveName, 'preserve_under_name');
    const { point, history, parentTimestamp, parentLsn } = await this.branchPoint(source, body.source_timestamp, body.source_lsn, 'source_timestamp', 'source_lsn');
    if (preserveName !== undefined) this.checkNewName(preserveName, 'preserve_under_name');

    const old = {
      backend: target.backend,
      history: target.history,
      origin: target.origin,
      sealed: target.sealed,
      dormant: target.dormant,
      parent_id: target.branch.parent_id,
      parent_timestamp: target.branch.parent_timestamp,
      parent_lsn: target.branch.parent_lsn,
      children: this.childrenOf(branchId),
    };
    const now = new Date();
    let preserved: BranchRecord | undefined;
    let preservedEndpoint: EndpointRecord | undefined;
    if (preserveName !== undefined) {
      preserved = this.insertBranch({
        name: preserveName,
        backend: old.backend,
        history: old.history,
        ready: true,
        parentId: old.parent_id,
        parentTimestamp: old.parent_timestamp,
        parentLsn: old.parent_lsn,
      });
      if (old.origin) preserved.origin = old.origin;
      preserved.dormant = old.dormant;
      // Neon's docs do not say whether the backup gets a compute; the fake gives it one so the
      // old state stays reachable (a connection URI is the only way a test can look at it).
      preservedEndpoint = await this.startEndpoint(preserved.branch.id, EndpointType.ReadWrite, true);
      for (const child of old.children) child.branch.parent_id = preserved.branch.id;
    }

    target.history = history;
    target.origin = point;
    target.dormant = false;
    target.sealed = !endpointsHaveReadWrite(this.endpointsOf(branchId));
    target.branch.parent_id = preserved?.branch.id ?? source.branch.id;
    target.branch.parent_timestamp = parentTimestamp;
    target.branch.parent_lsn = parentLsn;
    target.branch.last_reset_at = iso(now);
    this.setState(target, 'init', 'ready');
    const endpoints = this.endpointsOf(branchId);
    for (const e of endpoints) {
      e.endpoint.current_state = 'init' as Endpoint['current_state'];
      e.endpoint.pending_state = 'active' as Endpoint['pending_state'];
      // "Existing connections are temporarily interrupted" (Neon's branch-restore guide).
      e.proxy.dropConnections();
    }
    const work = this.workFor(fault, () => {
      target.backend = Backend.restoring(this.config.instances.restore(point, `${branchId}-restore-${Date.now()}`), (id) => this.config.instances.remove(id));
      target.backend.whenReady().then(
        () => (target.history = completeHistory(target.history, target.backend.restored!)),
        () => undefined,
      );
      return target.backend.whenReady();
    });
    if (work.kind === 'fail') target.backend = Backend.none(work.error);
    else if (work.kind === 'stall') target.backend = Backend.none();
    const job = this.startJob(work, {
      onFinished: () => {
        this.markReady(target);
        for (const e of endpoints) this.markActive(e);
        if (!preserved) void old.backend.release().catch(() => undefined);
      },
      onFailed: () => {
        // Undo: the branch gets its old data back and the preserved copy disappears.
        void target.backend.release().catch(() => undefined);
        target.backend = old.backend;
        target.history = old.history;
        target.origin = old.origin;
        target.sealed = old.sealed;
        target.dormant = old.dormant;
        target.branch.parent_id = old.parent_id;
        target.branch.parent_timestamp = old.parent_timestamp;
        target.branch.parent_lsn = old.parent_lsn;
        this.markReady(target);
        for (const e of endpoints) this.markActive(e);
        for (const child of old.children) child.branch.parent_id = branchId;
        if (preserved) {
          this.branches.delete(preserved.branch.id);
          if (preservedEndpoint) this.closeEndpoint(preservedEndpoint);
        }
      },
    });
    const operations = [
      newOperation(job, this.config.projectId, OperationAction.CreateTimeline, branchId),
      ...endpoints.flatMap((e) => [
        newOperation(job, this.config.projectId, OperationAction.SuspendCompute, branchId, e.endpoint.id),
        newOperation(job, this.config.projectId, OperationAction.StartCompute, branchId, e.endpoint.id),
      ]),
    ];
    this.operations.push(...operations);
    return { branch: this.renderBranch(target), operations: operations.map((op) => renderOperation(op)) };
  }

}

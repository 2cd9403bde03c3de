import {
  EndpointType,
  OperationAction,
  type BranchResponse,
  type Endpoint,
  type Operation,
  type OperationsResponse,
  type Snapshot,
} from '@neondatabase/api-client';
import { Backend } from './backend.js';
import { neonId } from './ids.js';
import { iso, newOperation, renderOperation, type OperationRecord } from './operations.js';
import { ApiError, checkExpiry } from './validate.js';
import { endpointsHaveReadWrite, type OperationFault, type SnapshotRecord, type StateConfig } from './state-types.js';
import { NeonStateRestore } from './state-restore.js';

export type { CreateBranchResult, OperationFault, SnapshotApiMode } from './state-types.js';

/**
 * The project as Neon's control plane would hold it: branches, endpoints, operations, one
 * database and one role. Requests are validated synchronously (so a refused request never starts
 * local work); accepted mutations start their work in the background and return operations.
 *
 * Split by concern along a chain of classes: records → jobs → reads → branches → restore → this
 * (snapshots and creation), the way the provider splits into its modules.
 */
export class NeonState extends NeonStateRestore {

  /** The project with its default branch 'main' = production, reachable through its own endpoint. */
  static async create(config: StateConfig): Promise<NeonState> {
    const state = new NeonState(config);
    const main = state.insertBranch({
      name: 'main',
      backend: Backend.production(config.productionAddress),
      history: { kind: 'live' },
      ready: true,
      createdAt: state.createdAt,
      isDefault: true,
    });
    state.defaultBranchId = main.branch.id;
    await state.startEndpoint(main.branch.id, EndpointType.ReadWrite, true);
    return state;
  }


  // ------------------------------------------------------------- snapshots

  protected requireSnapshotApi(): void {
    if (this.snapshotApi === 'not-found') throw new ApiError(404, 'not found');
    if (this.snapshotApi === 'forbidden') throw new ApiError(403, 'snapshots are not available on your plan');
  }

  protected requireSnapshot(snapshotId: string): SnapshotRecord {
    const record = this.snapshots.get(snapshotId);
    if (!record) throw new ApiError(404, `snapshot ${snapshotId} not found`);
    return record;
  }

  /** POST /branches/{id}/snapshot?timestamp|lsn&name&expires_at: query parameters, no body. */
  async createSnapshot(branchId: string, query: URLSearchParams, fault: OperationFault | undefined): Promise<{ snapshot: Snapshot; operations: Operation[] }> {
    this.requireSnapshotApi();
    const source = this.requireBranch(branchId);
    if (this.snapshots.size >= this.snapshotLimit) {
      throw new ApiError(422, `snapshot limit exceeded: the plan allows ${this.snapshotLimit} snapshots per project; delete one first`);
    }
    const expiresAt = query.has('expires_at') ? checkExpiry(query.get('expires_at')) : undefined;
    const timestamp = query.get('timestamp') ?? undefined;
    const lsn = query.get('lsn') ?? undefined;
    const { point, history, parentTimestamp, parentLsn } = await this.branchPoint(source, timestamp, lsn, 'timestamp', 'lsn', true);
    const createdAt = iso(Date.now());
    const id = neonId('snap');
    const snapshot: Snapshot = {
      id,
      name: query.get('name') || `${source.branch.name}-${createdAt}`,
      ...(parentLsn ? { lsn: parentLsn } : {}),
      ...(parentTimestamp ? { timestamp: parentTimestamp } : {}),
      source_branch_id: source.branch.id,
      created_at: createdAt,
      ...(expiresAt ? { expires_at: expiresAt } : {}),
      manual: true,
    };
    this.snapshots.set(id, { snapshot, origin: point, history });
    const job = this.startJob(this.workFor(fault, () => Promise.resolve()), {
      onFailed: () => this.snapshots.delete(id),
    });
    const operation = newOperation(job, this.config.projectId, OperationAction.CreateTimeline, source.branch.id);
    this.operations.push(operation);
    return { snapshot: { ...snapshot }, operations: [renderOperation(operation)] };
  }

  listSnapshots(): Snapshot[] {
    this.requireSnapshotApi();
    return [...this.snapshots.values()].map((r) => ({ ...r.snapshot }));
  }

  updateSnapshot(snapshotId: string, body: { snapshot?: { name?: unknown } }): Snapshot {
    this.requireSnapshotApi();
    const record = this.requireSnapshot(snapshotId);
    const name = body?.snapshot?.name;
    if (name !== undefined) {
      if (typeof name !== 'string' || !name) throw new ApiError(400, 'snapshot.name must be a non-empty string');
      record.snapshot.name = name;
    }
    return { ...record.snapshot };
  }

  deleteSnapshot(snapshotId: string, fault: OperationFault | undefined): Operation[] {
    this.requireSnapshotApi();
    const record = this.requireSnapshot(snapshotId);
    const work = this.workFor(fault, () => Promise.resolve());
    if (work.kind !== 'fail') this.snapshots.delete(snapshotId);
    const job = this.startJob(work, {});
    const operation = newOperation(job, this.config.projectId, OperationAction.DeleteTimeline, record.snapshot.source_branch_id);
    this.operations.push(operation);
    return [renderOperation(operation)];
  }

  /**
   * POST /snapshots/{id}/restore: a new branch holding the snapshot's data, named `name`, with no
   * compute of its own; it replaces `target_branch_id` (default: the snapshot's source) only
   * when finalized (finalize_restore: true here, or finalize_restore on the branch later).
   */
  async restoreSnapshot(
    snapshotId: string,
    query: URLSearchParams,
    body: { name?: unknown; target_branch_id?: unknown; finalize_restore?: unknown } | undefined,
    fault: OperationFault | undefined,
  ): Promise<BranchResponse & { endpoints?: Endpoint[] } & OperationsResponse> {
    this.requireSnapshotApi();
    const snap = this.requireSnapshot(snapshotId);
    const targetId = body?.target_branch_id ?? snap.snapshot.source_branch_id;
    if (typeof targetId !== 'string') throw new ApiError(400, 'target_branch_id must be a branch id');
    const target = this.requireBranch(targetId);
    const name = body?.name ?? query.get('name') ?? undefined;
    if (name !== undefined) this.checkNewName(name);
    const record = this.insertBranch({
      ...(typeof name === 'string' ? { name } : { name: `${target.branch.name}_restored_${iso(Date.now())}` }),
      backend: Backend.none(),
      history: snap.history,
      ready: false,
      parentId: target.branch.id,
      ...(snap.snapshot.timestamp ? { parentTimestamp: snap.snapshot.timestamp } : {}),
      ...(snap.snapshot.lsn ? { parentLsn: snap.snapshot.lsn } : {}),
    });
    record.origin = snap.origin;
    record.sealed = true;
    record.dormant = true;
    record.restoreTargetId = target.branch.id;
    record.branch.restored_from = snapshotId;
    record.branch.restore_status = 'restored';
    const job = this.startJob(this.workFor(fault, () => Promise.resolve()), {
      onFinished: () => this.markReady(record),
      onFailed: () => this.branches.delete(record.branch.id),
    });
    const operations = [newOperation(job, this.config.projectId, OperationAction.CreateTimeline, record.branch.id)];
    this.operations.push(...operations);
    if (body?.finalize_restore === true) {
      const finalized = this.finalizeRestore(record.branch.id, {}, fault, true);
      operations.push(...finalized.records);
    }
    return { branch: this.renderBranch(record), operations: operations.map((op) => renderOperation(op)) };
  }

  /**
   * finalize_restore: the restored branch takes the replaced branch's name, default flag and
   * computes (restarted, same URIs); the replaced branch is renamed to `name` and keeps its data.
   */
  finalizeRestore(
    branchId: string,
    body: { name?: unknown } | undefined,
    fault: OperationFault | undefined,
    immediate = false,
  ): { operations: Operation[]; records: OperationRecord[] } {
    if (!immediate) this.requireSnapshotApi();
    const record = this.requireBranch(branchId);
    if (record.branch.restore_status !== 'restored' || !record.restoreTargetId) {
      throw new ApiError(400, `branch ${branchId} was not created by restoreSnapshot with finalize_restore false, or is already finalized`);
    }
    const target = this.requireBranch(record.restoreTargetId);
    const oldName = body?.name ?? `${target.branch.name}_old_${iso(Date.now())}`;
    this.checkNewName(oldName);
    const originalName = target.branch.name;
    target.branch.name = oldName as string;
    record.branch.name = originalName;
    record.branch.restore_status = 'finalized';
    record.branch.restored_as = target.branch.id;
    if (target.branch.default) {
      target.branch.default = target.branch.primary = false;
      record.branch.default = record.branch.primary = true;
      this.defaultBranchId = record.branch.id;
    }
    const endpoints = this.endpointsOf(target.branch.id);
    for (const e of endpoints) {
      e.endpoint.branch_id = record.branch.id;
      e.endpoint.current_state = 'init' as Endpoint['current_state'];
      e.endpoint.pending_state = 'active' as Endpoint['pending_state'];
      e.proxy.dropConnections();
    }
    if (endpointsHaveReadWrite(endpoints)) record.sealed = false;
    this.setState(record, 'init', 'ready');
    const job = this.startJob(
      this.workFor(fault, () => (endpoints.length && record.dormant ? this.wake(record) : Promise.resolve())),
      {
        onFinished: () => {
          this.markReady(record);
          for (const e of endpoints) this.markActive(e);
        },
      },
    );
    const records = [
      newOperation(job, this.config.projectId, OperationAction.CreateTimeline, record.branch.id),
      ...endpoints.flatMap((e) => [
        newOperation(job, this.config.projectId, OperationAction.SuspendCompute, record.branch.id, e.endpoint.id),
        newOperation(job, this.config.projectId, OperationAction.StartCompute, record.branch.id, e.endpoint.id),
      ]),
    ];
    this.operations.push(...records);
    return { operations: records.map((op) => renderOperation(op)), records };
  }

}

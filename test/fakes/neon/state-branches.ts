import {
  EndpointType,
  OperationAction,
  type Branch,
  type BranchOperations,
  type BranchUpdateRequest,
  type EndpointCreateRequest,
  type EndpointOperations,
} from '@neondatabase/api-client';
import { Backend } from './backend.js';
import { iso, newOperation, renderOperation } from './operations.js';
import { ApiError, checkAnnotation, checkEndpointTypes, checkExpiry } from './validate.js';
import { type CreateBranchBody, type CreateBranchResult, type EndpointRecord, type OperationFault } from './state-types.js';
import { NeonStateReads } from './state-reads.js';

/** Branch and endpoint mutations, Time Travel, shutdown. */
export class NeonStateBranches extends NeonStateReads {
  // -------------------------------------------------------------- mutations

  async createBranch(body: CreateBranchBody, fault: OperationFault | undefined): Promise<CreateBranchResult> {
    const spec = body?.branch ?? {};
    const parent = spec.parent_id ? this.requireBranch(spec.parent_id) : this.requireBranch(this.defaultBranchId);
    if (spec.init_source !== undefined && spec.init_source !== 'parent-data') {
      throw new ApiError(501, `fake-neon: init_source ${JSON.stringify(spec.init_source)} is not supported (only parent-data)`);
    }
    if (spec.name !== undefined) this.checkNewName(spec.name);
    const expiresAt = spec.expires_at === undefined ? undefined : checkExpiry(spec.expires_at);
    const endpointTypes = checkEndpointTypes((body?.endpoints ?? []).map((e) => e?.type));
    const annotation = checkAnnotation(body?.annotation_value);
    const computeless = endpointTypes.length === 0;
    const { point, history, parentTimestamp, parentLsn } = await this.branchPoint(
      parent,
      spec.parent_timestamp,
      spec.parent_lsn,
      'parent_timestamp',
      'parent_lsn',
      // Without a compute nothing is replayed, so nothing reports the LSN: ask production now.
      computeless,
    );
    // Names are checked again after the await: another request may have taken it meanwhile.
    if (spec.name !== undefined) this.checkNewName(spec.name);

    const record = this.insertBranch({
      name: spec.name,
      backend: Backend.none(),
      history,
      ready: false,
      parentId: parent.branch.id,
      parentTimestamp,
      parentLsn,
      expiresAt,
      isProtected: spec.protected === true,
    });
    record.origin = point;
    record.sealed = !endpointTypes.includes(EndpointType.ReadWrite);
    if (annotation) record.annotation = this.annotationOf(record.branch.id, annotation);
    const id = record.branch.id;
    let endpoints: EndpointRecord[];
    try {
      endpoints = await Promise.all(endpointTypes.map((type) => this.startEndpoint(id, type, false)));
    } catch (err) {
      this.branches.delete(id);
      throw err;
    }

    // A branch without compute is only a timeline on Neon: no Postgres starts, nothing is restored
    // here until an endpoint is added (or a finalize moves one onto it).
    record.dormant = computeless;
    const work = this.workFor(fault, () => (computeless ? Promise.resolve() : this.wake(record)));
    if (work.kind === 'fail') record.backend = Backend.none(work.error);
    const job = this.startJob(work, {
      onFinished: () => {
        this.markReady(record);
        for (const e of endpoints) this.markActive(e);
      },
    });
    const operations = [
      newOperation(job, this.config.projectId, OperationAction.CreateBranch, id),
      ...endpoints.map((e) => newOperation(job, this.config.projectId, OperationAction.StartCompute, id, e.endpoint.id)),
    ];
    this.operations.push(...operations);
    return {
      branch: this.renderBranch(record),
      endpoints: endpoints.map((e) => ({ ...e.endpoint })),
      operations: operations.map((op) => renderOperation(op)),
      roles: [this.roleOf(id, record.branch.created_at)],
      databases: [this.databaseOf(record)],
      ...(endpoints.length ? { connection_uris: endpoints.map((e) => this.connectionDetails(e)) } : {}),
    };
  }

  deleteBranch(branchId: string, fault: OperationFault | undefined): BranchOperations {
    const record = this.requireBranch(branchId);
    if (record.branch.default) throw new ApiError(400, `branch ${branchId} is the project's default branch and cannot be deleted`);
    if (record.branch.protected) throw new ApiError(422, `branch ${branchId} is protected and cannot be deleted`);
    if (!record.branch.parent_id) throw new ApiError(400, `branch ${branchId} is a root branch and cannot be deleted`);
    const children = this.childrenOf(branchId);
    if (children.length) throw new ApiError(400, `branch ${branchId} has child branches (${children.map((c) => c.branch.name).join(', ')}) and cannot be deleted`);
    const endpoints = this.endpointsOf(branchId);
    const job = this.removeBranch(record, fault);
    const operations = [
      ...endpoints.map((e) => newOperation(job, this.config.projectId, OperationAction.SuspendCompute, branchId, e.endpoint.id)),
      newOperation(job, this.config.projectId, OperationAction.DeleteTimeline, branchId),
    ];
    this.operations.push(...operations);
    return { branch: this.renderBranch(record), operations: operations.map((op) => renderOperation(op)) };
  }

  /**
   * Neon's restore: the branch keeps its id, name and endpoints (so URIs do not change) but now
   * holds the source's data at the point; with preserve_under_name a new branch takes over the old
   * data and becomes the parent. A failed restore is rolled back when its operations fail.
   */

  updateBranch(branchId: string, body: BranchUpdateRequest): BranchOperations {
    const record = this.requireBranch(branchId);
    const spec = body?.branch;
    if (!spec || typeof spec !== 'object') throw new ApiError(400, 'branch is required');
    if (spec.name !== undefined && spec.name !== record.branch.name) this.checkNewName(spec.name);
    const expiresAt = spec.expires_at === undefined || spec.expires_at === null ? spec.expires_at : checkExpiry(spec.expires_at);
    if (spec.name !== undefined) record.branch.name = spec.name;
    if (spec.protected !== undefined) record.branch.protected = spec.protected === true;
    if (expiresAt === null) {
      delete record.branch.expires_at;
      delete record.branch.ttl_interval_seconds;
    } else if (expiresAt !== undefined) {
      record.branch.expires_at = expiresAt;
      record.branch.ttl_interval_seconds = Math.round((Date.parse(expiresAt) - Date.now()) / 1000);
    }
    record.branch.updated_at = iso(Date.now());
    return { branch: this.renderBranch(record), operations: [] };
  }

  async createEndpoint(body: EndpointCreateRequest, fault: OperationFault | undefined): Promise<EndpointOperations> {
    const spec = body?.endpoint;
    if (!spec || typeof spec.branch_id !== 'string') throw new ApiError(400, 'endpoint.branch_id is required');
    const record = this.requireBranch(spec.branch_id);
    const [type] = checkEndpointTypes([spec.type]);
    if (type === EndpointType.ReadWrite && this.endpointsOf(spec.branch_id).some((e) => e.endpoint.type === EndpointType.ReadWrite)) {
      throw new ApiError(400, `branch ${spec.branch_id} already has a read_write endpoint`);
    }
    const endpoint = await this.startEndpoint(spec.branch_id, type!, false);
    if (type === EndpointType.ReadWrite) record.sealed = false;
    const job = this.startJob(
      this.workFor(fault, () => (record.dormant ? this.wake(record) : record.backend.whenReady())),
      { onFinished: () => this.markActive(endpoint) },
    );
    const operation = newOperation(job, this.config.projectId, OperationAction.StartCompute, spec.branch_id, endpoint.endpoint.id);
    this.operations.push(operation);
    return { endpoint: { ...endpoint.endpoint }, operations: [renderOperation(operation)] };
  }

  /** A branch someone else made (a developer's): ready, no endpoint, no local copy of its data. */
  addForeignBranch(name: string, options: { protected?: boolean } = {}): Branch {
    this.checkNewName(name);
    const record = this.insertBranch({
      name,
      backend: Backend.none(`fake-neon holds no data for branch ${name} (added with addForeignBranch)`),
      history: { kind: 'upto', until: new Date(), untilLsn: null },
      ready: true,
      parentId: this.defaultBranchId,
      parentTimestamp: new Date().toISOString(),
      isProtected: options.protected === true,
    });
    return this.renderBranch(record);
  }

  /** Where a Time Travel session through endpoint `endpointId` goes, or why it cannot. */

  async close(): Promise<void> {
    await Promise.all([...this.endpoints.values()].map((e) => e.proxy.close()));
    this.endpoints.clear();
  }

}

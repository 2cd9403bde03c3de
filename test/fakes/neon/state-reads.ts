import {
  EndpointType,
  type AnnotationData,
  type AnnotationsMapResponse,
  type Branch,
  type BranchResponse,
  type BranchesResponse,
  type CursorPaginationResponse,
  type Database,
  type Endpoint,
  type Operation,
  type Role,
  type Snapshot,
} from '@neondatabase/api-client';
import { renderOperation } from './operations.js';
import { ApiError } from './validate.js';
import { NeonStateJobs } from './state-jobs.js';

/** What GET requests answer. */
export class NeonStateReads extends NeonStateJobs {
  // ------------------------------------------------------------------ reads

  /**
   * Applies what ended operations imply (branch ready, endpoint active, a failed restore undone).
   * Expired branches are NOT deleted: Neon's background job runs "not exactly at the specified
   * time", and a client (pitr prune) must cope with expired branches still being there.
   */
  refresh(): void {
    const now = Date.now();
    for (const job of this.jobs) if (job.applyEffects(now)) this.jobs.delete(job);
  }

  snapshot(): {
    branches: Branch[];
    endpoints: Endpoint[];
    operations: Operation[];
    snapshots: Snapshot[];
    annotations: Record<string, Record<string, string>>;
    branchesWithInstance: string[];
  } {
    this.refresh();
    const records = [...this.branches.values()];
    return {
      branches: records.map((r) => this.renderBranch(r)),
      endpoints: [...this.endpoints.values()].map((e) => ({ ...e.endpoint })),
      operations: this.operations.map((op) => renderOperation(op)),
      snapshots: [...this.snapshots.values()].map((r) => ({ ...r.snapshot })),
      annotations: Object.fromEntries(records.filter((r) => r.annotation).map((r) => [r.branch.id, { ...r.annotation!.value }])),
      branchesWithInstance: records.filter((r) => r.backend.kind === 'instance').map((r) => r.branch.id),
    };
  }

  /** Neon lets a project's history window change (updateProject): points that left it are refused from then on. */
  setHistoryRetentionSeconds(seconds: number): void {
    this.config.historyRetentionSeconds = seconds;
    this.project.history_retention_seconds = seconds;
  }

  requireProject(projectId: string): void {
    if (projectId !== this.config.projectId) throw new ApiError(404, `project ${projectId} not found`);
  }

  getBranch(branchId: string): BranchResponse & { annotation: AnnotationData } {
    const record = this.requireBranch(branchId);
    return { branch: this.renderBranch(record), annotation: record.annotation ?? this.annotationOf(branchId, {}) };
  }

  listBranches(query: URLSearchParams): BranchesResponse & AnnotationsMapResponse & CursorPaginationResponse {
    const search = query.get('search')?.toLowerCase();
    const sortBy = (query.get('sort_by') ?? 'updated_at') as 'name' | 'created_at' | 'updated_at';
    if (!['name', 'created_at', 'updated_at'].includes(sortBy)) throw new ApiError(400, `invalid sort_by ${sortBy}: use name, created_at or updated_at`);
    const order = query.get('sort_order') === 'asc' ? 1 : -1;
    let records = [...this.branches.values()].filter((r) => !search || r.branch.name.toLowerCase().includes(search) || r.branch.id.includes(search));
    records.sort((a, b) => order * (a.branch[sortBy] < b.branch[sortBy] ? -1 : a.branch[sortBy] > b.branch[sortBy] ? 1 : 0));
    const limit = query.has('limit') ? Number(query.get('limit')) : undefined;
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= 10_000)) throw new ApiError(400, 'limit must be an integer from 1 to 10000');
    const offset = Number(query.get('cursor') ?? 0) || 0;
    let next: string | undefined;
    if (limit !== undefined) {
      if (offset + limit < records.length) next = String(offset + limit);
      records = records.slice(offset, offset + limit);
    }
    const annotations: Record<string, AnnotationData> = {};
    for (const r of records) if (r.annotation) annotations[r.branch.id] = r.annotation;
    return {
      branches: records.map((r) => this.renderBranch(r)),
      annotations,
      ...(limit !== undefined ? { pagination: { ...(next ? { next } : {}), sort_by: sortBy, sort_order: order === 1 ? 'asc' : 'desc' } } : {}),
    };
  }

  countBranches(query: URLSearchParams): number {
    const search = query.get('search')?.toLowerCase();
    return [...this.branches.values()].filter((r) => !search || r.branch.name.toLowerCase().includes(search) || r.branch.id.includes(search)).length;
  }

  branchEndpoints(branchId: string): Endpoint[] {
    this.requireBranch(branchId);
    return this.endpointsOf(branchId).map((e) => ({ ...e.endpoint }));
  }

  allEndpoints(): Endpoint[] {
    return [...this.endpoints.values()].map((e) => ({ ...e.endpoint }));
  }

  databases(branchId: string): Database[] {
    const record = this.requireBranch(branchId);
    return [this.databaseOf(record)];
  }

  roles(branchId: string): Role[] {
    const record = this.requireBranch(branchId);
    return [this.roleOf(record.branch.id, record.branch.created_at)];
  }

  revealPassword(branchId: string, roleName: string): string {
    this.requireBranch(branchId);
    if (roleName !== this.config.role) throw new ApiError(404, `role ${roleName} not found`);
    return this.password;
  }

  getOperation(operationId: string): Operation {
    const op = this.operations.find((o) => o.id === operationId);
    if (!op) throw new ApiError(404, `operation ${operationId} not found`);
    return renderOperation(op);
  }

  listOperations(query: URLSearchParams): Operation[] {
    const limit = query.has('limit') ? Number(query.get('limit')) : undefined;
    const newestFirst = [...this.operations].reverse().map((op) => renderOperation(op));
    return limit === undefined ? newestFirst : newestFirst.slice(0, limit);
  }

  /** GET connection_uri: the endpoint's loopback proxy with the role's real (generated) password. */
  connectionUri(query: URLSearchParams): string {
    const database = query.get('database_name');
    const role = query.get('role_name');
    if (!database) throw new ApiError(400, 'database_name is required');
    if (!role) throw new ApiError(400, 'role_name is required');
    const branchId = query.get('branch_id') || this.defaultBranchId;
    this.requireBranch(branchId);
    if (database !== this.config.database) throw new ApiError(400, `database "${database}" does not exist on branch ${branchId}`);
    if (role !== this.config.role) throw new ApiError(400, `role "${role}" does not exist on branch ${branchId}`);
    const endpointId = query.get('endpoint_id');
    const endpoint = endpointId ? this.endpoints.get(endpointId) : this.endpointsOf(branchId).find((e) => e.endpoint.type === EndpointType.ReadWrite);
    if (!endpoint) throw new ApiError(404, endpointId ? `endpoint ${endpointId} not found` : `branch ${branchId} has no read_write endpoint`);
    if (endpoint.endpoint.branch_id !== branchId) throw new ApiError(400, `endpoint ${endpointId} does not belong to branch ${branchId}`);
    // `pooled` has nothing to change locally: there is no PgBouncer, the URI is the same.
    return this.uriOf(endpoint);
  }

}

import {
  EndpointPoolerMode,
  EndpointType,
  OperationAction,
  type AnnotationCreateValueRequest,
  type AnnotationData,
  type AnnotationsMapResponse,
  type Branch,
  type BranchCreateRequest,
  type BranchOperations,
  type BranchResponse,
  type BranchRestoreRequest,
  type BranchUpdateRequest,
  type BranchesResponse,
  type ConnectionDetails,
  type ConnectionURIsOptionalResponse,
  type CursorPaginationResponse,
  type Database,
  type DatabasesResponse,
  type Endpoint,
  type EndpointCreateRequest,
  type EndpointOperations,
  type EndpointsResponse,
  type Operation,
  type OperationsResponse,
  type Project,
  type Role,
  type RolesResponse,
  type Snapshot,
} from '@neondatabase/api-client';
import pg from 'pg';
import { compareLsn, type PointInTime } from '../../../src/time/index.js';
import { Backend } from './backend.js';
import { completeHistory, HistoryError, normalizeLsn, onProduction, type History } from './history.js';
import { neonId, neonPassword } from './ids.js';
import type { LocalInstances } from './instances.js';
import { iso, Job, newOperation, renderOperation, type JobEffects, type JobWork, type OperationRecord } from './operations.js';
import { EndpointProxy, type HostPort, type TimeTravelTarget } from './pg-proxy.js';
import { ApiError, checkAnnotation, checkEndpointTypes, checkExpiry, isRfc3339, outsideWindow } from './validate.js';

/** Faults that let the request succeed but change what its operations do. */
export type OperationFault = { failOperation: true; error?: string } | { stallOperation: true };

export interface StateConfig {
  projectId: string;
  historyRetentionSeconds: number;
  operationMs: number;
  pgVersion: number;
  productionUrl: string;
  productionAddress: HostPort;
  role: string;
  database: string;
  instances: LocalInstances;
}

interface BranchRecord {
  branch: Branch;
  annotation: AnnotationData | undefined;
  backend: Backend;
  history: History;
  databaseId: number;
  /** The point on production its data was made from (absent for production and foreign branches). */
  origin?: PointInTime;
  /**
   * Never had a read-write compute since its data was made, so it cannot hold writes of its own:
   * its head is still `origin`, and a child at its head can be replayed from production's archive.
   */
  sealed: boolean;
  /** No compute ever started: nothing local was restored yet (a branch made with `endpoints: []`). */
  dormant: boolean;
  /** For a branch made by restoreSnapshot: the branch finalize_restore replaces. */
  restoreTargetId?: string;
}

interface SnapshotRecord {
  snapshot: Snapshot;
  origin: PointInTime;
  history: History;
}

/** How the snapshot API answers: like an account that has it, or one that does not. */
export type SnapshotApiMode = 'available' | 'not-found' | 'forbidden';

interface EndpointRecord {
  endpoint: Endpoint;
  proxy: EndpointProxy;
}

type CreateBranchBody = BranchCreateRequest & AnnotationCreateValueRequest;
export type CreateBranchResult = BranchResponse & EndpointsResponse & OperationsResponse & RolesResponse & DatabasesResponse & ConnectionURIsOptionalResponse;

const BRANCH_ANNOTATION = 'console/branch';

/**
 * The project as Neon's control plane would hold it: branches, endpoints, operations, one
 * database and one role. Requests are validated synchronously (so a refused request never starts
 * local work); accepted mutations start their work in the background and return operations.
 */
export class NeonState {
  readonly project: Project;
  readonly password = neonPassword();
  defaultBranchId = '';
  private readonly branches = new Map<string, BranchRecord>();
  private readonly endpoints = new Map<string, EndpointRecord>();
  private readonly operations: OperationRecord[] = [];
  private readonly jobs = new Set<Job>();
  private nextDatabaseId = 1001;
  private readonly createdAt: number;
  private readonly snapshots = new Map<string, SnapshotRecord>();
  snapshotApi: SnapshotApiMode = 'available';
  /** Neon's documented limits: 1 snapshot on Free, 10 on paid plans. */
  snapshotLimit = 10;

  private constructor(private readonly config: StateConfig) {
    // The project must be older than its history: a branch at any instant of the window is legal.
    this.createdAt = Date.now() - config.historyRetentionSeconds * 1000;
    const created = iso(this.createdAt);
    const now = new Date();
    this.project = {
      id: config.projectId,
      name: config.projectId,
      platform_id: 'aws',
      region_id: 'aws-us-east-2',
      provisioner: 'k8s-neonvm',
      pg_version: config.pgVersion,
      proxy_host: '127.0.0.1',
      store_passwords: true,
      creation_source: 'console',
      history_retention_seconds: config.historyRetentionSeconds,
      created_at: created,
      updated_at: created,
      branch_logical_size_limit: 0,
      branch_logical_size_limit_bytes: 0,
      data_storage_bytes_hour: 0,
      data_transfer_bytes: 0,
      written_data_bytes: 0,
      compute_time_seconds: 0,
      active_time_seconds: 0,
      cpu_used_sec: 0,
      consumption_period_start: iso(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1))),
      consumption_period_end: iso(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1))),
      owner_id: '00000000-0000-4000-8000-000000000000',
      settings: {},
      default_endpoint_settings: {},
    };
  }

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
  async timeTravel(endpointId: string, target: TimeTravelTarget): Promise<HostPort> {
    const endpoint = this.endpoints.get(endpointId);
    const record = endpoint && this.branches.get(endpoint.endpoint.branch_id);
    if (!record) throw new Error('the endpoint no longer exists');
    let point: PointInTime;
    if (target.kind === 'timestamp') {
      const at = new Date(target.value);
      if (!isRfc3339(target.value)) throw new Error(`invalid neon_timestamp "${target.value}": expected RFC 3339, e.g. 2024-04-21T00:00:00Z`);
      const outside = outsideWindow(at, this.config.historyRetentionSeconds);
      if (outside) throw new Error(outside);
      point = { kind: 'time', at, input: target.value };
    } else {
      const lsn = normalizeLsn(target.value);
      if (!lsn) throw new Error(`invalid neon_lsn "${target.value}": expected an LSN like 0/1DE2850`);
      point = { kind: 'lsn', lsn, input: target.value };
    }
    return this.config.instances.timeTravelAt(onProduction(record.history, point, record.branch.name));
  }

  async close(): Promise<void> {
    await Promise.all([...this.endpoints.values()].map((e) => e.proxy.close()));
    this.endpoints.clear();
  }

  // ------------------------------------------------------------- snapshots

  private requireSnapshotApi(): void {
    if (this.snapshotApi === 'not-found') throw new ApiError(404, 'not found');
    if (this.snapshotApi === 'forbidden') throw new ApiError(403, 'snapshots are not available on your plan');
  }

  private requireSnapshot(snapshotId: string): SnapshotRecord {
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

  // -------------------------------------------------------------- internals

  /** Starts the local instance of a branch that has had none yet (its first compute), at its origin. */
  private wake(record: BranchRecord): Promise<unknown> {
    record.dormant = false;
    const origin = record.origin;
    if (!origin) {
      record.backend = Backend.none(`fake-neon holds no data for branch ${record.branch.name}`);
      return record.backend.whenReady();
    }
    const id = record.branch.id;
    record.backend = Backend.restoring(this.config.instances.restore(origin, `${id}-${Date.now()}`), (instanceId) => this.config.instances.remove(instanceId));
    // Routing facts are needed as soon as the instance answers, not when a poll notices.
    record.backend.whenReady().then(
      () => {
        const facts = record.backend.restored!;
        record.history = completeHistory(record.history, facts);
        if (!record.branch.parent_lsn && facts.replayLsn) record.branch.parent_lsn = normalizeLsn(facts.replayLsn);
      },
      () => undefined,
    );
    return record.backend.whenReady();
  }

  private requireBranch(branchId: string): BranchRecord {
    const record = this.branches.get(branchId);
    if (!record) throw new ApiError(404, `branch ${branchId} not found`);
    return record;
  }

  private childrenOf(branchId: string): BranchRecord[] {
    return [...this.branches.values()].filter((r) => r.branch.parent_id === branchId);
  }

  private endpointsOf(branchId: string): EndpointRecord[] {
    return [...this.endpoints.values()].filter((e) => e.endpoint.branch_id === branchId);
  }

  private checkNewName(name: unknown, field = 'name'): void {
    if (typeof name !== 'string' || name.length < 1 || name.length > 256) throw new ApiError(400, `${field} must be a string of 1 to 256 characters`);
    if ([...this.branches.values()].some((r) => r.branch.name === name)) throw new ApiError(409, `branch with name "${name}" already exists`);
  }

  /**
   * Validates a branch/restore point (timestamp XOR LSN XOR head) and translates it into a point
   * on production, with the history the new copy will share.
   */
  private async branchPoint(
    parent: BranchRecord,
    timestamp: unknown,
    lsn: unknown,
    timestampField: string,
    lsnField: string,
    headLsn = false,
  ): Promise<{ point: PointInTime; history: History; parentTimestamp?: string; parentLsn?: string }> {
    if (timestamp !== undefined && lsn !== undefined) throw new ApiError(400, `${timestampField} and ${lsnField} cannot be specified at the same time`);
    const translate = (point: PointInTime) => {
      try {
        return onProduction(parent.history, point, parent.branch.name);
      } catch (err) {
        if (err instanceof HistoryError) throw new ApiError(501, err.message);
        throw err;
      }
    };
    if (timestamp !== undefined) {
      if (!isRfc3339(timestamp)) {
        throw new ApiError(400, `${timestampField} must be an ISO 8601 timestamp, e.g. 2024-02-26T12:00:00Z`);
      }
      const at = new Date(timestamp);
      const outside = outsideWindow(at, this.config.historyRetentionSeconds);
      if (outside) throw new ApiError(400, outside);
      return {
        point: translate({ kind: 'time', at, input: timestamp }),
        history: { kind: 'upto', until: at, untilLsn: null },
        parentTimestamp: at.toISOString(),
      };
    }
    if (lsn !== undefined) {
      const normalized = typeof lsn === 'string' ? normalizeLsn(lsn) : undefined;
      if (!normalized) throw new ApiError(400, `${lsnField} must be an LSN such as 0/1DE2850`);
      if (parent.history.kind === 'live') {
        const current = await this.productionLsn();
        if (current && compareLsn(normalized, current) > 0) {
          throw new ApiError(400, `${lsnField} ${normalized} is ahead of the branch's current LSN ${current}`);
        }
      }
      return { point: translate({ kind: 'lsn', lsn: normalized, input: lsn as string }), history: { kind: 'upto', until: null, untilLsn: normalized }, parentLsn: normalized };
    }
    if (parent.history.kind !== 'live') {
      // A copy that never had a read-write compute has no writes of its own: its head is still the
      // point on production it was made from (a snapshot branch, a restored snapshot), however old.
      if (parent.sealed && parent.origin) {
        return { point: parent.origin, history: parent.history, ...(parent.history.untilLsn ? { parentLsn: parent.history.untilLsn } : {}) };
      }
      throw new ApiError(501, `fake-neon cannot copy the head of ${parent.branch.name}: it is a local copy, and only production's history can be replayed; pass a timestamp or LSN`);
    }
    // Head = now, a millisecond ahead so every commit acknowledged before this request is in.
    const at = new Date(Date.now() + 1);
    await new Promise((r) => setTimeout(r, 2));
    const current = headLsn ? await this.productionLsn() : undefined;
    const untilLsn = current ? normalizeLsn(current) ?? null : null;
    return { point: { kind: 'time', at, input: 'head' }, history: { kind: 'upto', until: at, untilLsn }, ...(untilLsn ? { parentLsn: untilLsn } : {}) };
  }

  private async productionLsn(): Promise<string | undefined> {
    const client = new pg.Client({ connectionString: this.config.productionUrl });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
      return rows[0]?.lsn;
    } catch {
      return undefined;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private workFor(fault: OperationFault | undefined, start: () => Promise<unknown>): JobWork {
    if (fault && 'failOperation' in fault) return { kind: 'fail', error: fault.error ?? 'fake-neon: injected operation failure' };
    if (fault && 'stallOperation' in fault) return { kind: 'stall' };
    return { kind: 'work', promise: start() };
  }

  private startJob(work: JobWork, effects: JobEffects): Job {
    const job = new Job(work, this.config.operationMs, effects);
    this.jobs.add(job);
    return job;
  }

  /**
   * Takes a branch out of the project. With an injected failure it stays (the deletion failed);
   * with a stall it is gone but its instance lives until close, as its operations never end.
   */
  private removeBranch(record: BranchRecord, fault: OperationFault | undefined): Job {
    const work = this.workFor(fault, () => record.backend.release());
    if (work.kind !== 'fail') {
      this.branches.delete(record.branch.id);
      for (const e of this.endpointsOf(record.branch.id)) this.closeEndpoint(e);
    }
    return this.startJob(work, {});
  }

  private closeEndpoint(e: EndpointRecord): void {
    this.endpoints.delete(e.endpoint.id);
    void e.proxy.close();
  }

  private insertBranch(spec: {
    name?: string;
    backend: Backend;
    history: History;
    ready: boolean;
    parentId?: string;
    parentTimestamp?: string;
    parentLsn?: string;
    expiresAt?: string;
    isProtected?: boolean;
    isDefault?: boolean;
    createdAt?: number;
  }): BranchRecord {
    const id = neonId('br');
    const created = iso(spec.createdAt ?? Date.now());
    const branch: Branch = {
      id,
      project_id: this.config.projectId,
      ...(spec.parentId ? { parent_id: spec.parentId } : {}),
      ...(spec.parentTimestamp ? { parent_timestamp: spec.parentTimestamp } : {}),
      ...(spec.parentLsn ? { parent_lsn: spec.parentLsn } : {}),
      name: spec.name ?? id,
      current_state: spec.ready ? 'ready' : 'init',
      ...(spec.ready ? {} : { pending_state: 'ready' }),
      state_changed_at: created,
      creation_source: 'console',
      primary: spec.isDefault === true,
      default: spec.isDefault === true,
      protected: spec.isProtected === true,
      cpu_used_sec: 0,
      compute_time_seconds: 0,
      active_time_seconds: 0,
      written_data_bytes: 0,
      data_transfer_bytes: 0,
      created_at: created,
      updated_at: created,
      init_source: 'parent-data',
      ...(spec.expiresAt ? { expires_at: spec.expiresAt, ttl_interval_seconds: Math.round((Date.parse(spec.expiresAt) - Date.now()) / 1000) } : {}),
    };
    const record: BranchRecord = {
      branch,
      annotation: undefined,
      backend: spec.backend,
      history: spec.history,
      databaseId: this.nextDatabaseId++,
      sealed: false,
      dormant: false,
    };
    this.branches.set(id, record);
    return record;
  }

  private async startEndpoint(branchId: string, type: EndpointType, active: boolean): Promise<EndpointRecord> {
    const id = neonId('ep');
    const proxy = await EndpointProxy.start({
      readOnly: type === EndpointType.ReadOnly,
      // Looked up per connection: after a restore the same endpoint reaches the new data.
      backend: () => {
        const endpoint = this.endpoints.get(id);
        const record = endpoint && this.branches.get(endpoint.endpoint.branch_id);
        if (!record) return Promise.reject(new Error(`endpoint ${id} does not exist`));
        return record.backend.connect();
      },
      timeTravel: (target) => this.timeTravel(id, target),
    });
    const now = iso(Date.now());
    const endpoint: Endpoint = {
      host: `127.0.0.1:${proxy.port}`,
      id,
      project_id: this.config.projectId,
      branch_id: branchId,
      autoscaling_limit_min_cu: 0.25,
      autoscaling_limit_max_cu: 0.25,
      region_id: this.project.region_id,
      type,
      current_state: (active ? 'active' : 'init') as Endpoint['current_state'],
      ...(active ? { started_at: now } : { pending_state: 'active' as Endpoint['pending_state'] }),
      settings: { pg_settings: {} },
      pooler_enabled: false,
      pooler_mode: EndpointPoolerMode.Transaction,
      disabled: false,
      passwordless_access: true,
      creation_source: 'console',
      created_at: now,
      updated_at: now,
      proxy_host: '127.0.0.1',
      suspend_timeout_seconds: 0,
      provisioner: 'k8s-neonvm',
    };
    const record = { endpoint, proxy };
    if (!this.branches.has(branchId)) {
      await proxy.close();
      throw new ApiError(404, `branch ${branchId} not found`);
    }
    this.endpoints.set(id, record);
    return record;
  }

  private setState(record: BranchRecord, current: string, pending?: string): void {
    const now = iso(Date.now());
    record.branch.current_state = current;
    if (pending) record.branch.pending_state = pending;
    else delete record.branch.pending_state;
    record.branch.state_changed_at = now;
    record.branch.updated_at = now;
  }

  private markReady(record: BranchRecord): void {
    this.setState(record, 'ready');
  }

  private markActive(e: EndpointRecord): void {
    const now = iso(Date.now());
    e.endpoint.current_state = 'active' as Endpoint['current_state'];
    delete e.endpoint.pending_state;
    e.endpoint.started_at = now;
    e.endpoint.updated_at = now;
  }

  private renderBranch(record: BranchRecord): Branch {
    return { ...record.branch };
  }

  private annotationOf(branchId: string, value: Record<string, string>): AnnotationData {
    const now = iso(Date.now());
    return { object: { type: BRANCH_ANNOTATION, id: branchId }, value, created_at: now, updated_at: now };
  }

  private roleOf(branchId: string, createdAt: string): Role {
    return { branch_id: branchId, name: this.config.role, protected: false, authentication_method: 'password', created_at: createdAt, updated_at: createdAt };
  }

  private databaseOf(record: BranchRecord): Database {
    return {
      id: record.databaseId,
      branch_id: record.branch.id,
      name: this.config.database,
      owner_name: this.config.role,
      created_at: record.branch.created_at,
      updated_at: record.branch.created_at,
    };
  }

  private uriOf(e: EndpointRecord): string {
    const enc = encodeURIComponent;
    return `postgresql://${enc(this.config.role)}:${enc(this.password)}@127.0.0.1:${e.proxy.port}/${enc(this.config.database)}`;
  }

  private connectionDetails(e: EndpointRecord): ConnectionDetails {
    return {
      connection_uri: this.uriOf(e),
      connection_parameters: { database: this.config.database, password: this.password, role: this.config.role, host: e.endpoint.host, pooler_host: e.endpoint.host },
    };
  }
}

function endpointsHaveReadWrite(endpoints: EndpointRecord[]): boolean {
  return endpoints.some((e) => e.endpoint.type === EndpointType.ReadWrite);
}

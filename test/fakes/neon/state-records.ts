import {
  EndpointPoolerMode,
  EndpointType,
  type AnnotationData,
  type Branch,
  type ConnectionDetails,
  type Database,
  type Endpoint,
  type Project,
  type Role,
} from '@neondatabase/api-client';
import { type PointInTime } from '../../../src/time/index.js';
import { Backend } from './backend.js';
import { normalizeLsn, onProduction, type History } from './history.js';
import { neonId, neonPassword } from './ids.js';
import { iso, Job, type OperationRecord } from './operations.js';
import { EndpointProxy, type HostPort, type TimeTravelTarget } from './pg-proxy.js';
import { ApiError, isRfc3339, outsideWindow } from './validate.js';
import { BRANCH_ANNOTATION, type BranchRecord, type EndpointRecord, type SnapshotApiMode, type SnapshotRecord, type StateConfig } from './state-types.js';

/** The project's records (branches, endpoints, operations) and how they render as API objects. */
export class NeonStateRecords {
  readonly project: Project;
  readonly password = neonPassword();
  defaultBranchId = '';
  protected readonly branches = new Map<string, BranchRecord>();
  protected readonly endpoints = new Map<string, EndpointRecord>();
  protected readonly operations: OperationRecord[] = [];
  protected readonly jobs = new Set<Job>();
  protected nextDatabaseId = 1001;
  protected readonly createdAt: number;
  protected readonly snapshots = new Map<string, SnapshotRecord>();
  snapshotApi: SnapshotApiMode = 'available';
  /** Neon's documented limits: 1 snapshot on Free, 10 on paid plans. */
  snapshotLimit = 10;

  protected constructor(protected readonly config: StateConfig) {
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

  protected requireBranch(branchId: string): BranchRecord {
    const record = this.branches.get(branchId);
    if (!record) throw new ApiError(404, `branch ${branchId} not found`);
    return record;
  }

  protected childrenOf(branchId: string): BranchRecord[] {
    return [...this.branches.values()].filter((r) => r.branch.parent_id === branchId);
  }

  protected endpointsOf(branchId: string): EndpointRecord[] {
    return [...this.endpoints.values()].filter((e) => e.endpoint.branch_id === branchId);
  }

  protected checkNewName(name: unknown, field = 'name'): void {
    if (typeof name !== 'string' || name.length < 1 || name.length > 256) throw new ApiError(400, `${field} must be a string of 1 to 256 characters`);
    if ([...this.branches.values()].some((r) => r.branch.name === name)) throw new ApiError(409, `branch with name "${name}" already exists`);
  }

  /**
   * Validates a branch/restore point (timestamp XOR LSN XOR head) and translates it into a point
   * on production, with the history the new copy will share.
   */
  protected closeEndpoint(e: EndpointRecord): void {
    this.endpoints.delete(e.endpoint.id);
    void e.proxy.close();
  }

  protected insertBranch(spec: {
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

  protected async startEndpoint(branchId: string, type: EndpointType, active: boolean): Promise<EndpointRecord> {
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

  protected setState(record: BranchRecord, current: string, pending?: string): void {
    const now = iso(Date.now());
    record.branch.current_state = current;
    if (pending) record.branch.pending_state = pending;
    else delete record.branch.pending_state;
    record.branch.state_changed_at = now;
    record.branch.updated_at = now;
  }

  protected markReady(record: BranchRecord): void {
    this.setState(record, 'ready');
  }

  protected markActive(e: EndpointRecord): void {
    const now = iso(Date.now());
    e.endpoint.current_state = 'active' as Endpoint['current_state'];
    delete e.endpoint.pending_state;
    e.endpoint.started_at = now;
    e.endpoint.updated_at = now;
  }

  protected renderBranch(record: BranchRecord): Branch {
    return { ...record.branch };
  }

  protected annotationOf(branchId: string, value: Record<string, string>): AnnotationData {
    const now = iso(Date.now());
    return { object: { type: BRANCH_ANNOTATION, id: branchId }, value, created_at: now, updated_at: now };
  }

  protected roleOf(branchId: string, createdAt: string): Role {
    return { branch_id: branchId, name: this.config.role, protected: false, authentication_method: 'password', created_at: createdAt, updated_at: createdAt };
  }

  protected databaseOf(record: BranchRecord): Database {
    return {
      id: record.databaseId,
      branch_id: record.branch.id,
      name: this.config.database,
      owner_name: this.config.role,
      created_at: record.branch.created_at,
      updated_at: record.branch.created_at,
    };
  }

  protected uriOf(e: EndpointRecord): string {
    const enc = encodeURIComponent;
    return `postgresql://${enc(this.config.role)}:${enc(this.password)}@127.0.0.1:${e.proxy.port}/${enc(this.config.database)}`;
  }

  protected connectionDetails(e: EndpointRecord): ConnectionDetails {
    return {
      connection_uri: this.uriOf(e),
      connection_parameters: { database: this.config.database, password: this.password, role: this.config.role, host: e.endpoint.host, pooler_host: e.endpoint.host },
    };
  }

  /** A Time Travel connection of an endpoint: production as it was at the target. */
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
}

import type { Branch, ConnectionDetails, Database, Endpoint, Operation, Role, Snapshot as ApiSnapshot } from '@neondatabase/api-client';
import { EndpointType } from '@neondatabase/api-client';
import { badInput, PitrError, refused } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import { withClient } from '../../db/connect.js';
import { describePointInTime, formatCompactUtc, formatTarget, formatUtc, parsePointInTime, checkSnapshotName, type PointInTime } from '../../time/index.js';
import type {
  CreateBranchOptions,
  CreateSnapshotOptions,
  PointInTimeConnection,
  Provider,
  RecoveryBranch,
  RestoreInPlaceOptions,
  RestoreResult,
  Snapshot,
  SourceInfo,
} from '../types.js';
import { NeonApi, NeonApiError, type NeonApiOptions } from './api.js';
import { waitForOperations } from './operations.js';

export interface NeonSettings extends Omit<NeonApiOptions, 'logger'> {
  projectId: string;
  /** Production branch, by name or id; default: the project's default branch. */
  source?: string;
  database?: string;
  role?: string;
  /** How long to wait for Neon's operations (default 5 min). */
  operationTimeoutMs: number;
  /**
   * How snapshots are kept: 'branch' = a branch of production without compute, never expiring;
   * 'api' = Neon's snapshot API (Beta), an error where the account lacks it; 'auto' (default) =
   * the API where the project has it, else a branch (decided once per provider, i.e. per run).
   */
  snapshots?: SnapshotMethodSetting;
  logger?: Logger;
}

export type SnapshotMethodSetting = 'auto' | 'api' | 'branch';

/**
 * The annotation key that marks a branch as pitr's (with the name prefix, how pitr knows its own).
 * Its value is the kind: 'snapshot' for a snapshot branch; 'recovery' (or any other value, as
 * older versions wrote) for a recovery branch.
 */
const MARK = 'pitr';
const KIND_SNAPSHOT = 'snapshot';
export const PITR_PREFIX = 'pitr-';
/** Names of pitr's snapshot branches and Neon snapshots: the prefix, then the user's name. */
export const SNAPSHOT_PREFIX = 'pitr-snap-';

/** One of pitr's snapshots and what keeps it: a branch, or a snapshot of Neon's API. */
interface FoundSnapshot {
  snapshot: Snapshot;
  branch?: Annotated;
  api?: ApiSnapshot;
}

/** A 4xx that says "over the plan's snapshot limit", not "no such feature". */
function isLimitError(err: unknown): boolean {
  return err instanceof NeonApiError && err.status !== undefined && err.status >= 400 && err.status < 500 && err.status !== 423 && err.status !== 429 && /limit|quota|maximum|exceed/i.test(err.neonMessage);
}

/** The account or project has no snapshot API: 403/404/405/501, or a 4xx saying the feature is off. */
function isSnapshotApiMissing(err: unknown): err is NeonApiError {
  if (!(err instanceof NeonApiError) || err.status === undefined) return false;
  if (isLimitError(err)) return false;
  if ([403, 404, 405, 501].includes(err.status)) return true;
  return err.status >= 400 && err.status < 500 && /not (enabled|available|supported|allowed)|feature|plan/i.test(err.neonMessage);
}

const slug = (name: string) => name.replace(/[^A-Za-z0-9-]+/g, '-');

interface Annotated {
  branch: Branch;
  annotation: Record<string, string> | undefined;
}

/**
 * Neon: production is a branch of a project; a recovery branch is a Neon branch created from it
 * at a timestamp or LSN with a read-write endpoint and an expiry. Everything goes through the
 * API client behind one retry policy; the Neon API itself keeps the state.
 */
/** A point Neon can branch or read at: a time or an LSN. */
type NeonPoint = Extract<PointInTime, { kind: 'time' } | { kind: 'lsn' }>;

/**
 * Neon's history is addressed by time or LSN only; a transaction id has no API. Refused before
 * any request, with the exact alternative: `pitr when` prints the commit LSN of the transaction.
 */
function refuseXid<T extends PointInTime | undefined>(at: T): Exclude<T, { kind: 'xid' }> {
  if (at?.kind === 'xid') {
    throw badInput('xid_not_supported', `Neon cannot branch at a transaction id (${at.input}); give the LSN of its commit or a time instead, e.g. --at lsn:16/B374D848 (pitr when finds the time)`);
  }
  return at as Exclude<T, { kind: 'xid' }>;
}

export class NeonProvider implements Provider {
  readonly kind = 'neon' as const;
  readonly api: NeonApi;
  private readonly log: Logger;

  /** Whether the snapshot API answered (true), was found missing (false), or was not asked yet. */
  private snapshotApi: boolean | undefined;

  constructor(private readonly settings: NeonSettings) {
    if (!settings.projectId) throw badInput('missing_project', 'no Neon project: pass --project-id or set NEON_PROJECT_ID');
    if (settings.snapshots !== undefined && !['auto', 'api', 'branch'].includes(settings.snapshots)) {
      throw badInput('bad_snapshot_method', `unknown snapshot method "${String(settings.snapshots)}": use auto, api or branch`);
    }
    this.log = settings.logger ?? silentLogger;
    this.api = new NeonApi({ ...settings, logger: this.log });
  }

  private get projectId(): string {
    return this.settings.projectId;
  }

  private async project() {
    return (await this.api.call(`get project ${this.projectId}`, (c) => c.getProject(this.projectId))).project;
  }

  private async branches(): Promise<Annotated[]> {
    const res = await this.api.call(`list branches of ${this.projectId}`, (c) => c.listProjectBranches({ projectId: this.projectId }));
    return res.branches.map((branch) => ({ branch, annotation: res.annotations?.[branch.id]?.value }));
  }

  /** The production branch: --source by id or name, else the project's default branch. */
  private async sourceBranch(all?: Annotated[]): Promise<Branch> {
    const list = all ?? (await this.branches());
    const wanted = this.settings.source;
    const found = wanted ? list.find((b) => b.branch.id === wanted) ?? list.find((b) => b.branch.name === wanted) : list.find((b) => b.branch.default);
    if (!found) {
      const names = list.map((b) => b.branch.name).join(', ');
      throw badInput('unknown_source', wanted ? `no branch "${wanted}" in project ${this.projectId} (branches: ${names})` : `project ${this.projectId} has no default branch`);
    }
    return found.branch;
  }

  private async databaseAndRole(branchId: string): Promise<{ database: string; role: string }> {
    const { databases } = await this.api.call('list databases', (c) => c.listProjectBranchDatabases(this.projectId, branchId));
    let db: Database | undefined;
    if (this.settings.database) {
      db = databases.find((d) => d.name === this.settings.database);
      if (!db) throw badInput('unknown_database', `no database "${this.settings.database}" on the branch (databases: ${databases.map((d) => d.name).join(', ') || 'none'})`);
    } else if (databases.length === 1) db = databases[0];
    else throw badInput('choose_database', `the branch has ${databases.length} databases; choose one with --database (${databases.map((d) => d.name).join(', ')})`);
    return { database: db!.name, role: this.settings.role ?? db!.owner_name };
  }

  private async connectionUri(branchId: string, database: string, role: string): Promise<string> {
    const { uri } = await this.api.call(`connection URI of ${branchId}`, (c) =>
      c.getConnectionUri({ projectId: this.projectId, branch_id: branchId, database_name: database, role_name: role }),
    );
    return uri;
  }

  /** Neon keeps history for history_retention_seconds: the window is [now - that, now]. */
  private window(retentionSeconds: number, now = Date.now()) {
    return { oldest: new Date(now - retentionSeconds * 1000), newest: new Date(now) };
  }

  async describe(): Promise<SourceInfo> {
    const project = await this.project();
    const source = await this.sourceBranch();
    const window = this.window(project.history_retention_seconds);
    return {
      provider: 'neon',
      source: `${project.name ?? project.id}/${source.name}`,
      pgVersion: String(project.pg_version),
      window: { oldest: window.oldest.toISOString(), newest: window.newest.toISOString(), reachesNow: true },
      problems: source.current_state === 'ready' ? [] : [`the production branch ${source.name} is ${source.current_state}`],
      details: {
        projectId: project.id,
        region: project.region_id,
        sourceBranch: { id: source.id, name: source.name, default: source.default, protected: source.protected },
        historyRetentionSeconds: project.history_retention_seconds,
      },
    };
  }

  private checkWindow(at: PointInTime, retentionSeconds: number): void {
    if (at.kind !== 'time') return;
    const w = this.window(retentionSeconds);
    if (at.at < w.oldest) {
      throw badInput(
        'outside_history',
        `${describePointInTime(at)} is outside the project's history window (${Math.round(retentionSeconds / 3600)} h): recoverable from ${formatUtc(w.oldest)} to now`,
      );
    }
  }

  async createRecoveryBranch(requested: PointInTime, options: CreateBranchOptions): Promise<RecoveryBranch> {
    const started = options.startedAt ?? Date.now();
    const at = refuseXid(requested);
    if (at.kind === 'snapshot') return this.createRecoveryBranchFromSnapshot(at.name, options, started);
    // Every round trip before the create is time the user waits: these two go together.
    const [project, all] = await Promise.all([this.project(), this.branches()]);
    // Refused before any write: Neon would reject it anyway, with a less helpful message.
    this.checkWindow(at, project.history_retention_seconds);
    const source = await this.sourceBranch(all);
    const target = at.kind === 'lsn' ? `lsn:${at.lsn}` : formatTarget(at);
    return this.createComputeBranch({
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
  private async createRecoveryBranchFromSnapshot(name: string, options: CreateBranchOptions, started: number): Promise<RecoveryBranch> {
    const [all, apiList] = await Promise.all([this.branches(), this.apiSnapshots()]);
    const found = this.requireSnapshot(name, all, apiList);
    const source = this.snapshotSource(found, all) ?? (await this.sourceBranch(all));
    const target = `snapshot:${name}`;
    const defaultName = `${PITR_PREFIX}${slug(source.name)}-snap-${name}`;
    const details = { snapshot: { name, method: found.snapshot.method, id: found.snapshot.id, at: found.snapshot.at, lsn: found.snapshot.lsn } };
    if (found.api) return this.restoreApiSnapshotAsBranch(found, all, options, started, { source, defaultName, target, details });
    const branch = found.branch!.branch;
    return this.createComputeBranch({
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
  private async createComputeBranch(p: {
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
    const names = this.databaseAndRole(p.namesFrom);
    names.catch(() => undefined);
    const name = options.name ?? this.freeName(p.defaultName, p.all);
    const expiresAt = new Date(Date.now() + options.ttlMs).toISOString();
    options.onProgress?.({ phase: 'neon', message: `creating branch ${name} from ${p.from}` });
    const created = await this.api.call(
      `create branch ${name}`,
      (c) =>
        c.createProjectBranch(this.projectId, {
          branch: { parent_id: p.parentId, name, ...p.point, expires_at: expiresAt },
          endpoints: [{ type: EndpointType.ReadWrite }],
          annotation_value: p.annotation,
        }),
      // A create that failed with a 5xx may still have happened: look for it by name before trying again.
      { retryServerErrors: true, beforeRetry: () => this.createdMeanwhile(name) },
    );
    const branch = created.branch;
    let uri: string;
    try {
      await waitForOperations(this.api, this.projectId, created.operations, {
        timeoutMs: this.settings.operationTimeoutMs,
        ...(options.signal && { signal: options.signal }),
        ...(options.onProgress && { onProgress: options.onProgress }),
      });
      const { database, role } = await names;
      // The create response carries the URI when the branch has one database and role.
      const offered = created.connection_uris?.find((c) => c.connection_parameters.database === database && c.connection_parameters.role === role);
      uri = offered?.connection_uri ?? (await this.connectionUri(branch.id, database, role));
      options.onProgress?.({ phase: 'neon', message: 'checking that the branch answers queries' });
      await this.waitQueryable(uri, p.started + this.settings.operationTimeoutMs);
    } catch (err) {
      throw await this.discardHalfCreated(branch, `it expires at ${expiresAt}`, err);
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
      details: { projectId: this.projectId, sourceBranchId: source.id, ...p.details, ...(await names) },
    };
  }

  /** `base`, or `base-2`, `base-3`… when a branch already has that name. */
  private freeName(base: string, all: Annotated[]): string {
    const taken = new Set(all.map((b) => b.branch.name));
    let name = base;
    for (let n = 2; taken.has(name); n++) name = `${base}-${n}`;
    return name;
  }

  /** For a create retried after a 5xx: the branch, when the first attempt made it after all. */
  private async createdMeanwhile(name: string) {
    const existing = (await this.branches()).find((b) => b.branch.name === name);
    return existing
      ? { branch: existing.branch, operations: [] as Operation[], endpoints: [] as Endpoint[], roles: [] as Role[], databases: [] as Database[], connection_uris: [] as ConnectionDetails[] }
      : undefined;
  }

  /**
   * A snapshot of Neon's API as a recovery branch: restoreSnapshot into a new branch (not
   * finalized, so production is untouched), then an expiry and a read-write compute. Such a branch
   * cannot carry an annotation; pitr knows it as its own by its name and `restored_from`.
   */
  private async restoreApiSnapshotAsBranch(
    found: FoundSnapshot,
    all: Annotated[],
    options: CreateBranchOptions,
    started: number,
    p: { source: Branch; defaultName: string; target: string; details: Record<string, unknown> },
  ): Promise<RecoveryBranch> {
    const snap = found.api!;
    const name = options.name ?? this.freeName(p.defaultName, all);
    if (!name.startsWith(PITR_PREFIX)) {
      throw badInput('bad_branch_name', `a branch restored from a Neon snapshot must be named ${PITR_PREFIX}… so pitr can recognise it (got ${name})`);
    }
    const expiresAt = new Date(Date.now() + options.ttlMs).toISOString();
    const wait = { timeoutMs: this.settings.operationTimeoutMs, ...(options.signal && { signal: options.signal }), ...(options.onProgress && { onProgress: options.onProgress }) };
    options.onProgress?.({ phase: 'neon', message: `restoring Neon snapshot ${snap.name} into a new branch ${name}` });
    const restored = await this.api.call(
      `restore snapshot ${snap.name}`,
      (c) => c.restoreSnapshot({ projectId: this.projectId, snapshotId: snap.id }, { name, finalize_restore: false }),
      {
        retryServerErrors: true,
        beforeRetry: async () => {
          const existing = (await this.branches()).find((b) => b.branch.name === name);
          return existing ? { branch: existing.branch, endpoints: [] as Endpoint[], operations: [] as Operation[] } : undefined;
        },
      },
    );
    const branch = restored.branch;
    let expiry: string | null = null;
    let uri: string;
    let names: { database: string; role: string };
    try {
      await waitForOperations(this.api, this.projectId, restored.operations, wait);
      // restoreSnapshot takes no expiry: set it at once, so a forgotten branch still goes away.
      const updated = await this.api.call(`set the expiry of ${name}`, (c) => c.updateProjectBranch(this.projectId, branch.id, { branch: { expires_at: expiresAt } }));
      expiry = expiresAt;
      await waitForOperations(this.api, this.projectId, updated.operations, wait);
      if (!restored.endpoints?.some((e) => e.type === EndpointType.ReadWrite)) {
        options.onProgress?.({ phase: 'neon', message: `starting a compute for ${name}` });
        const endpoint = await this.api.call(
          `add a compute to ${name}`,
          (c) => c.createProjectEndpoint(this.projectId, { endpoint: { branch_id: branch.id, type: EndpointType.ReadWrite } }),
          { retryServerErrors: false },
        );
        await waitForOperations(this.api, this.projectId, endpoint.operations, wait);
      }
      names = await this.databaseAndRole(branch.id);
      uri = await this.connectionUri(branch.id, names.database, names.role);
      options.onProgress?.({ phase: 'neon', message: 'checking that the branch answers queries' });
      await this.waitQueryable(uri, started + this.settings.operationTimeoutMs);
    } catch (err) {
      throw await this.discardHalfCreated(branch, expiry ? `it expires at ${expiry}` : `delete it with pitr branches delete ${name}`, err);
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
      details: { projectId: this.projectId, sourceBranchId: p.source.id, ...p.details, ...names },
    };
  }

  /** A branch that never became usable is deleted (best effort), so nothing half-made is left behind. */
  private async discardHalfCreated(branch: Branch, otherwise: string, err: unknown): Promise<unknown> {
    if (!(err instanceof PitrError)) return err;
    const outcome = await this.api
      .call(`delete branch ${branch.name}`, (c) => c.deleteProjectBranch({ projectId: this.projectId, branchId: branch.id }))
      .then(
        () => `the half-created branch ${branch.name} was deleted`,
        (e: unknown) => `the half-created branch ${branch.name} could not be deleted (${(e as Error).message}); ${otherwise}`,
      );
    return new PitrError(err.code, `${err.message} (${outcome})`, { exit: err.exitClass, ...(err.detail !== undefined && { detail: err.detail }) });
  }

  private async waitQueryable(uri: string, deadline: number): Promise<void> {
    for (let delay = 100; ; delay = Math.min(2000, delay * 2)) {
      try {
        await withClient(uri, (client) => client.query('select 1'), { timeoutMs: 10_000 });
        return;
      } catch (err) {
        if (Date.now() + delay > deadline) throw err;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private toRecoveryBranch({ branch, annotation }: Annotated, source: string): RecoveryBranch {
    return {
      id: branch.id,
      name: branch.name,
      provider: 'neon',
      source,
      target: annotation?.['pitr-target'] ?? branch.parent_timestamp ?? (branch.parent_lsn ? `lsn:${branch.parent_lsn}` : ''),
      connectionUrl: '',
      createdAt: branch.created_at,
      expiresAt: branch.expires_at ?? null,
      secondsToQueryable: null,
      state: branch.current_state === 'ready' ? 'running' : branch.current_state === 'init' ? 'creating' : 'unknown',
      details: { projectId: this.projectId, parentId: branch.parent_id ?? null, currentState: branch.current_state },
    };
  }

  /**
   * pitr's recovery branches: marked by pitr's annotation when created (any kind but a snapshot),
   * or restored from a Neon snapshot under a pitr- name (restoreSnapshot takes no annotation).
   * Snapshots and other branches are never listed, pruned or deleted as recovery branches.
   */
  private ours(all: Annotated[]): Annotated[] {
    return all.filter((b) => {
      if (b.branch.default) return false;
      const mark = b.annotation?.[MARK];
      if (mark !== undefined) return mark !== KIND_SNAPSHOT;
      return b.branch.restored_from !== undefined && b.branch.name.startsWith(PITR_PREFIX) && !b.branch.name.startsWith(SNAPSHOT_PREFIX);
    });
  }

  /** pitr's snapshot branches. */
  private snapshotBranches(all: Annotated[]): Annotated[] {
    return all.filter((b) => b.annotation?.[MARK] === KIND_SNAPSHOT && !b.branch.default);
  }

  async listRecoveryBranches(): Promise<RecoveryBranch[]> {
    const all = await this.branches();
    const names = new Map(all.map((b) => [b.branch.id, b.branch.name]));
    return this.ours(all).map((b) => this.toRecoveryBranch(b, names.get(b.annotation?.['pitr-source'] ?? b.branch.parent_id ?? '') ?? b.branch.parent_id ?? '?'));
  }

  private async find(idOrName: string, all?: Annotated[]): Promise<Annotated> {
    const list = all ?? (await this.branches());
    const found = list.find((b) => b.branch.id === idOrName) ?? list.find((b) => b.branch.name === idOrName);
    if (!found) throw badInput('unknown_branch', `no branch "${idOrName}" in project ${this.projectId}`);
    return found;
  }

  async getRecoveryBranch(idOrName: string): Promise<RecoveryBranch> {
    const found = await this.find(idOrName);
    return this.toRecoveryBranch(found, found.branch.parent_id ?? '?');
  }

  async deleteRecoveryBranch(idOrName: string): Promise<RecoveryBranch> {
    const all = await this.branches();
    const found = await this.find(idOrName, all);
    const { branch } = found;
    if (branch.default) throw refused('refuse_default_branch', `${branch.name} is the project's default branch: pitr never deletes it`);
    if (branch.protected) throw refused('refuse_protected_branch', `${branch.name} is a protected branch: pitr never deletes it`);
    if (this.snapshotBranches(all).includes(found)) {
      const name = found.annotation?.['pitr-snapshot'] ?? branch.name.slice(SNAPSHOT_PREFIX.length);
      throw refused('refuse_snapshot', `${branch.name} keeps pitr's snapshot ${name}, not a recovery branch: delete it with pitr snapshot delete ${name} if you mean it`);
    }
    if (!this.ours(all).includes(found)) throw refused('refuse_foreign_branch', `${branch.name} was not created by pitr: delete it in the Neon console or with neonctl if you mean it`);
    const res = await this.api.call(`delete branch ${branch.name}`, (c) => c.deleteProjectBranch({ projectId: this.projectId, branchId: branch.id }));
    await waitForOperations(this.api, this.projectId, res.operations, { timeoutMs: this.settings.operationTimeoutMs });
    return this.toRecoveryBranch(found, branch.parent_id ?? '?');
  }

  async productionUrl(): Promise<string> {
    const source = await this.sourceBranch();
    const { database, role } = await this.databaseAndRole(source.id);
    return this.connectionUri(source.id, database, role);
  }

  /** The full URI of any branch of the project (as neonctl's `cs`), for psql. */
  async connectionString(idOrName: string): Promise<string> {
    const { branch } = await this.find(idOrName);
    const { database, role } = await this.databaseAndRole(branch.id);
    return this.connectionUri(branch.id, database, role);
  }

  /**
   * Rolls the production branch back in place through Neon's restore API. Neon keeps the current
   * state as a new branch (preserve_under_name), so the rollback itself can be undone.
   */
  async restoreInPlace(requested: PointInTime, options: RestoreInPlaceOptions): Promise<RestoreResult> {
    const at = refuseXid(requested);
    if (at.kind === 'snapshot') return this.restoreInPlaceFromSnapshot(at.name, options);
    const project = await this.project();
    this.checkWindow(at, project.history_retention_seconds);
    const all = await this.branches();
    const source = await this.sourceBranch(all);
    const preservedName = options.preserveName ?? `${source.name}-before-pitr-${formatCompactUtc(new Date())}`;
    if (all.some((b) => b.branch.name === preservedName)) throw badInput('name_taken', `a branch named ${preservedName} already exists`);
    const plan = {
      branch: { id: source.id, name: source.name },
      target: at.kind === 'lsn' ? `lsn:${at.lsn}` : formatTarget(at),
      preservedAs: preservedName,
    };
    if (options.dryRun) return { ...plan, applied: false, preservedBranchId: null };
    const res = await this.api.call(`restore branch ${source.name}`, (c) =>
      c.restoreProjectBranch(this.projectId, source.id, {
        source_branch_id: source.id,
        ...(at.kind === 'lsn' ? { source_lsn: at.lsn } : { source_timestamp: formatTarget(at) }),
        preserve_under_name: preservedName,
      }),
    );
    await waitForOperations(this.api, this.projectId, res.operations, {
      timeoutMs: this.settings.operationTimeoutMs,
      ...(options.onProgress && { onProgress: options.onProgress }),
    });
    const preserved = (await this.branches()).find((b) => b.branch.name === preservedName);
    return { ...plan, applied: true, preservedBranchId: preserved?.branch.id ?? null };
  }

  /**
   * A read-only connection to production as it was at `at`, without creating a branch (Neon Time
   * Travel): the branch's endpoint with `options=neon_timestamp:<ISO>` (or neon_lsn), addressed by
   * branch id instead of endpoint id, as neonctl does.
   */
  async openPointInTime(requested: PointInTime): Promise<PointInTimeConnection> {
    const project = await this.project();
    let at: NeonPoint;
    const given = refuseXid(requested);
    if (given.kind !== 'snapshot') at = given;
    else {
      // Time Travel reads production's history: the snapshot stands for a point in it.
      const { snapshot } = await this.findSnapshotOrFail(given.name);
      at = this.snapshotPoint(snapshot);
      if (at.kind === 'time' && at.at < this.window(project.history_retention_seconds).oldest) {
        throw badInput(
          'outside_history',
          `snapshot ${snapshot.name} (${describePointInTime(at)}) is older than the project's history window (${Math.round(project.history_retention_seconds / 3600)} h), so Time Travel cannot read it; make a branch from it instead: pitr --at snapshot:${snapshot.name}`,
        );
      }
    }
    this.checkWindow(at, project.history_retention_seconds);
    const source = await this.sourceBranch();
    const { database, role } = await this.databaseAndRole(source.id);
    const { endpoints } = await this.api.call('list endpoints', (c) => c.listProjectBranchEndpoints(this.projectId, source.id));
    const endpoint = endpoints.find((e) => e.type === EndpointType.ReadWrite) ?? endpoints[0];
    const url = new URL(await this.connectionUri(source.id, database, role));
    if (endpoint && url.hostname.startsWith(endpoint.id)) url.hostname = source.id + url.hostname.slice(endpoint.id.length);
    url.searchParams.set('options', at.kind === 'lsn' ? `neon_lsn:${at.lsn}` : `neon_timestamp:${formatTarget(at)}`);
    return { connectionUrl: url.toString(), readOnly: true, target: at.kind === 'lsn' ? `lsn:${at.lsn}` : formatTarget(at) };
  }

  // -------------------------------------------------------------------------------- snapshots

  private get snapshotMethod(): SnapshotMethodSetting {
    return this.settings.snapshots ?? 'auto';
  }

  /** The one-line error for 'api' when the project has no snapshot API. */
  private apiMissing(err: NeonApiError): PitrError {
    return new PitrError(
      'snapshot_api_unavailable',
      `the Neon snapshot API is not available for project ${this.projectId} (${err.status}: ${err.neonMessage}); set neonSnapshots to auto or branch to keep snapshots as branches without compute`,
    );
  }

  private limitReached(err: NeonApiError): PitrError {
    return new PitrError(
      'snapshot_limit',
      `Neon refused another snapshot (${err.status}: ${err.neonMessage}); delete one you no longer need (pitr snapshot delete <name>), or set neonSnapshots to branch to keep snapshots as branches`,
    );
  }

  /** pitr's snapshots in Neon's snapshot API ([] when the method is 'branch' or the API is missing in 'auto'). */
  private async apiSnapshots(): Promise<ApiSnapshot[]> {
    const method = this.snapshotMethod;
    if (method === 'branch' || (method === 'auto' && this.snapshotApi === false)) return [];
    try {
      const { snapshots } = await this.api.call(`list snapshots of ${this.projectId}`, (c) => c.listSnapshots(this.projectId));
      this.snapshotApi = true;
      return snapshots.filter((s) => s.name.startsWith(SNAPSHOT_PREFIX));
    } catch (err) {
      if (!isSnapshotApiMissing(err)) throw err;
      if (method === 'api') throw this.apiMissing(err);
      this.log.debug({ status: err.status, message: err.neonMessage }, 'no Neon snapshot API here: snapshots are branches');
      this.snapshotApi = false;
      return [];
    }
  }

  private branchSnapshot(b: Annotated): Snapshot {
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
        projectId: this.projectId,
        branch: branch.name,
        sourceBranchId: annotation?.['pitr-source'] ?? branch.parent_id ?? null,
        requested: requested ?? null,
        state: branch.current_state,
        protected: branch.protected,
      },
    };
  }

  private apiSnapshot(s: ApiSnapshot): Snapshot {
    return {
      name: s.name.slice(SNAPSHOT_PREFIX.length),
      id: s.id,
      provider: 'neon',
      method: 'neon-snapshot',
      at: s.timestamp ?? s.created_at,
      lsn: s.lsn ?? null,
      createdAt: s.created_at,
      details: {
        projectId: this.projectId,
        snapshot: s.name,
        sourceBranchId: s.source_branch_id ?? null,
        ...(s.timestamp ? {} : { atIsCreationTime: true }),
        ...(s.expires_at ? { expiresAt: s.expires_at } : {}),
      },
    };
  }

  /** Every snapshot pitr knows, oldest first. */
  private collectSnapshots(all: Annotated[], apiList: ApiSnapshot[]): FoundSnapshot[] {
    const found: FoundSnapshot[] = [
      ...this.snapshotBranches(all).map((branch) => ({ snapshot: this.branchSnapshot(branch), branch })),
      ...apiList.map((api) => ({ snapshot: this.apiSnapshot(api), api })),
    ];
    return found.sort((a, b) => a.snapshot.createdAt.localeCompare(b.snapshot.createdAt) || a.snapshot.name.localeCompare(b.snapshot.name));
  }

  private requireSnapshot(name: string, all: Annotated[], apiList: ApiSnapshot[]): FoundSnapshot {
    const known = this.collectSnapshots(all, apiList);
    const found = known.find((s) => s.snapshot.name === name);
    if (found) return found;
    const names = known.map((s) => s.snapshot.name);
    throw badInput(
      'unknown_snapshot',
      `no snapshot "${name}" in project ${this.projectId} (${names.length ? `snapshots: ${names.join(', ')}` : 'no snapshots yet; take one with pitr snapshot create <name>'})`,
    );
  }

  private async findSnapshotOrFail(name: string): Promise<FoundSnapshot & { all: Annotated[] }> {
    const [all, apiList] = await Promise.all([this.branches(), this.apiSnapshots()]);
    return { ...this.requireSnapshot(name, all, apiList), all };
  }

  /** The production branch a snapshot was taken of, while it still exists. */
  private snapshotSource(found: FoundSnapshot, all: Annotated[]): Branch | undefined {
    const id = found.branch ? (found.branch.annotation?.['pitr-source'] ?? found.branch.branch.parent_id) : found.api?.source_branch_id;
    return id ? all.find((b) => b.branch.id === id)?.branch : undefined;
  }

  /** The point on production a snapshot stands for: the time asked for, else its LSN, else its time. */
  private snapshotPoint(s: Snapshot): NeonPoint {
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

  async createSnapshot(name: string, options: CreateSnapshotOptions): Promise<Snapshot> {
    checkSnapshotName(name);
    const at = refuseXid(options.at);
    if (at?.kind === 'snapshot') {
      throw badInput('bad_snapshot_target', `a snapshot captures production now or at a time or LSN, not another snapshot (${at.input})`);
    }
    const [project, all, apiList] = await Promise.all([this.project(), this.branches(), this.apiSnapshots()]);
    if (at) this.checkWindow(at, project.history_retention_seconds);
    const source = await this.sourceBranch(all);
    const existing = this.collectSnapshots(all, apiList).find((s) => s.snapshot.name === name);
    if (existing) {
      const when = existing.snapshot.at ?? (existing.snapshot.lsn && `LSN ${existing.snapshot.lsn}`) ?? existing.snapshot.createdAt;
      throw badInput('snapshot_exists', `a snapshot named ${name} already exists (taken at ${when}); choose another name or delete it first with pitr snapshot delete ${name}`);
    }
    const branchName = `${SNAPSHOT_PREFIX}${name}`;
    if (all.some((b) => b.branch.name === branchName)) {
      throw badInput('snapshot_exists', `a branch named ${branchName} already exists in project ${this.projectId} (not a pitr snapshot); choose another snapshot name`);
    }
    const method = this.snapshotMethod;
    if (method === 'api' || (method === 'auto' && this.snapshotApi !== false)) {
      try {
        return await this.createApiSnapshot(name, source, options);
      } catch (err) {
        if (isLimitError(err)) throw this.limitReached(err as NeonApiError);
        if (!isSnapshotApiMissing(err)) throw err;
        if (method === 'api') throw this.apiMissing(err);
        this.snapshotApi = false;
        options.onProgress?.({ phase: 'neon', message: `Neon's snapshot API is not available here (${err.status}): keeping the snapshot as a branch without compute` });
      }
    }
    return this.createBranchSnapshot(name, source, options);
  }

  /** A snapshot as a branch of production at `at` (or its head): no compute, no expiry, annotated as pitr's. */
  private async createBranchSnapshot(name: string, source: Branch, options: CreateSnapshotOptions): Promise<Snapshot> {
    const at = options.at as NeonPoint | undefined;
    const branchName = `${SNAPSHOT_PREFIX}${name}`;
    const requested = !at ? 'head' : at.kind === 'lsn' ? `lsn:${at.lsn}` : formatTarget(at);
    const annotation = { [MARK]: KIND_SNAPSHOT, 'pitr-snapshot': name, 'pitr-source': source.id, 'pitr-target': requested };
    options.onProgress?.({ phase: 'neon', message: `creating branch ${branchName} (no compute) from ${source.name} at ${at ? describePointInTime(at) : 'its head'}` });
    const created = await this.api.call(
      `create branch ${branchName}`,
      (c) =>
        c.createProjectBranch(this.projectId, {
          branch: { parent_id: source.id, name: branchName, ...(at ? (at.kind === 'lsn' ? { parent_lsn: at.lsn } : { parent_timestamp: formatTarget(at) }) : {}) },
          endpoints: [],
          annotation_value: annotation,
        }),
      { retryServerErrors: true, beforeRetry: () => this.createdMeanwhile(branchName) },
    );
    try {
      await waitForOperations(this.api, this.projectId, created.operations, {
        timeoutMs: this.settings.operationTimeoutMs,
        ...(options.onProgress && { onProgress: options.onProgress }),
      });
    } catch (err) {
      throw await this.discardHalfCreated(created.branch, `delete it in the Neon console (it never expires)`, err);
    }
    // The branch point (parent_lsn, parent_timestamp) is final once the operations have finished.
    const fresh = await this.api.call(`get branch ${branchName}`, (c) => c.getProjectBranch(this.projectId, created.branch.id));
    return this.branchSnapshot({ branch: fresh.branch, annotation: fresh.annotation?.value ?? annotation });
  }

  /** A snapshot through Neon's snapshot API (Beta): no expiry, named with pitr's prefix. */
  private async createApiSnapshot(name: string, source: Branch, options: CreateSnapshotOptions): Promise<Snapshot> {
    const at = options.at as NeonPoint | undefined;
    const apiName = `${SNAPSHOT_PREFIX}${name}`;
    const findByName = async () => {
      const { snapshots } = await this.api.call(`list snapshots of ${this.projectId}`, (c) => c.listSnapshots(this.projectId));
      return snapshots.find((s) => s.name === apiName);
    };
    options.onProgress?.({ phase: 'neon', message: `creating Neon snapshot ${apiName} of ${source.name} at ${at ? describePointInTime(at) : 'its head'}` });
    const created = await this.api.call(
      `create snapshot ${apiName}`,
      (c) =>
        c.createSnapshot({
          projectId: this.projectId,
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
    this.snapshotApi = true;
    try {
      await waitForOperations(this.api, this.projectId, created.operations, {
        timeoutMs: this.settings.operationTimeoutMs,
        ...(options.onProgress && { onProgress: options.onProgress }),
      });
    } catch (err) {
      if (!(err instanceof PitrError)) throw err;
      const outcome = await this.api.call(`delete snapshot ${apiName}`, (c) => c.deleteSnapshot(this.projectId, created.snapshot.id)).then(
        () => `the half-made snapshot ${apiName} was deleted`,
        (e: unknown) => `the half-made snapshot ${apiName} could not be deleted (${(e as Error).message}); delete it in the Neon console`,
      );
      throw new PitrError(err.code, `${err.message} (${outcome})`, { exit: err.exitClass });
    }
    // The LSN of a snapshot of the head is known once its operations have finished.
    const fresh = (await findByName()) ?? created.snapshot;
    return this.apiSnapshot(fresh);
  }

  async listSnapshots(): Promise<Snapshot[]> {
    const [all, apiList] = await Promise.all([this.branches(), this.apiSnapshots()]);
    return this.collectSnapshots(all, apiList).map((s) => s.snapshot);
  }

  async getSnapshot(name: string): Promise<Snapshot> {
    return (await this.findSnapshotOrFail(name)).snapshot;
  }

  async deleteSnapshot(name: string): Promise<Snapshot> {
    const [all, apiList] = await Promise.all([this.branches(), this.apiSnapshots()]);
    const known = this.collectSnapshots(all, apiList);
    const found = known.find((s) => s.snapshot.name === name);
    if (!found) {
      // Something that looks like it but is not pitr's snapshot: refused, never deleted.
      const lookalike = all.find((b) => b.branch.name === `${SNAPSHOT_PREFIX}${name}`) ?? all.find((b) => b.branch.name === name || b.branch.id === name);
      if (lookalike && this.ours(all).includes(lookalike)) {
        throw refused('refuse_recovery_branch', `${lookalike.branch.name} is a recovery branch, not a snapshot: delete it with pitr branches delete ${lookalike.branch.name}`);
      }
      if (lookalike) {
        throw refused('refuse_foreign_branch', `${lookalike.branch.name} is not a snapshot pitr made: delete it in the Neon console or with neonctl if you mean it`);
      }
      this.requireSnapshot(name, all, apiList);
    }
    const snap = found!;
    if (snap.api) {
      const res = await this.api.call(`delete snapshot ${snap.api.name}`, (c) => c.deleteSnapshot(this.projectId, snap.api!.id));
      await waitForOperations(this.api, this.projectId, res.operations ?? [], { timeoutMs: this.settings.operationTimeoutMs });
      return snap.snapshot;
    }
    const { branch } = snap.branch!;
    if (branch.default) throw refused('refuse_default_branch', `${branch.name} is the project's default branch: pitr never deletes it`);
    if (branch.protected) throw refused('refuse_protected_branch', `${branch.name} is a protected branch: pitr never deletes it`);
    const children = all.filter((b) => b.branch.parent_id === branch.id);
    if (children.length) {
      const names = children.map((b) => b.branch.name);
      throw refused(
        'snapshot_in_use',
        `snapshot ${name} has branches made from it (${names.join(', ')}); Neon deletes a branch only without children: delete those first (pitr branches delete ${names[0]})`,
      );
    }
    const res = await this.api.call(`delete branch ${branch.name}`, (c) => c.deleteProjectBranch({ projectId: this.projectId, branchId: branch.id }));
    await waitForOperations(this.api, this.projectId, res.operations, { timeoutMs: this.settings.operationTimeoutMs });
    return snap.snapshot;
  }

  /**
   * Production rolled back to a snapshot. A snapshot branch: Neon's branch restore from it (its
   * head, so no history window applies), keeping the current state under a name. A snapshot of
   * the API: restoreSnapshot into a new branch, then finalize_restore, which moves production's
   * computes to it (same URIs) and renames the old branch to the preserved name.
   */
  private async restoreInPlaceFromSnapshot(name: string, options: RestoreInPlaceOptions): Promise<RestoreResult> {
    const found = await this.findSnapshotOrFail(name);
    const { all } = found;
    const source = await this.sourceBranch(all);
    const taken = this.snapshotSource(found, all);
    if (taken && taken.id !== source.id) {
      throw badInput('snapshot_of_other_branch', `snapshot ${name} was taken of branch ${taken.name}, not of ${source.name}: pass --source ${taken.name} to restore that branch`);
    }
    const preservedName = options.preserveName ?? `${source.name}-before-pitr-${formatCompactUtc(new Date())}`;
    if (all.some((b) => b.branch.name === preservedName)) throw badInput('name_taken', `a branch named ${preservedName} already exists`);
    const plan = { branch: { id: source.id, name: source.name }, target: `snapshot:${name}`, preservedAs: preservedName };
    if (options.dryRun) return { ...plan, applied: false, preservedBranchId: null };
    const wait = { timeoutMs: this.settings.operationTimeoutMs, ...(options.onProgress && { onProgress: options.onProgress }) };
    if (found.branch) {
      const res = await this.api.call(`restore branch ${source.name}`, (c) =>
        c.restoreProjectBranch(this.projectId, source.id, { source_branch_id: found.branch!.branch.id, preserve_under_name: preservedName }),
      );
      await waitForOperations(this.api, this.projectId, res.operations, wait);
      const preserved = (await this.branches()).find((b) => b.branch.name === preservedName);
      return { ...plan, applied: true, preservedBranchId: preserved?.branch.id ?? null };
    }
    const restoredName = this.freeName(`${PITR_PREFIX}${slug(source.name)}-restore-${formatCompactUtc(new Date())}`, all);
    options.onProgress?.({ phase: 'neon', message: `restoring Neon snapshot ${found.api!.name} into ${restoredName}` });
    const restored = await this.api.call(`restore snapshot ${found.api!.name}`, (c) =>
      c.restoreSnapshot({ projectId: this.projectId, snapshotId: found.api!.id }, { name: restoredName, target_branch_id: source.id, finalize_restore: false }),
    );
    await waitForOperations(this.api, this.projectId, restored.operations, wait);
    options.onProgress?.({ phase: 'neon', message: `moving ${source.name}'s computes to the restored branch; the current state stays as ${preservedName}` });
    const finalized = await this.api.call(`finalize the restore of ${source.name}`, (c) =>
      c.finalizeRestoreBranch(this.projectId, restored.branch.id, { name: preservedName }),
    );
    await waitForOperations(this.api, this.projectId, finalized.operations ?? [], wait);
    return { ...plan, branch: { id: restored.branch.id, name: source.name }, applied: true, preservedBranchId: source.id };
  }
}

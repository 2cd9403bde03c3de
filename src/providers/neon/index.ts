import type { Branch, ConnectionDetails, Database, Endpoint, Operation, Role } from '@neondatabase/api-client';
import { EndpointType } from '@neondatabase/api-client';
import { badInput, PitrError, refused } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import { withClient } from '../../db/connect.js';
import { describePointInTime, formatCompactUtc, formatTarget, formatUtc, type PointInTime } from '../../time/index.js';
import type { CreateBranchOptions, PointInTimeConnection, Provider, RecoveryBranch, RestoreInPlaceOptions, RestoreResult, SourceInfo } from '../types.js';
import { NeonApi, type NeonApiOptions } from './api.js';
import { waitForOperations } from './operations.js';

export interface NeonSettings extends Omit<NeonApiOptions, 'logger'> {
  projectId: string;
  /** Production branch, by name or id; default: the project's default branch. */
  source?: string;
  database?: string;
  role?: string;
  /** How long to wait for Neon's operations (default 5 min). */
  operationTimeoutMs: number;
  logger?: Logger;
}

/** Annotation keys that mark a branch as pitr's (with the name prefix, how pitr knows its own). */
const MARK = 'pitr';
export const PITR_PREFIX = 'pitr-';

interface Annotated {
  branch: Branch;
  annotation: Record<string, string> | undefined;
}

/**
 * Neon: production is a branch of a project; a recovery branch is a Neon branch created from it
 * at a timestamp or LSN with a read-write endpoint and an expiry. Everything goes through the
 * API client behind one retry policy; the Neon API itself keeps the state.
 */
export class NeonProvider implements Provider {
  readonly kind = 'neon' as const;
  readonly api: NeonApi;
  private readonly log: Logger;

  constructor(private readonly settings: NeonSettings) {
    if (!settings.projectId) throw badInput('missing_project', 'no Neon project: pass --project-id or set NEON_PROJECT_ID');
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

  async createRecoveryBranch(at: PointInTime, options: CreateBranchOptions): Promise<RecoveryBranch> {
    const started = options.startedAt ?? Date.now();
    // Every round trip before the create is time the user waits: these two go together.
    const [project, all] = await Promise.all([this.project(), this.branches()]);
    // Refused before any write: Neon would reject it anyway, with a less helpful message.
    this.checkWindow(at, project.history_retention_seconds);
    const source = await this.sourceBranch(all);
    // Needed only for the connection URI at the end: looked up while Neon works.
    const names = this.databaseAndRole(source.id);
    names.catch(() => undefined);
    const taken = new Set(all.map((b) => b.branch.name));
    let name = options.name ?? `${PITR_PREFIX}${source.name.replace(/[^A-Za-z0-9-]+/g, '-')}-${at.kind === 'lsn' ? `lsn-${at.lsn.replace('/', '-')}` : formatCompactUtc(at.at)}`;
    if (!options.name) for (let n = 2; taken.has(name); n++) name = `${name.replace(/-\d+$/, '')}-${n}`;
    const expiresAt = new Date(Date.now() + options.ttlMs).toISOString();
    const target = at.kind === 'lsn' ? `lsn:${at.lsn}` : formatTarget(at);
    options.onProgress?.({ phase: 'neon', message: `creating branch ${name} from ${source.name} at ${describePointInTime(at)}` });
    const created = await this.api.call(
      `create branch ${name}`,
      (c) =>
        c.createProjectBranch(this.projectId, {
          branch: {
            parent_id: source.id,
            name,
            ...(at.kind === 'lsn' ? { parent_lsn: at.lsn } : { parent_timestamp: formatTarget(at) }),
            expires_at: expiresAt,
          },
          endpoints: [{ type: EndpointType.ReadWrite }],
          annotation_value: { [MARK]: 'recovery', 'pitr-source': source.id, 'pitr-target': target },
        }),
      {
        // A create that failed with a 5xx may still have happened: look for it by name before trying again.
        retryServerErrors: true,
        beforeRetry: async () => {
          const existing = (await this.branches()).find((b) => b.branch.name === name);
          return existing
            ? { branch: existing.branch, operations: [] as Operation[], endpoints: [] as Endpoint[], roles: [] as Role[], databases: [] as Database[], connection_uris: [] as ConnectionDetails[] }
            : undefined;
        },
      },
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
      await this.waitQueryable(uri, started + this.settings.operationTimeoutMs);
    } catch (err) {
      throw await this.discardHalfCreated(branch, expiresAt, err);
    }
    return {
      id: branch.id,
      name: branch.name,
      provider: 'neon',
      source: source.name,
      target,
      connectionUrl: uri,
      createdAt: branch.created_at,
      expiresAt,
      secondsToQueryable: (Date.now() - started) / 1000,
      state: 'running',
      details: { projectId: this.projectId, sourceBranchId: source.id, ...(await names) },
    };
  }

  /** A branch that never became usable is deleted (best effort), so nothing half-made is left behind. */
  private async discardHalfCreated(branch: Branch, expiresAt: string, err: unknown): Promise<unknown> {
    if (!(err instanceof PitrError)) return err;
    const outcome = await this.api
      .call(`delete branch ${branch.name}`, (c) => c.deleteProjectBranch({ projectId: this.projectId, branchId: branch.id }))
      .then(
        () => `the half-created branch ${branch.name} was deleted`,
        (e: unknown) => `the half-created branch ${branch.name} could not be deleted (${(e as Error).message}); it expires at ${expiresAt}`,
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

  /** pitr's branches: marked by pitr's annotation when created. Other branches are never touched. */
  private ours(all: Annotated[]): Annotated[] {
    return all.filter((b) => b.annotation?.[MARK] !== undefined && !b.branch.default);
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
  async restoreInPlace(at: PointInTime, options: RestoreInPlaceOptions): Promise<RestoreResult> {
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
  async openPointInTime(at: PointInTime): Promise<PointInTimeConnection> {
    const project = await this.project();
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
}

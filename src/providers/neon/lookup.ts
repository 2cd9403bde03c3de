import type { Branch, ConnectionDetails, Database, Endpoint, Operation, Role, Snapshot as ApiSnapshot } from '@neondatabase/api-client';
import { badInput, PitrError, refused } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import { withClient } from '../../db/connect.js';
import { describePointInTime, formatUtc, type PointInTime } from '../../time/index.js';
import type { RecoveryBranch, Snapshot, SourceInfo } from '../types.js';
import { uniqueName } from '../naming.js';
import { NeonApi, NeonApiError, type NeonApiOptions } from './api.js';

/**
 * What every part of the Neon provider looks up: the project, its branches (with pitr's
 * annotations), production, databases, roles and connection URIs; which branches are pitr's;
 * and the half-made-object clean-up. Must not import the other parts of the provider.
 */

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
export const MARK = 'pitr';
export const KIND_SNAPSHOT = 'snapshot';
export const PITR_PREFIX = 'pitr-';
/** Names of pitr's snapshot branches and Neon snapshots: the prefix, then the user's name. */
export const SNAPSHOT_PREFIX = 'pitr-snap-';

/** One of pitr's snapshots and what keeps it: a branch, or a snapshot of Neon's API. */
export interface FoundSnapshot {
  snapshot: Snapshot;
  branch?: Annotated;
  api?: ApiSnapshot;
}

/** A 4xx that says "over the plan's snapshot limit", not "no such feature". */
export function isLimitError(err: unknown): boolean {
  return err instanceof NeonApiError && err.status !== undefined && err.status >= 400 && err.status < 500 && err.status !== 423 && err.status !== 429 && /limit|quota|maximum|exceed/i.test(err.neonMessage);
}

/** The account or project has no snapshot API: 403/404/405/501, or a 4xx saying the feature is off. */
export function isSnapshotApiMissing(err: unknown): err is NeonApiError {
  if (!(err instanceof NeonApiError) || err.status === undefined) return false;
  if (isLimitError(err)) return false;
  if ([403, 404, 405, 501].includes(err.status)) return true;
  return err.status >= 400 && err.status < 500 && /not (enabled|available|supported|allowed)|feature|plan/i.test(err.neonMessage);
}

export const slug = (name: string) => name.replace(/[^A-Za-z0-9-]+/g, '-');

export interface Annotated {
  branch: Branch;
  annotation: Record<string, string> | undefined;
}


/** A point Neon can branch or read at: a time or an LSN. */
export type NeonPoint = Extract<PointInTime, { kind: 'time' } | { kind: 'lsn' }>;

/**
 * Neon's history is addressed by time or LSN only; a transaction id has no API. Refused before
 * any request, with the exact alternative: `pitr when` prints the commit LSN of the transaction.
 */
export function refuseXid<T extends PointInTime | undefined>(at: T): Exclude<T, { kind: 'xid' }> {
  if (at?.kind === 'xid') {
    throw badInput('xid_not_supported', `Neon cannot branch at a transaction id (${at.input}); give the LSN of its commit or a time instead, e.g. --at lsn:16/B374D848 (pitr when finds the time)`);
  }
  return at as Exclude<T, { kind: 'xid' }>;
}

/** The project's default branch and protected branches are never deleted, whatever they hold. */
export function refuseUndeletable(branch: Branch): void {
  if (branch.default) throw refused('refuse_default_branch', `${branch.name} is the project's default branch: pitr never deletes it`);
  if (branch.protected) throw refused('refuse_protected_branch', `${branch.name} is a protected branch: pitr never deletes it`);
}

export class NeonLookup {
  readonly api: NeonApi;
  readonly log: Logger;
  /** Whether the snapshot API answered (true), was found missing (false), or was not asked yet. */
  snapshotApi: boolean | undefined;

  constructor(readonly settings: NeonSettings) {
    if (!settings.projectId) throw badInput('missing_project', 'no Neon project: pass --project-id or set NEON_PROJECT_ID');
    if (settings.snapshots !== undefined && !['auto', 'api', 'branch'].includes(settings.snapshots)) {
      throw badInput('bad_snapshot_method', `unknown snapshot method "${String(settings.snapshots)}": use auto, api or branch`);
    }
    this.log = settings.logger ?? silentLogger;
    this.api = new NeonApi({ ...settings, logger: this.log });
  }

  get projectId(): string {
    return this.settings.projectId;
  }

  async project() {
    return (await this.api.call(`get project ${this.projectId}`, (c) => c.getProject(this.projectId))).project;
  }

  async branches(): Promise<Annotated[]> {
    const res = await this.api.call(`list branches of ${this.projectId}`, (c) => c.listProjectBranches({ projectId: this.projectId }));
    return res.branches.map((branch) => ({ branch, annotation: res.annotations?.[branch.id]?.value }));
  }

  /** The production branch: --source by id or name, else the project's default branch. */
  async sourceBranch(all?: Annotated[]): Promise<Branch> {
    const list = all ?? (await this.branches());
    const wanted = this.settings.source;
    const found = wanted ? list.find((b) => b.branch.id === wanted) ?? list.find((b) => b.branch.name === wanted) : list.find((b) => b.branch.default);
    if (!found) {
      const names = list.map((b) => b.branch.name).join(', ');
      throw badInput('unknown_source', wanted ? `no branch "${wanted}" in project ${this.projectId} (branches: ${names})` : `project ${this.projectId} has no default branch`);
    }
    return found.branch;
  }

  async databaseAndRole(branchId: string): Promise<{ database: string; role: string }> {
    const { databases } = await this.api.call('list databases', (c) => c.listProjectBranchDatabases(this.projectId, branchId));
    let db: Database | undefined;
    if (this.settings.database) {
      db = databases.find((d) => d.name === this.settings.database);
      if (!db) throw badInput('unknown_database', `no database "${this.settings.database}" on the branch (databases: ${databases.map((d) => d.name).join(', ') || 'none'})`);
    } else if (databases.length === 1) db = databases[0];
    else throw badInput('choose_database', `the branch has ${databases.length} databases; choose one with --database (${databases.map((d) => d.name).join(', ')})`);
    return { database: db!.name, role: this.settings.role ?? db!.owner_name };
  }

  async connectionUri(branchId: string, database: string, role: string): Promise<string> {
    const { uri } = await this.api.call(`connection URI of ${branchId}`, (c) =>
      c.getConnectionUri({ projectId: this.projectId, branch_id: branchId, database_name: database, role_name: role }),
    );
    return uri;
  }

  /** Neon keeps history for history_retention_seconds: the window is [now - that, now]. */
  window(retentionSeconds: number, now = Date.now()) {
    return { oldest: new Date(now - retentionSeconds * 1000), newest: new Date(now) };
  }

  checkWindow(at: PointInTime, retentionSeconds: number): void {
    if (at.kind !== 'time') return;
    const w = this.window(retentionSeconds);
    if (at.at < w.oldest) {
      throw badInput(
        'outside_history',
        `${describePointInTime(at)} is outside the project's history window (${Math.round(retentionSeconds / 3600)} h): recoverable from ${formatUtc(w.oldest)} to now`,
      );
    }
  }

  /** `base`, or `base-2`, `base-3`… when a branch already has that name. */
  freeName(base: string, all: Annotated[]): string {
    return uniqueName(base, all.map((b) => b.branch.name));
  }

  /** For a create retried after a 5xx: the branch, when the first attempt made it after all. */
  async createdMeanwhile(name: string) {
    const existing = (await this.branches()).find((b) => b.branch.name === name);
    return existing
      ? { branch: existing.branch, operations: [] as Operation[], endpoints: [] as Endpoint[], roles: [] as Role[], databases: [] as Database[], connection_uris: [] as ConnectionDetails[] }
      : undefined;
  }

  /** A branch that never became usable is deleted (best effort), so nothing half-made is left behind. */
  async discardHalfCreated(branch: Branch, otherwise: string, err: unknown): Promise<unknown> {
    return this.discardHalfMade(`half-created branch ${branch.name}`, () => this.api.call(`delete branch ${branch.name}`, (c) => c.deleteProjectBranch({ projectId: this.projectId, branchId: branch.id })), otherwise, err);
  }

  /**
   * After a create failed half-way (the object exists, its operations failed): delete the object
   * and say in the error whether that worked. Errors that are not pitr's pass through unchanged.
   */
  async discardHalfMade(what: string, remove: () => Promise<unknown>, otherwise: string, err: unknown): Promise<unknown> {
    if (!(err instanceof PitrError)) return err;
    const outcome = await remove().then(
      () => `the ${what} was deleted`,
      (e: unknown) => `the ${what} could not be deleted (${(e as Error).message}); ${otherwise}`,
    );
    return new PitrError(err.code, `${err.message} (${outcome})`, { exit: err.exitClass, ...(err.detail !== undefined && { detail: err.detail }) });
  }

  async waitQueryable(uri: string, deadline: number): Promise<void> {
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

  toRecoveryBranch({ branch, annotation }: Annotated, source: string): RecoveryBranch {
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
  ours(all: Annotated[]): Annotated[] {
    return all.filter((b) => {
      if (b.branch.default) return false;
      const mark = b.annotation?.[MARK];
      if (mark !== undefined) return mark !== KIND_SNAPSHOT;
      return b.branch.restored_from !== undefined && b.branch.name.startsWith(PITR_PREFIX) && !b.branch.name.startsWith(SNAPSHOT_PREFIX);
    });
  }

  /** pitr's snapshot branches. */
  snapshotBranches(all: Annotated[]): Annotated[] {
    return all.filter((b) => b.annotation?.[MARK] === KIND_SNAPSHOT && !b.branch.default);
  }

  async find(idOrName: string, all?: Annotated[]): Promise<Annotated> {
    const list = all ?? (await this.branches());
    const found = list.find((b) => b.branch.id === idOrName) ?? list.find((b) => b.branch.name === idOrName);
    if (!found) throw badInput('unknown_branch', `no branch "${idOrName}" in project ${this.projectId}`);
    return found;
  }

  get snapshotMethod(): SnapshotMethodSetting {
    return this.settings.snapshots ?? 'auto';
  }
}

export async function describe(n: NeonLookup): Promise<SourceInfo> {
  const project = await n.project();
  const source = await n.sourceBranch();
  const window = n.window(project.history_retention_seconds);
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

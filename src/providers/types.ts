// src/providers: the Provider interface and its two implementations (local WAL archive, Neon API).
// Core: must not import src/cli or the feature folders (diff, recover, export, playbooks, report);
// a provider knows branches and points in time, nothing about rows or diffs.
import type { PointInTime } from '../time/index.js';

export type ProviderKind = 'local' | 'neon';

/** Something the core reports while it works; the CLI decides how to show it. */
export interface ProgressEvent {
  phase: string;
  message: string;
  /** 0..1 when the work has a known size. */
  fraction?: number;
}
export type ProgressSink = (event: ProgressEvent) => void;

export interface RecoverableWindow {
  /** Oldest instant a branch can be created at, when known. */
  oldest: string | null;
  /** Newest instant the history is known to reach (archived WAL), when known. */
  newest: string | null;
  /** True when pitr can extend the window to "now" itself (production reachable, archiving healthy). */
  reachesNow: boolean;
}

export interface SourceInfo {
  provider: ProviderKind;
  /** Production, for people: a redacted URL or a Neon project/branch. */
  source: string;
  pgVersion: string | null;
  window: RecoverableWindow;
  /** Things that make recovery unsafe or impossible; the status command exits 1 when any exist. */
  problems: string[];
  /** Provider-specific facts (archiver statistics, backups, …), already free of secrets. */
  details: Record<string, unknown>;
}

export interface RecoveryBranch {
  id: string;
  name: string;
  provider: ProviderKind;
  source: string;
  /** The requested point: an ISO UTC instant or `lsn:X/Y`. */
  target: string;
  /** Full connection URL, including the password: callers must redact before showing it. */
  connectionUrl: string;
  createdAt: string;
  expiresAt: string | null;
  secondsToQueryable: number | null;
  state: 'running' | 'stopped' | 'creating' | 'unknown';
  /** Provider-specific facts, free of secrets. */
  details?: Record<string, unknown>;
}

export interface CreateBranchOptions {
  ttlMs: number;
  /** When the user's wait began (epoch ms), so time-to-queryable covers all of it. Default: now. */
  startedAt?: number;
  name?: string;
  signal?: AbortSignal;
  onProgress?: ProgressSink;
}

export interface RestoreInPlaceOptions {
  /** Name for the branch that keeps the current state (default `<branch>-before-pitr-<timestamp>`). */
  preserveName?: string;
  dryRun?: boolean;
  onProgress?: ProgressSink;
}

export interface RestoreResult {
  branch: { id: string; name: string };
  target: string;
  preservedAs: string;
  preservedBranchId: string | null;
  applied: boolean;
}

export interface PointInTimeConnection {
  /** Includes the password: redact before showing. */
  connectionUrl: string;
  readOnly: true;
  target: string;
}

/**
 * A named restore point: a state of production pitr keeps so it can be branched from later
 * (`--at snapshot:<name>`), for as long as the snapshot exists.
 */
export interface Snapshot {
  name: string;
  /** Provider id: a Neon branch or snapshot id, or the name for local restore points. */
  id: string;
  provider: ProviderKind;
  /**
   * How it is kept: `restore-point` (local pg_create_restore_point, exact LSN), `bookmark`
   * (local, a past time inside the WAL pitr keeps), `branch` (a Neon branch without compute),
   * `neon-snapshot` (Neon's snapshot API).
   */
  method: 'restore-point' | 'bookmark' | 'branch' | 'neon-snapshot';
  /** The instant it captures (ISO UTC), when known. */
  at: string | null;
  lsn: string | null;
  createdAt: string;
  /** Provider-specific facts, free of secrets. */
  details?: Record<string, unknown>;
}

export interface CreateSnapshotOptions {
  /** A past instant to capture instead of now (must be inside the recoverable window). */
  at?: PointInTime;
  onProgress?: ProgressSink;
}

export interface Provider {
  readonly kind: ProviderKind;
  describe(): Promise<SourceInfo>;
  /** Creates a branch of production as it was at `at` and waits until it answers queries. */
  createRecoveryBranch(at: PointInTime, options: CreateBranchOptions): Promise<RecoveryBranch>;
  listRecoveryBranches(): Promise<RecoveryBranch[]>;
  /** Accepts an id or a name. */
  getRecoveryBranch(idOrName: string): Promise<RecoveryBranch>;
  deleteRecoveryBranch(idOrName: string): Promise<RecoveryBranch>;
  /** Production's connection URI, password included. */
  productionUrl(): Promise<string>;
  /** Full connection URI of a branch, password included (for psql). */
  connectionString(idOrName: string): Promise<string>;
  /** Local instances: subscriptions and pg_cron jobs copied from production that never run on the branch. */
  sealedOff?(idOrName: string): Promise<{ subscriptions: string[]; cronJobs: string[] }>;
  /** Whole-branch rollback in place, keeping the current state under a name. */
  restoreInPlace?(at: PointInTime, options: RestoreInPlaceOptions): Promise<RestoreResult>;
  /** Read the past without creating a branch (Neon Time Travel). */
  openPointInTime?(at: PointInTime): Promise<PointInTimeConnection>;
  /** Takes a named restore point of production (now, or a past instant); never expires. */
  createSnapshot(name: string, options: CreateSnapshotOptions): Promise<Snapshot>;
  /** pitr's snapshots, oldest first. */
  listSnapshots(): Promise<Snapshot[]>;
  /** One snapshot by name: a one-line usage error naming the known ones when it does not exist. */
  getSnapshot(name: string): Promise<Snapshot>;
  deleteSnapshot(name: string): Promise<Snapshot>;
}

import type { PointInTime } from '../../time/index.js';
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
import type { NeonApi } from './api.js';
import { connectionString, createRecoveryBranch, deleteRecoveryBranch, getRecoveryBranch, listRecoveryBranches, productionUrl } from './branches.js';
import { describe, NeonLookup, type NeonSettings } from './lookup.js';
import { restoreInPlace } from './restore.js';
import { createSnapshot, deleteSnapshot, getSnapshot, listSnapshots } from './snapshots.js';
import { openPointInTime } from './time-travel.js';

/**
 * The Neon provider: production is a branch of a project; a recovery branch is a Neon branch
 * created from it at a timestamp or LSN with a read-write endpoint and an expiry. This facade
 * only routes: lookups in lookup.ts, branches, in-place restore, Time Travel and snapshots each
 * in their own file. Everything goes through the API client behind one retry policy.
 */
export type { NeonSettings, SnapshotMethodSetting } from './lookup.js';
export { PITR_PREFIX, SNAPSHOT_PREFIX } from './lookup.js';

export class NeonProvider implements Provider {
  readonly kind = 'neon' as const;
  private readonly n: NeonLookup;

  constructor(settings: NeonSettings) {
    this.n = new NeonLookup(settings);
  }

  get api(): NeonApi {
    return this.n.api;
  }

  describe(): Promise<SourceInfo> {
    return describe(this.n);
  }

  createRecoveryBranch(at: PointInTime, options: CreateBranchOptions): Promise<RecoveryBranch> {
    return createRecoveryBranch(this.n, at, options);
  }

  listRecoveryBranches(): Promise<RecoveryBranch[]> {
    return listRecoveryBranches(this.n);
  }

  getRecoveryBranch(idOrName: string): Promise<RecoveryBranch> {
    return getRecoveryBranch(this.n, idOrName);
  }

  deleteRecoveryBranch(idOrName: string): Promise<RecoveryBranch> {
    return deleteRecoveryBranch(this.n, idOrName);
  }

  productionUrl(): Promise<string> {
    return productionUrl(this.n);
  }

  /** The full URI of any branch of the project (as neonctl's `cs`), for psql. */
  connectionString(idOrName: string): Promise<string> {
    return connectionString(this.n, idOrName);
  }

  restoreInPlace(at: PointInTime, options: RestoreInPlaceOptions): Promise<RestoreResult> {
    return restoreInPlace(this.n, at, options);
  }

  openPointInTime(requested: PointInTime): Promise<PointInTimeConnection> {
    return openPointInTime(this.n, requested);
  }

  createSnapshot(name: string, options: CreateSnapshotOptions): Promise<Snapshot> {
    return createSnapshot(this.n, name, options);
  }

  listSnapshots(): Promise<Snapshot[]> {
    return listSnapshots(this.n);
  }

  getSnapshot(name: string): Promise<Snapshot> {
    return getSnapshot(this.n, name);
  }

  deleteSnapshot(name: string): Promise<Snapshot> {
    return deleteSnapshot(this.n, name);
  }
}

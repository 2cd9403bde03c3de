import type { Provider, Snapshot } from '../providers/types.js';
import { planRetention, type RetentionPolicy } from './gfs.js';

export interface SnapshotVerdict {
  snapshot: Snapshot;
  keep: boolean;
  reasons: string[];
}

export interface SnapshotPruneResult {
  verdicts: SnapshotVerdict[];
  deleted: string[];
  applied: boolean;
}

/** When a snapshot captures production: its instant, else when it was taken. */
export const snapshotTime = (s: Snapshot): Date => new Date(s.at ?? s.createdAt);

/**
 * Applies a grandfather-father-son policy to pitr's snapshots. Snapshots are deleted oldest
 * first, one by one, so an interruption never removes a newer one before an older one.
 */
export async function pruneSnapshots(
  provider: Provider,
  policy: RetentionPolicy,
  options: { dryRun: boolean; timeZone?: string },
): Promise<SnapshotPruneResult> {
  const snapshots = await provider.listSnapshots();
  const plan = planRetention(snapshots, snapshotTime, policy, options.timeZone ? { timeZone: options.timeZone } : {});
  const verdicts = plan.map((p) => ({ snapshot: p.item, keep: p.keep, reasons: p.reasons }));
  const deleted: string[] = [];
  if (!options.dryRun) {
    for (const v of [...verdicts].reverse()) {
      if (v.keep) continue;
      await provider.deleteSnapshot(v.snapshot.name);
      deleted.push(v.snapshot.name);
    }
  }
  return { verdicts, deleted, applied: !options.dryRun };
}

import { PitrError } from '../errors.js';
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
  /** Snapshots the policy would delete but that are still in use (Neon: branches made from them). */
  skipped: { name: string; reason: string }[];
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
  const skipped: SnapshotPruneResult['skipped'] = [];
  if (!options.dryRun) {
    for (const v of [...verdicts].reverse()) {
      if (v.keep) continue;
      try {
        await provider.deleteSnapshot(v.snapshot.name);
        deleted.push(v.snapshot.name);
      } catch (err) {
        // A snapshot something still depends on stays, and says why; the rest are pruned.
        if (!(err instanceof PitrError && err.code === 'snapshot_in_use')) throw err;
        skipped.push({ name: v.snapshot.name, reason: err.message });
      }
    }
  }
  return { verdicts, deleted, skipped, applied: !options.dryRun };
}

/**
 * `pitr export prune --to …`: the grandfather-father-son policy of `snapshot prune` applied to
 * the exports at one location (by when each was made). Never deleted: the newest export, and
 * without `--force` any export whose manifest does not authenticate (it may be another team's,
 * made with another key, or evidence of tampering).
 */
import { planRetention, type RetentionPolicy } from '../retention/gfs.js';
import { DUMP_SUFFIX, MANIFEST_SUFFIX } from './manifest.js';
import { listIn, type ListedExport } from './list.js';
import { openExportStore, type ExportStoreOptions } from './store/index.js';

export interface ExportVerdict {
  name: string;
  object: string;
  createdAt: string;
  authenticated: boolean;
  keep: boolean;
  reasons: string[];
}

export interface ExportPruneResult {
  location: string;
  verdicts: ExportVerdict[];
  deleted: string[];
  applied: boolean;
}

export interface ExportPruneOptions {
  location: string;
  masterKey: Buffer;
  policy: RetentionPolicy;
  dryRun: boolean;
  /** Also delete exports whose manifest does not authenticate (when the policy does not keep them). */
  force: boolean;
  timeZone?: string;
  storeOptions?: ExportStoreOptions;
}

export async function pruneExports(options: ExportPruneOptions): Promise<ExportPruneResult> {
  const store = openExportStore(options.location, options.storeOptions ?? {});
  try {
    const listed = await listIn(store, options.masterKey);
    const verdicts = planExportPrune(listed, options.policy, { force: options.force, ...(options.timeZone && { timeZone: options.timeZone }) });
    const deleted: string[] = [];
    if (!options.dryRun) {
      // Oldest first: an interruption never removes a newer export before an older one.
      for (const v of [...verdicts].reverse()) {
        if (v.keep) continue;
        // The manifest first: an interrupted prune leaves an export that says it is incomplete.
        await store.remove(v.name + MANIFEST_SUFFIX);
        await store.remove(v.name + DUMP_SUFFIX);
        deleted.push(v.name);
      }
    }
    return { location: store.location, verdicts, deleted, applied: !options.dryRun };
  } finally {
    store.close();
  }
}

/** Pure: which exports the policy keeps and why, newest first. */
export function planExportPrune(listed: readonly ListedExport[], policy: RetentionPolicy, options: { force: boolean; timeZone?: string }): ExportVerdict[] {
  const time = (e: ListedExport) => new Date(e.createdAt);
  const plan = planRetention(listed, time, policy, options.timeZone ? { timeZone: options.timeZone } : {});
  const verdicts = plan.map((p) => {
    const e = p.item;
    const authenticated = e.authenticated === true;
    const v: ExportVerdict = { name: e.name, object: e.object, createdAt: e.createdAt, authenticated, keep: p.keep, reasons: [...p.reasons] };
    if (!p.keep && !authenticated && !options.force) {
      v.keep = true;
      v.reasons = [`does not authenticate (${e.problem ?? 'no key'}): kept unless --force`];
    }
    return v;
  });
  // The newest export that authenticates is never pruned, whatever is newer and broken.
  const newestGood = verdicts.find((v) => v.authenticated);
  if (newestGood && !newestGood.keep) {
    newestGood.keep = true;
    newestGood.reasons = ['newest that authenticates'];
  } else if (newestGood && !newestGood.reasons.includes('newest') && !newestGood.reasons.includes('newest that authenticates')) {
    newestGood.reasons.unshift('newest that authenticates');
  }
  return verdicts;
}

/**
 * Playbook steps that use encrypted exports: `create-branch` with `at: export:<object>` (the
 * export restored into a local branch) and `restore-export` (the disaster restore: the newest
 * export that authenticates, or a named one, into an empty database, counts verified).
 */
import { exportReference, type ExportBranches } from '../export/as-branch.js';
import { listExports } from '../export/list.js';
import { restoreExport } from '../export/restore.js';
import { exportObjectOf } from '../export/open.js';
import type { ExportStoreOptions } from '../export/store/index.js';
import { badInput, PitrError, refused } from '../errors.js';
import type { ProgressSink } from '../providers/types.js';
import { redactUrl } from '../redact.js';
import { parseDuration } from '../time/index.js';

/** What the export steps need; the CLI provides it (the key is read only when a step needs it). */
export interface PlaybookExports {
  branches: ExportBranches;
  masterKey: () => Buffer;
  storeOptions?: ExportStoreOptions;
}

export interface RestoreExportWith {
  from: string;
  export?: string | undefined;
  into: string;
  jobs?: number | undefined;
}

function need(exports: PlaybookExports | undefined): PlaybookExports {
  if (!exports) throw badInput('exports_unavailable', 'this playbook step needs encrypted exports, which this run was not given');
  return exports;
}

/** `create-branch` for `at: export:<object>`; undefined when `at` is a time or snapshot. */
export async function createExportBranchStep(
  exports: PlaybookExports | undefined,
  with_: { at: string; ttl?: string | undefined; name?: string | undefined },
  onProgress: ProgressSink | undefined,
): Promise<Record<string, unknown> | undefined> {
  const object = exportReference(with_.at);
  if (object === undefined) return undefined;
  const b = await need(exports).branches.create(object, {
    ttlMs: parseDuration(with_.ttl ?? '24h'),
    ...(with_.name && { name: with_.name }),
    ...(onProgress && { onProgress }),
  });
  return { id: b.id, name: b.name, target: b.target, export: b.details?.exportName ?? null, secondsToQueryable: b.secondsToQueryable };
}

/** An export is a copy, not a history: rolling production back to it in place would discard every write since. */
export function refuseInPlaceFromExport(at: string): void {
  if (exportReference(at) === undefined) return;
  throw refused(
    'restore_from_export',
    'an export cannot be restored in place (that would discard every write made since it): use the branch made from it to copy rows back (recover), or restore it into a new database (playbook disaster-restore)',
  );
}

/** `restore-export`: the newest export at `from` that authenticates (or `export`), restored into `into`. */
export async function restoreExportStep(exports: PlaybookExports | undefined, with_: RestoreExportWith, options: { dryRun: boolean; onProgress?: ProgressSink; signal?: AbortSignal }): Promise<Record<string, unknown>> {
  const ex = need(exports);
  const key = ex.masterKey();
  const listed = await listExports(with_.from, key, ex.storeOptions ?? {});
  const wanted = with_.export?.trim();
  const usable = listed.exports.filter((e) => e.authenticated === true && e.problem === null);
  const chosen = wanted ? listed.exports.find((e) => e.name === wanted) : usable[0];
  if (!chosen) {
    const why = wanted ? `no export ${wanted} in ${listed.location}` : `no export in ${listed.location} authenticates with this key (${listed.exports.length} found)`;
    throw new PitrError('no_usable_export', why);
  }
  if (chosen.authenticated !== true || chosen.problem) throw new PitrError('export_unusable', `export ${chosen.name} cannot be restored: ${chosen.problem ?? 'its manifest does not authenticate'}`);
  const skippedNewer = wanted ? [] : listed.exports.filter((e) => e.createdAt > chosen.createdAt).map((e) => `${e.name}: ${e.problem ?? 'does not authenticate'}`);
  const summary = { export: chosen.name, object: exportObjectOf({ location: listed.location, name: chosen.name }), state: chosen.target ?? chosen.createdAt, skippedNewer, into: redactUrl(with_.into) };
  if (options.dryRun) return { ...summary, dryRun: true };
  const r = await restoreExport({
    object: summary.object,
    intoUrl: with_.into,
    masterKey: key,
    ...(ex.storeOptions && { storeOptions: ex.storeOptions }),
    ...(with_.jobs !== undefined && { jobs: with_.jobs }),
    ...(options.onProgress && { onProgress: options.onProgress }),
    ...(options.signal && { signal: options.signal }),
  });
  return { ...summary, tables: r.tables.length, rows: r.rows, countsVerified: true, restoreSeconds: r.seconds.restore, seconds: r.seconds.total };
}

import { badInput } from '../errors.js';
import { resolveBranchTarget } from '../providers/branch-target.js';
import type { Provider } from '../providers/types.js';
import { redactSecrets, redactUrl } from '../redact.js';
import type { PointInTime } from '../time/index.js';
import { runExport, type ExportOptions, type ExportResult } from './dump.js';

export interface ProviderExportOptions extends Omit<ExportOptions, 'sourceUrl' | 'sourceLabel' | 'target' | 'resolvedTarget'> {
  provider: Provider;
  /** A pitr branch id or name, or any postgres:// URL. */
  branch?: string;
  /** Export production as it was then, through a temporary recovery branch (deleted afterwards). */
  at?: PointInTime;
  /** TTL of the temporary branch, should pitr die before deleting it (default 6 h). */
  branchTtlMs?: number;
}


// Choosing the source through a provider

/**
 * Exports production (default), a recovery branch or URL (`branch`), or production at a past
 * point (`at`: a temporary recovery branch, always deleted afterwards, also on failure).
 */
export async function exportFromProvider(options: ProviderExportOptions): Promise<ExportResult> {
  const { provider, branch, at, branchTtlMs, ...rest } = options;
  if (branch !== undefined && at !== undefined) throw badInput('branch_and_at', 'give either --branch or --at, not both');
  if (at !== undefined) {
    const created = await provider.createRecoveryBranch(at, {
      ttlMs: branchTtlMs ?? 6 * 3600_000,
      ...(options.signal && { signal: options.signal }),
      ...(options.onProgress && { onProgress: options.onProgress }),
    });
    let result: ExportResult | undefined;
    try {
      const url = await provider.connectionString(created.id);
      const target = at.kind === 'snapshot' ? `snapshot:${at.name}` : created.target;
      result = await runExport({
        ...rest,
        sourceUrl: url,
        sourceLabel: `production at ${target} (temporary recovery branch ${created.name})`,
        target,
        resolvedTarget: at.kind === 'snapshot' ? created.target : null,
      });
    } finally {
      options.onProgress?.({ phase: 'cleanup', message: `deleting the temporary recovery branch ${created.name}` });
      try {
        await provider.deleteRecoveryBranch(created.id);
      } catch (err) {
        const why = redactSecrets(err instanceof Error ? err.message : String(err));
        // Only worth a warning when the export itself worked; a failure already says enough.
        result?.warnings.push(`could not delete the temporary recovery branch ${created.name} (${why}): delete it with pitr branches delete ${created.name}`);
      }
    }
    return result;
  }
  if (branch !== undefined) {
    // Unlike a diff, an export without --branch is of production, never of the newest branch.
    const { url, branch: b } = await resolveBranchTarget(provider, branch, () => badInput('no_branch', 'no branch given'));
    if (!b) return runExport({ ...rest, sourceUrl: url, sourceLabel: redactUrl(url), target: null });
    return runExport({ ...rest, sourceUrl: url, sourceLabel: `recovery branch ${b.name} (production at ${b.target})`, target: b.target });
  }
  const url = await provider.productionUrl();
  return runExport({ ...rest, sourceUrl: url, sourceLabel: `production (${redactUrl(url)})`, target: null });
}

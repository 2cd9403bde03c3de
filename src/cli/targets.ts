import { badInput } from '../errors.js';
import type { Provider } from '../providers/types.js';
import type { CommandContext } from './context.js';
import { describeBranch, resolveBranchTarget } from '../providers/branch-target.js';
import { branchProvider, exportBranchFor } from './export-branches.js';

export interface DiffTargets {
  branchUrl: string;
  productionUrl: string;
  /** For people: which branch, or which point in time. */
  branchLabel: string;
  /** The provider's branch id when the target is one of its branches. */
  branchId?: string;
}

/**
 * What to compare production with: `--at <time>` reads the past without a branch (Neon Time
 * Travel); a postgres:// URL is any database (a branch made by hand, a restored dump); an id or
 * name is one of the provider's branches; nothing means the newest branch pitr made.
 */
export async function resolveDiffTargets(ctx: CommandContext, branch: string | undefined, at: string | undefined): Promise<DiffTargets> {
  const provider: Provider = await ctx.provider();
  const productionUrl = await provider.productionUrl();
  if (at?.startsWith('export:')) {
    // --at export:<object> reads the past from an export: the same as --branch export:<object>.
    if (branch !== undefined) throw badInput('branch_and_at', 'give either a branch or --at, not both');
    [branch, at] = [at, undefined];
  }
  if (at !== undefined) {
    if (branch !== undefined) throw badInput('branch_and_at', 'give either a branch or --at, not both');
    if (!provider.openPointInTime) {
      throw badInput('no_time_travel', `reading the past without a branch needs the neon provider; with ${provider.kind}, create one: pitr --at ${at}`);
    }
    const when = ctx.readTime(at, '(Time Travel, read-only, no branch created)');
    const pit = await provider.openPointInTime(when);
    return { branchUrl: pit.connectionUrl, productionUrl, branchLabel: `production at ${pit.target}` };
  }
  // export:<object>: an encrypted export restored into a local branch (reused while it runs).
  const fromExport = await exportBranchFor(ctx, branch ?? '');
  if (fromExport) return { branchUrl: fromExport.connectionUrl, productionUrl, branchLabel: describeBranch(fromExport) };
  // The provider with the export branches merged in: an id or name may be either.
  const target = await resolveBranchTarget(await branchProvider(ctx), branch, () =>
    badInput('no_branch', 'no recovery branch to compare with: create one with pitr --at <time>, or pass --branch <id|name|postgres://…>'),
  );
  // Export branches are scratch restores, not sealed recovery instances: no branch id to check.
  const branchId = target.branch && target.branch.details?.purpose !== 'export' ? target.branch.id : undefined;
  return { branchUrl: target.url, productionUrl, branchLabel: target.label, ...(branchId !== undefined && { branchId }) };
}

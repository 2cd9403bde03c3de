import { ExportBranches, exportReference, withExportBranches } from '../export/as-branch.js';
import type { Provider, RecoveryBranch } from '../providers/types.js';
import { parseDuration } from '../time/index.js';
import { masterKey, storeOptions } from './commands/export.js';
import type { CommandContext } from './context.js';

/** The export branches of this work directory (the key is read only when one is created). */
export function exportBranches(ctx: CommandContext): ExportBranches {
  return new ExportBranches({ workDir: ctx.config.workDir, masterKey: () => masterKey(ctx, undefined), storeOptions: storeOptions(ctx) });
}

/** The provider with the `export:` branches merged in: what `branches`, `connection-string` and the diff targets use. */
export async function branchProvider(ctx: CommandContext): Promise<Provider> {
  return withExportBranches(await ctx.provider(), exportBranches(ctx));
}

/**
 * The branch for `export:<object>`: a running branch of that export if there is one, else a new
 * one (restored now, expiring after --ttl or the configured TTL).
 */
export async function exportBranchFor(
  ctx: CommandContext,
  text: string,
  options: { name?: string; ttl?: string; reuse?: boolean } = {},
): Promise<RecoveryBranch | undefined> {
  const object = exportReference(text);
  if (object === undefined) return undefined;
  const branches = exportBranches(ctx);
  const create = {
    ttlMs: parseDuration(options.ttl ?? ctx.config.ttl),
    startedAt: performance.timeOrigin,
    signal: ctx.signal,
    onProgress: (e: Parameters<NonNullable<Parameters<ExportBranches['create']>[1]['onProgress']>>[0]) => ctx.output.progress(e),
    ...(options.name !== undefined && { name: options.name }),
  };
  return options.reuse === false ? branches.create(object, create) : branches.findOrCreate(object, create);
}

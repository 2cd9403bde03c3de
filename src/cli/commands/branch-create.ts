import { badInput } from '../../errors.js';
import { redactUrl } from '../../redact.js';
import type { RecoveryBranch } from '../../providers/types.js';
import { parseDuration } from '../../time/index.js';
import type { CommandContext } from '../context.js';
import { renderFields } from '../output.js';
import type { CommandRunner } from '../program.js';
import { commandLine } from '../hints.js';
import { addBranchCreateOptions } from '../options.js';

export interface BranchCreateOptions {
  at?: string;
  ttl?: string;
  name?: string;
  showPassword?: boolean;
  /** `branch create --from export:<object>` (the same as --at export:<object>). */
  from?: string;
}


export async function createBranch(ctx: CommandContext, options: BranchCreateOptions): Promise<number> {
  if (options.from !== undefined && options.at !== undefined) throw badInput('from_and_at', 'give either --from export:<object> or --at <time>, not both');
  const source = options.from ?? options.at ?? '';
  // The export machinery (and its libraries) loads only for export:<object>: every recovery
  // branch pays the start-up of what it imports.
  if (source.startsWith('export:')) {
    const [{ exportBranchFor }, { describeExportBranch }] = await Promise.all([import('../export-branches.js'), import('../../export/as-branch.js')]);
    const fromExport = await exportBranchFor(ctx, source, { ...(options.name !== undefined && { name: options.name }), ...(options.ttl !== undefined && { ttl: options.ttl }), reuse: false });
    if (fromExport) return printCreated(ctx, fromExport, options, describeExportBranch(fromExport));
  }
  if (options.from !== undefined) throw badInput('bad_from', '--from takes export:<object> (a point in time goes in --at)');
  const at = ctx.readTime(options.at ?? '');
  const ttlMs = parseDuration(options.ttl ?? ctx.config.ttl);
  const provider = await ctx.provider();
  const branch = await provider.createRecoveryBranch(at, {
    ttlMs,
    // Measured from process start: start-up is part of what the user waits for.
    startedAt: performance.timeOrigin,
    signal: ctx.signal,
    onProgress: (e) => ctx.output.progress(e),
    ...(options.name !== undefined && { name: options.name }),
  });
  return printCreated(ctx, branch, options);
}

function printCreated(ctx: CommandContext, branch: RecoveryBranch, options: BranchCreateOptions, what = `production as it was at ${branch.target}`): number {
  const shown = options.showPassword ? branch : { ...branch, connectionUrl: redactUrl(branch.connectionUrl) };
  ctx.output.result(branchJson(shown), () => renderCreated(shown, what), { reveal: !!options.showPassword });
  return 0;
}

/** The stable --json shape of a branch (the same for every provider). */
export function branchJson(b: RecoveryBranch) {
  return {
    id: b.id,
    name: b.name,
    provider: b.provider,
    source: b.source,
    target: b.target,
    connectionUrl: b.connectionUrl,
    createdAt: b.createdAt,
    expiresAt: b.expiresAt,
    secondsToQueryable: b.secondsToQueryable === null ? null : Math.round(b.secondsToQueryable * 1000) / 1000,
    state: b.state,
    ...(b.details && { details: b.details }),
  };
}

function renderCreated(b: RecoveryBranch, what: string): string {
  const recovered = b.details?.recoveredTo as { mode: string; stoppedBefore: string | null } | undefined;
  return [
    `Recovery branch ready in ${b.secondsToQueryable?.toFixed(1)} s: ${what}`,
    renderFields([
      ['id', b.id],
      ['name', b.name],
      ['target', b.target],
      ['source', b.source],
      ['url', b.connectionUrl],
      ['expires', b.expiresAt],
      ...(recovered?.stoppedBefore ? [['first commit left out', recovered.stoppedBefore] as const] : []),
      ...(recovered?.mode === 'end-of-archive' ? [['replayed', 'the whole archive (no commit after the target)'] as const] : []),
    ]),
    '',
    `Connect:  psql "${b.connectionUrl}"`,
    `Remove:   ${commandLine('pitr', 'branches', 'delete', b.name)}`,
  ].join('\n');
}

export const register: CommandRunner = (program, run) => {
  const branch = program.command('branch').description('recovery branches (see also: branches)');
  addBranchCreateOptions(
    branch
      .command('create')
      .description('create a recovery branch of production at a point in time (same as pitr --at <time>), or from an encrypted export (--from export:<object>)'),
  )
    .option('--from <export:object>', 'restore an encrypted export into a local branch instead: export:<dir>/<name> or export:s3://bucket/prefix/<name>')
    .action(
      run<BranchCreateOptions>((ctx, opts) => {
        if (!opts.at && !opts.from) throw badInput('missing_at', 'pitr branch create needs --at <time> or --from export:<object>');
        return createBranch(ctx, opts);
      }),
    );
};

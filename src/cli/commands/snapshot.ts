import type { Snapshot } from '../../providers/types.js';
import { pruneSnapshots } from '../../retention/snapshots.js';
import { formatCompactUtc } from '../../time/index.js';
import { renderTable } from '../output.js';
import type { CommandRunner } from '../program.js';
import { commandLine } from '../hints.js';
import { addRetentionOptions, describeRetentionPolicy, retentionPolicy, type RetentionOptions } from '../retention.js';

const where = (s: Snapshot) => (s.lsn ? `LSN ${s.lsn}` : '') + (s.at ? `${s.lsn ? ' at ' : ''}${s.at}` : '');

function renderList(list: Snapshot[]): string {
  if (list.length === 0) return 'No snapshots. Take one with: pitr snapshot create --name <name>';
  return renderTable([['NAME', 'CAPTURES', 'METHOD', 'CREATED'], ...list.map((s) => [s.name, where(s) || '-', s.method, s.createdAt])]);
}

export const register: CommandRunner = (program, run) => {
  const snapshot = program.command('snapshot').description('named restore points of production that never expire (use them as --at snapshot:<name>)');
  snapshot
    .command('create')
    .description('take a restore point of production now (or at --at, a past time inside the recoverable window)')
    .option('--name <name>', 'letters, digits, . _ - (default snap-<utc time>)')
    .option('--at <time>', 'a past time inside the recoverable window (default now)')
    .action(
      run<{ name?: string; at?: string }>(async (ctx, opts) => {
        const name = opts.name ?? `snap-${formatCompactUtc(new Date()).toLowerCase()}`;
        const at = opts.at ? ctx.readTime(opts.at) : undefined;
        const provider = await ctx.provider();
        const made = await provider.createSnapshot(name, { ...(at && { at }), onProgress: (e) => ctx.output.progress(e) });
        ctx.output.result({ snapshot: made }, () =>
          [`Snapshot ${made.name} taken (${made.method}): ${where(made)}`, `Branch from it with: ${commandLine('pitr', '--at', `snapshot:${made.name}`)}`].join('\n'),
        );
        return 0;
      }),
    );
  snapshot
    .command('list', { isDefault: true })
    .description("list pitr's snapshots, oldest first")
    .action(
      run(async (ctx) => {
        const list = await (await ctx.provider()).listSnapshots();
        ctx.output.result({ snapshots: list }, () => renderList(list));
        return 0;
      }),
    );
  snapshot
    .command('delete <name>')
    .description('delete one snapshot')
    .action(
      run<Record<string, never>, [string]>(async (ctx, _opts, name) => {
        const deleted = await (await ctx.provider()).deleteSnapshot(name);
        ctx.output.result({ deleted: [deleted] }, () => `Deleted snapshot ${deleted.name}`);
        return 0;
      }),
    );
  addRetentionOptions(
    snapshot.command('prune').description('delete the snapshots a grandfather-father-son policy does not keep (daily 30 / weekly 12 / monthly 12 / yearly 7 by default)'),
  ).action(
    run<RetentionOptions>(async (ctx, opts) => {
      const policy = retentionPolicy(ctx, opts);
      const result = await pruneSnapshots(await ctx.provider(), policy, { dryRun: !!opts.dryRun, ...(ctx.config.timezone && { timeZone: ctx.config.timezone }) });
      ctx.output.result(
        {
          dryRun: !!opts.dryRun,
          policy,
          snapshots: result.verdicts.map((v) => ({ name: v.snapshot.name, at: v.snapshot.at ?? v.snapshot.createdAt, keep: v.keep, reasons: v.reasons })),
          deleted: result.deleted,
          skipped: result.skipped,
        },
        () => {
          const gone = result.verdicts.filter((v) => !v.keep);
          const head = `Policy: ${describeRetentionPolicy(policy)}. ${result.verdicts.length - gone.length} kept, ${gone.length} ${opts.dryRun ? 'would be deleted' : 'deleted'}.`;
          if (result.verdicts.length === 0) return 'No snapshots.';
          return [
            head,
            renderTable([
              ['NAME', 'CAPTURES', opts.dryRun ? 'WOULD' : 'DONE', 'WHY'],
              ...result.verdicts.map((v) => [v.snapshot.name, v.snapshot.at ?? v.snapshot.createdAt, v.keep ? 'keep' : 'delete', v.reasons.join(', ')]),
            ]),
            ...result.skipped.map((k) => `Not deleted: ${k.reason}`),
          ].join('\n');
        },
      );
      return 0;
    }),
  );
};

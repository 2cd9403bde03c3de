import { badInput, refused } from '../../errors.js';
import type { RestoreResult } from '../../providers/types.js';
import { confirmByTyping } from '../confirm.js';
import { renderFields } from '../output.js';
import type { CommandRunner } from '../program.js';
import { addAtOption } from '../options.js';

function render(r: RestoreResult): string {
  const head = r.applied
    ? `Restored ${r.branch.name} to ${r.target}. Its previous state is kept as branch ${r.preservedAs}.`
    : `Plan (dry run, nothing changed): restore ${r.branch.name} to ${r.target}, keeping its current state as branch ${r.preservedAs}.`;
  return [
    head,
    renderFields([
      ['branch', `${r.branch.name} (${r.branch.id})`],
      ['restored to', r.target],
      ['current state kept as', `${r.preservedAs}${r.preservedBranchId ? ` (${r.preservedBranchId})` : ''}`],
    ]),
    '',
    r.applied
      ? `Nothing is lost: the state before this restore is intact in branch ${r.preservedAs}. To go back, restore ${r.branch.name} from ${r.preservedAs} in the Neon console (or neonctl branches restore ${r.branch.name} ${r.preservedAs}).`
      : 'Every write made after the target will be replaced by the old state (it stays readable in the kept branch). Run again without --dry-run to apply.',
  ].join('\n');
}

export const register: CommandRunner = (program, run) => {
  const restore = program
    .command('restore')
    .description('roll the whole production branch back in place to a point in time, keeping the current state under a name')
    .option('--preserve-as <name>', 'name of the branch that keeps the current state (default <branch>-before-pitr-<timestamp>)')
    .option('--dry-run', 'print the plan and change nothing')
    .action(
      run<{ at?: string; preserveAs?: string; dryRun?: boolean }>(async (ctx, opts) => {
        if (!opts.at) throw badInput('missing_at', 'pitr restore needs --at <time>');
        const at = ctx.readTime(opts.at);
        const provider = await ctx.provider();
        if (!provider.restoreInPlace) {
          throw badInput(
            'restore_unsupported',
            `in-place restore is not available with the ${provider.kind} provider: create a branch with pitr --at and copy back what you need`,
          );
        }
        const base = { ...(opts.preserveAs !== undefined && { preserveName: opts.preserveAs }), onProgress: (e: Parameters<typeof ctx.output.progress>[0]) => ctx.output.progress(e) };
        const plan = await provider.restoreInPlace(at, { ...base, dryRun: true });
        if (opts.dryRun) {
          ctx.output.result(plan, render);
          return 0;
        }
        if (!ctx.yes) {
          if (!ctx.interactive) throw refused('confirmation_required', `restoring ${plan.branch.name} in place needs confirmation: pass --yes (or run on a terminal to type the branch name)`);
          ctx.output.note(render(plan));
          await confirmByTyping(plan.branch.name, `Type the branch name (${plan.branch.name}) to restore it in place`);
        }
        const result = await provider.restoreInPlace(at, { ...base, preserveName: plan.preservedAs });
        ctx.output.result(result, render);
        return 0;
      }),
    );
  addAtOption(restore, 'the time to roll back to (required)');
  restore.option('--timeout <duration>', 'give up when the restore operation takes longer than this (default 5m)');
};

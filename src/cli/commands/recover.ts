import { Option } from 'commander';
import { refused } from '../../errors.js';
import { applyRecovery, planRecovery, type RecoverMode, type RecoveryResult, type TriggerPolicy } from '../../recover/engine.js';
import { triggerChoiceError } from '../../recover/triggers.js';
import { renderPlan, renderResult } from '../../report/recover.js';
import { writeRunReport } from '../../report/write.js';
import { checkRunId, RunStore, type RunState } from '../../recover/runs.js';
import { chooseOne, confirmByTyping } from '../confirm.js';
import type { CommandRunner } from '../program.js';
import type { CommandContext } from '../context.js';
import { addAtOption } from '../options.js';
import { resolveDiffTargets } from '../targets.js';
import { connectionParts } from '../../providers/local/urls.js';
import { checkWhereSyntax } from '../../db/user-sql.js';


export const register: CommandRunner = (program, run) => {
  const recover = program
    .command('recover <tables...>')
    .description('copy chosen rows from a recovery branch back into production, in one transaction, after a plan and a confirmation')
    .option('--branch <branch>', 'pitr branch id or name, or any postgres:// URL (default: the newest pitr branch)')
    .addOption(new Option('--mode <mode>', 'missing: put back deleted rows; changed: restore changed rows; all: both').choices(['missing', 'changed', 'all']).default('missing'))
    .option('--where <sql>', 'only rows matching this condition (evaluated on the branch)')
    .option('--cascade', 'also recover the child rows (through foreign keys) that the branch has and production lost')
    .option('--delete-extra', 'also DELETE rows that exist only in production and match the selection')
    .addOption(new Option('--triggers <policy>', 'when written tables have user triggers or rules: skip (exact branch rows, triggers disabled inside the transaction) or fire (they run; what they change is reported)').choices(['skip', 'fire']))
    .option('--dry-run', 'print the plan and change nothing')
    .action(
      run<{ branch?: string; mode: RecoverMode; where?: string; cascade?: boolean; deleteExtra?: boolean; triggers?: TriggerPolicy; dryRun?: boolean; at?: string }, [string[]]>(async (ctx, opts, tables) => {
        // A --where that is not exactly one condition is exit 2 before pitr connects anywhere.
        if (opts.where !== undefined) await checkWhereSyntax(opts.where);
        const targets = await resolveDiffTargets(ctx, opts.branch, opts.at);
        const store = new RunStore(ctx.config.workDir);
        const runState = await store.create('recover');
        const req: Parameters<typeof applyRecovery>[0] = {
          branchUrl: targets.branchUrl,
          productionUrl: targets.productionUrl,
          tables,
          mode: opts.mode,
          ...(opts.where !== undefined && { where: opts.where }),
          cascade: !!opts.cascade,
          deleteExtra: !!opts.deleteExtra,
          ...(opts.triggers && { triggers: opts.triggers }),
          onProgress: (e: Parameters<typeof ctx.output.progress>[0]) => ctx.output.progress(e),
        };
        const finish = async (result: RecoveryResult) => {
          const report = renderResult(result, targets.branchLabel);
          // The recovery has committed: a report that cannot be written is a warning, never a failure.
          try {
            await writeRunReport(store.dir(runState.id), result, report);
          } catch (err) {
            result.warnings.push(`the report could not be written (${(err as Error).message}); the run is applied: pitr runs show ${runState.id}`);
          }
          for (const w of result.warnings) ctx.output.note(`warning: ${w}`);
          ctx.output.result(result, () => report + `Report: ${store.dir(runState.id)}/report.md`);
          return 0;
        };
        // Confirmed up front: plan and apply in one transaction, staging the branch rows once.
        if (ctx.yes && !opts.dryRun) return finish(await applyRecovery(req, null, store, runState));
        const plan = await planRecovery(req, store, runState);
        const nothing = plan.totals.insert + plan.totals.update + plan.totals.delete === 0;
        if (opts.dryRun || nothing) {
          runState.summary = nothing ? 'nothing to recover' : 'dry run';
          await store.save(runState);
          ctx.output.result({ dryRun: !!opts.dryRun, plan }, (p) => `${renderPlan(p.plan, targets.branchLabel)}\n\n${nothing ? 'Nothing to recover: production already has these rows.' : 'Dry run: nothing was changed.'}`);
          return 0;
        }
        if (plan.triggers.length && !req.triggers) {
          if (!ctx.interactive) throw triggerChoiceError(plan.triggers);
          ctx.output.note(renderPlan(plan, targets.branchLabel));
          req.triggers = await chooseOne<TriggerPolicy>('Triggers fire on the rows pitr would write. What should they do?', [
            { value: 'skip', name: 'skip: restore the branch\'s exact rows (user triggers disabled inside the transaction; writers to these tables wait)' },
            { value: 'fire', name: 'fire: let them run (rewritten columns and side writes are reported)' },
          ]);
          plan.triggerPolicy = req.triggers;
          await store.writeJson(runState.id, 'plan.json', plan);
        }
        {
          const db = connectionParts(targets.productionUrl).database;
          if (!ctx.interactive) throw refused('confirmation_required', `recovering into production needs confirmation: pass --yes (or run on a terminal and type the database name); the plan is saved as ${runState.id}`);
          ctx.output.note(renderPlan(plan, targets.branchLabel));
          await confirmByTyping(db, `Type the production database name (${db}) to apply this plan`);
        }
        return finish(await applyRecovery(req, plan, store, runState));
      }),
    );
  addAtOption(recover, 'read production as it was then instead of a branch (Neon Time Travel, no branch created)');

  program
    .command('undo <run-id>')
    .description('reverse a recovery exactly (rows changed since are left alone and reported)')
    .option('--dry-run', 'print what would be reversed and change nothing')
    .action(
      run<{ dryRun?: boolean }, [string]>(async (ctx, opts, runId) => {
        checkRunId(runId);
        const { undoRecovery } = await import('../../recover/undo.js');
        const { settleRun } = await import('../../recover/settle.js');
        const provider = await ctx.provider();
        const productionUrl = await provider.productionUrl();
        const store = new RunStore(ctx.config.workDir);
        const target = await settleRun(store, await store.read(runId), productionUrl);
        const render = (r: Awaited<ReturnType<typeof undoRecovery>>) =>
          [
            `${r.applied ? 'Undid' : 'Would undo'} ${r.undoOf}:`,
            ...r.tables.map((t) => `  ${t.table}: delete ${t.remove} inserted, restore ${t.restore} overwritten, re-insert ${t.reinsert} deleted; ${t.conflicts} changed since (left alone)`),
          ].join('\n');
        const preview = { id: 'dry-run', kind: 'undo' as const, status: 'planned' as const, createdAt: '', updatedAt: '', txid: null };
        const dry = await undoRecovery(productionUrl, store, target, preview, { dryRun: true });
        if (opts.dryRun) {
          ctx.output.result(dry, render);
          return 0;
        }
        if (!ctx.yes) {
          if (!ctx.interactive) throw refused('confirmation_required', `undoing ${runId} writes to production and needs confirmation: pass --yes`);
          ctx.output.note(render(dry));
          await confirmByTyping(runId, `Type the run id (${runId}) to undo it`);
        }
        const undoState = await store.create('undo');
        const result = await undoRecovery(productionUrl, store, target, undoState, { dryRun: false, onProgress: (e) => ctx.output.progress(e) });
        await store.writeJson(undoState.id, 'report.json', result);
        ctx.output.result(result, render);
        return 0;
      }),
    );

  const runs = program.command('runs').description('recoveries and undos, with their plans and reports');
  runs
    .command('list', { isDefault: true })
    .description('list runs')
    .action(
      run(async (ctx) => {
        const store = new RunStore(ctx.config.workDir);
        const list = await settleOpenRuns(ctx, store, await store.list());
        const { renderTable } = await import('../output.js');
        ctx.output.result({ runs: list }, () =>
          list.length ? renderTable([['ID', 'KIND', 'STATUS', 'CREATED', 'NOTE'], ...list.map((r) => [r.id, r.kind, r.status, r.createdAt, r.summary ?? r.error ?? r.undoOf ?? ''])]) : 'No runs yet.',
        );
        return 0;
      }),
    );
  runs
    .command('show <run-id>')
    .description('a run: state, plan and report')
    .action(
      run<Record<string, never>, [string]>(async (ctx, _opts, runId) => {
        const store = new RunStore(ctx.config.workDir);
        const [state] = await settleOpenRuns(ctx, store, [await store.read(runId)]);
        const report = await store.readJson<unknown>(runId, 'report.json').catch(() => null);
        const plan = await store.readJson<unknown>(runId, 'plan.json').catch(() => null);
        const md = await import('node:fs/promises').then((fs) => fs.readFile(`${store.dir(runId)}/report.md`, 'utf8')).catch(() => null);
        ctx.output.result({ state, plan, report }, () => md ?? JSON.stringify({ state, plan }, null, 2));
        return 0;
      }),
    );
};

/**
 * Runs left applying or unknown (killed, or the connection dropped during COMMIT) are settled from
 * production's txid_status when production can be reached; otherwise they are shown as they are.
 */
async function settleOpenRuns(ctx: Pick<CommandContext, 'provider'>, store: RunStore, runs: RunState[]): Promise<RunState[]> {
  if (!runs.some((r) => (r.status === 'applying' || r.status === 'unknown') && r.txid)) return runs;
  const { settleRun } = await import('../../recover/settle.js');
  let productionUrl: string;
  try {
    productionUrl = await (await ctx.provider()).productionUrl();
  } catch {
    return runs;
  }
  const out: RunState[] = [];
  for (const r of runs) out.push(await settleRun(store, r, productionUrl).catch(() => r));
  return out;
}

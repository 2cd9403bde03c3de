import { badInput } from '../../errors.js';
import { registerWebhook } from '../../config/index.js';
import { notifyFailure, runDrill, type DrillCheck } from '../../drill/index.js';
import { renderDrill } from '../../report/drill.js';
import type { CommandRunner } from '../program.js';
import { addAtOption, addBranchCreationOptions } from '../options.js';

export const register: CommandRunner = (program, run) => {
  const drill = program
    .command('drill')
    .description('restore drill: restore production at a time (default now), check it, time it, clean up; exit 1 on any failure')
    .option('--tolerance <percent>', 'allowed row-count difference per table vs production now', '1')
    .option('--check <sql=expected>', 'SQL assertion on the restored copy (repeatable; also drillChecks in the config file)', (v: string, all: string[] = []) => [...all, v])
    .option('--notify <webhook-url>', 'POST a Slack-compatible message there when the drill fails (better: env PITR_NOTIFY_URL or notifyUrl in the config file, which ps does not show)')
    .option('--keep', 'keep the restored branch')
    .action(
      run<{ at?: string; tolerance: string; check?: string[]; notify?: string; keep?: boolean }>(async (ctx, opts) => {
        const tolerance = Number(opts.tolerance) / 100;
        if (!Number.isFinite(tolerance) || tolerance < 0) throw badInput('bad_tolerance', `--tolerance must be a percentage (got "${opts.tolerance}")`);
        registerWebhook(opts.notify);
        if (opts.notify !== undefined && !/^https?:\/\//.test(opts.notify)) throw badInput('bad_webhook', '--notify must be an http(s) URL');
        const notify = opts.notify ?? ctx.config.notifyUrl;
        const checks: DrillCheck[] = [...(ctx.config.drillChecks ?? []), ...(opts.check ?? []).map((c) => {
          const eq = c.lastIndexOf('=');
          if (eq <= 0) throw badInput('bad_check', `--check takes "<sql>=<expected value>" (got "${c}")`);
          return { sql: c.slice(0, eq), expect: c.slice(eq + 1) };
        })];
        const at = ctx.readTime(opts.at ?? 'now');
        const provider = await ctx.provider();
        const result = await runDrill({ provider, at, workDir: ctx.config.workDir, tolerance, checks, keep: !!opts.keep, onProgress: (e) => ctx.output.progress(e) });
        if (!result.ok && notify) {
          await notifyFailure(notify, result, (await provider.describe().catch(() => ({ source: provider.kind }))).source).catch((err: Error) => ctx.output.note(`could not notify: ${err.message}`));
        }
        ctx.output.result(result, (r) => `${renderDrill(r)}Report: ${r.dir}/report.md`);
        return result.ok ? 0 : 1;
      }),
    );
  addAtOption(drill, 'the time to restore (default now)');
  addBranchCreationOptions(drill, {});
};

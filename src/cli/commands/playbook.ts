import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { badInput } from '../../errors.js';
import { loadPlaybook, SHIPPED_PLAYBOOKS } from '../../playbooks/load.js';
import { renderTable } from '../output.js';
import type { CommandContext } from '../context.js';
import type { CommandRunner } from '../program.js';
import { branchProvider, exportBranches } from '../export-branches.js';
import { masterKey, storeOptions } from './export.js';
import { addBranchCreationOptions } from '../options.js';

const SHIPPED = SHIPPED_PLAYBOOKS;

async function shipped(): Promise<string[]> {
  return (await readdir(SHIPPED).catch(() => [] as string[])).filter((f) => f.endsWith('.yaml')).map((f) => f.replace(/\.yaml$/, '')).sort();
}

/** A shipped playbook by name, or a file path. */
async function locate(nameOrFile: string): Promise<string> {
  if (/[/\\]|\.ya?ml$/.test(nameOrFile)) return nameOrFile;
  if ((await shipped()).includes(nameOrFile)) return join(SHIPPED, `${nameOrFile}.yaml`);
  throw badInput('unknown_playbook', `no playbook "${nameOrFile}" (shipped: ${(await shipped()).join(', ') || 'none'}); give a file path for your own`);
}

/** Runs a playbook (shipped name or file) with the given inputs; the exit code follows its outcome. */
export async function runNamedPlaybook(ctx: CommandContext, name: string, given: Record<string, string>, dryRun: boolean): Promise<number> {
  const { resolveInputs, runPlaybook } = await import('../../playbooks/run.js');
  const { renderPlaybookReport } = await import('../../report/playbook.js');
  const parsed = await loadPlaybook(await locate(name));
  if (ctx.interactive) {
    // On a terminal, ask for what --set did not give.
    const { input } = await import('@inquirer/prompts');
    for (const [key, spec] of Object.entries(parsed.inputs)) {
      if (given[key] === undefined && spec.default === undefined) given[key] = await input({ message: `${key} (${spec.type})${spec.description ? `: ${spec.description}` : ''}` });
    }
  }
  const inputs = resolveInputs(parsed, given, ctx.config.timezone);
  const provider = await branchProvider(ctx);
  const report = await runPlaybook(parsed, inputs, {
    provider,
    exports: { branches: exportBranches(ctx), masterKey: () => masterKey(ctx, undefined), storeOptions: storeOptions(ctx) },
    signal: ctx.signal,
    workDir: ctx.config.workDir,
    dryRun,
    yes: ctx.yes,
    ...(ctx.config.timezone && { timeZone: ctx.config.timezone }),
    ...(ctx.interactive && {
      confirm: async (message: string) => (await import('@inquirer/prompts')).confirm({ message, default: false }),
    }),
    onProgress: (e) => ctx.output.progress(e),
    onStep: (s) => ctx.output.note(`${s.status === 'ok' ? '✓' : s.status === 'failed' ? '✗' : '-'} ${s.index + 1}. ${s.id ?? s.type} (${s.seconds.toFixed(1)} s)${s.error ? `: ${s.error}` : ''}`),
  });
  ctx.output.result(report, (r) => `${renderPlaybookReport(r)}Report: ${r.dir}/report.md`);
  const failure = report.steps.find((s) => s.status === 'failed');
  if (failure && /confirmation|not confirmed/.test(failure.error ?? '')) return 3;
  return report.status === 'ok' ? 0 : 1;
}

export const register: CommandRunner = (program, run) => {
  const playbook = program.command('playbook').description('scripted incident runbooks (YAML)');
  playbook
    .command('list', { isDefault: true })
    .description('the playbooks shipped with pitr')
    .action(
      run(async (ctx) => {
        const list = await Promise.all((await shipped()).map(async (name) => loadPlaybook(join(SHIPPED, `${name}.yaml`))));
        ctx.output.result({ playbooks: list.map((p) => ({ name: p.name, description: p.description ?? null, inputs: Object.keys(p.inputs), steps: p.steps.length })) }, (d) =>
          renderTable([['NAME', 'INPUTS', 'STEPS', 'DESCRIPTION'], ...d.playbooks.map((p) => [p.name, p.inputs.join(', '), String(p.steps), (p.description ?? '').trim().split('\n')[0]!.slice(0, 80)])]),
        );
        return 0;
      }),
    );
  playbook
    .command('show <playbook>')
    .description('print a playbook (shipped name or file)')
    .action(
      run<Record<string, never>, [string]>(async (ctx, _opts, name) => {
        const file = await locate(name);
        const parsed = await loadPlaybook(file);
        const text = await readFile(file, 'utf8');
        ctx.output.result({ file, playbook: parsed }, () => text);
        return 0;
      }),
    );
  const runCommand = playbook
    .command('run <playbook>')
    .description('run a playbook (shipped name or file): every step timed, a JSON and Markdown report, the measured RTO')
    .option('--set <key=value>', 'an input value (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .option('--dry-run', 'plan every step and change nothing')
    .action(
      run<{ set?: string[]; dryRun?: boolean }, [string]>(async (ctx, opts, name) => {
        const given: Record<string, string> = {};
        for (const pair of opts.set ?? []) {
          const eq = pair.indexOf('=');
          if (eq <= 0) throw badInput('bad_set', `--set takes key=value (got "${pair}")`);
          given[pair.slice(0, eq)] = pair.slice(eq + 1);
        }
        return runNamedPlaybook(ctx, name, given, !!opts.dryRun);
      }),
    );
  addBranchCreationOptions(runCommand, {});
  playbook
    .command('validate <file>')
    .description('check a playbook: every mistake is reported with its line and YAML path (exit 2)')
    .action(
      run<Record<string, never>, [string]>(async (ctx, _opts, name) => {
        const file = await locate(name);
        const parsed = await loadPlaybook(file);
        ctx.output.result({ file, valid: true, name: parsed.name, inputs: Object.keys(parsed.inputs), steps: parsed.steps.map((s) => s.type) }, (d) => `${d.file}: valid playbook "${d.name}" (${d.steps.length} steps: ${d.steps.join(' → ')})`);
        return 0;
      }),
    );
};

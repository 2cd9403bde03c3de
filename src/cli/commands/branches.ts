import type { RecoveryBranch } from '../../providers/types.js';
import { redactUrl } from '../../redact.js';
import { branchJson } from './branch-create.js';
import { renderTable } from '../output.js';
import type { CommandRunner } from '../program.js';
import { branchProvider, exportBranches } from '../export-branches.js';

function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return 'never';
  const ms = new Date(iso).getTime() - now;
  const abs = Math.abs(ms);
  const text = abs < 90_000 ? `${Math.round(abs / 1000)}s` : abs < 5_400_000 ? `${Math.round(abs / 60_000)}m` : abs < 172_800_000 ? `${Math.round(abs / 3_600_000)}h` : `${Math.round(abs / 86_400_000)}d`;
  return ms < 0 ? `${text} ago` : `in ${text}`;
}

const expired = (b: RecoveryBranch, now = Date.now()) => b.expiresAt !== null && new Date(b.expiresAt).getTime() <= now;

function renderList(branches: RecoveryBranch[]): string {
  if (branches.length === 0) return 'No recovery branches. Create one with: pitr --at <time>';
  return renderTable([
    ['ID', 'NAME', 'TARGET', 'SOURCE', 'CREATED', 'EXPIRES', 'STATE'],
    ...branches.map((b) => [b.id, b.name, b.target, b.source, ago(b.createdAt), expired(b) ? 'expired' : ago(b.expiresAt), b.state]),
  ]);
}

const safe = (b: RecoveryBranch) => branchJson({ ...b, connectionUrl: redactUrl(b.connectionUrl) });

export const register: CommandRunner = (program, run) => {
  const branches = program.command('branches').description('list, delete and prune the recovery branches pitr created');
  branches
    .command('list', { isDefault: true })
    .description('list recovery branches')
    .action(
      run(async (ctx) => {
        const list = await (await branchProvider(ctx)).listRecoveryBranches();
        ctx.output.result({ branches: list.map(safe) }, () => renderList(list));
        return 0;
      }),
    );
  branches
    .command('delete <branch>')
    .description('stop a recovery branch and remove it (id or name)')
    .action(
      run<Record<string, never>, [string]>(async (ctx, _opts, idOrName) => {
        const deleted = await (await branchProvider(ctx)).deleteRecoveryBranch(idOrName);
        ctx.output.result({ deleted: [safe(deleted)] }, () => `Deleted ${deleted.name} (${deleted.id})`);
        return 0;
      }),
    );
  branches
    .command('prune')
    .description('delete expired recovery branches (and leftovers of interrupted creations)')
    .option('--dry-run', 'show what would be deleted')
    .action(
      run<{ dryRun?: boolean }>(async (ctx, opts) => {
        const provider = await branchProvider(ctx);
        const now = Date.now();
        const victims = (await provider.listRecoveryBranches()).filter((b) => expired(b, now));
        const deleted: RecoveryBranch[] = [];
        let abandoned: string[] = [];
        if (!opts.dryRun) {
          for (const b of victims) deleted.push(await provider.deleteRecoveryBranch(b.id));
          if (provider.kind === 'local') abandoned = await (await ctx.localProvider()).removeAbandoned();
          abandoned = [...abandoned, ...(await exportBranches(ctx).removeAbandoned())];
        }
        const list = opts.dryRun ? victims : deleted;
        ctx.output.result({ dryRun: !!opts.dryRun, deleted: list.map(safe), abandonedRemoved: abandoned }, () => {
          if (list.length === 0 && abandoned.length === 0) return 'Nothing to prune: no recovery branch has expired.';
          const verb = opts.dryRun ? 'Would delete' : 'Deleted';
          return [...list.map((b) => `${verb} ${b.name} (${b.id}, expired ${ago(b.expiresAt, now)})`), ...abandoned.map((id) => `Removed leftovers of interrupted creation ${id}`)].join('\n');
        });
        return 0;
      }),
    );
};

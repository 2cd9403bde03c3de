import { badInput } from '../../errors.js';
import { openDiffSessions, preview, type Preview } from '../../diff/preview.js';
import type { SchemaDiff } from '../../diff/schema.js';
import { renderTable } from '../output.js';
import type { CommandRunner } from '../program.js';
import { commandLine, typedTable } from '../hints.js';
import { resolveDiffTargets } from '../targets.js';
import { addAtOption } from '../options.js';

const n = (x: number) => x.toLocaleString('en-US');

export function renderSchemaDiff(s: SchemaDiff): string {
  if (s.identical) return 'Schema: identical.';
  const lines = ['Schema changes since the branch:'];
  for (const t of s.tablesOnlyInBranch) lines.push(`  - table ${t} (dropped in production)`);
  for (const t of s.tablesOnlyInProduction) lines.push(`  + table ${t} (new in production)`);
  for (const t of s.changedTables) {
    const parts = [
      ...t.columnsOnlyInBranch.map((c) => `-${c}`),
      ...t.columnsOnlyInProduction.map((c) => `+${c}`),
      ...t.retypedColumns.map((c) => `${c.column}: ${c.branch} → ${c.production}`),
      ...t.nullabilityChanged.map((c) => `${c.column}: ${c.branch ? 'not null' : 'null'} → ${c.production ? 'not null' : 'null'}`),
      ...t.constraints.onlyInBranch.map((c) => `-constraint ${c}`),
      ...t.constraints.onlyInProduction.map((c) => `+constraint ${c}`),
      ...t.constraints.changed.map((c) => `~constraint ${c}`),
      ...t.indexes.onlyInBranch.map((c) => `-index ${c}`),
      ...t.indexes.onlyInProduction.map((c) => `+index ${c}`),
      ...t.indexes.changed.map((c) => `~index ${c}`),
      ...(t.primaryKey ? [`primary key ${JSON.stringify(t.primaryKey.branch)} → ${JSON.stringify(t.primaryKey.production)}`] : []),
    ];
    lines.push(`  ~ ${t.table}: ${parts.join(', ')}`);
  }
  for (const e of s.enums) lines.push(`  ~ enum ${e.name}: ${JSON.stringify(e.branch)} → ${JSON.stringify(e.production)}`);
  return lines.join('\n');
}

/** Subscriptions and pg_cron jobs that a local branch holds but never runs. */
export function renderSealedOff(s: { subscriptions: string[]; cronJobs: string[] } | undefined): string {
  if (!s || s.subscriptions.length + s.cronJobs.length === 0) return '';
  return [
    'Disabled on the branch (copied from production, never run there):',
    ...s.subscriptions.map((x) => `  subscription ${x}`),
    ...s.cronJobs.map((x) => `  pg_cron job ${x}`),
  ].join('\n');
}

function render(label: string, sealed?: { subscriptions: string[]; cronJobs: string[] }) {
  return (p: Preview) => {
    const rows = p.tables.map((t) => [
      t.table,
      n(t.branchRows),
      n(t.productionRows),
      n(t.missing),
      n(t.changed),
      n(t.extra),
      Object.entries(t.changedColumnCounts)
        .sort((a, b) => b[1] - a[1])
        .map(([c, k]) => `${c} (${n(k)})`)
        .join(', ') + (t.mode === 'multiset' ? ' [no key: whole rows]' : ''),
    ]);
    const affected = p.tables.filter((t) => t.missing + t.changed + t.extra > 0);
    return [
      `Comparing ${label} (past) with production (now), in ${p.seconds.toFixed(1)} s.`,
      renderSchemaDiff(p.schema),
      renderSealedOff(sealed),
      '',
      p.tables.length ? renderTable([['TABLE', 'BRANCH ROWS', 'PRODUCTION ROWS', 'MISSING', 'CHANGED', 'ONLY IN PROD', 'CHANGED COLUMNS'], ...rows]) : '',
      '',
      affected.length ? `Next: ${commandLine('pitr', 'diff', typedTable(affected[0]!.table))}   # the rows` : p.tables.length ? 'No row differences.' : '',
    ]
      .filter((l, i, all) => !(l === '' && all[i - 1] === ''))
      .join('\n')
      .trim();
  };
}

export const register: CommandRunner = (program, run) => {
  const command = program
    .command('preview [branch]')
    .description('what differs between a recovery branch (or --at <time>) and production: schema, row counts, missing/changed rows')
    .option('--branch <branch>', 'pitr branch id or name, or any postgres:// URL (default: the newest pitr branch); same as the argument')
    .option('--tables <list>', 'only these tables (comma-separated)')
    .option('--schema-only', 'only the schema diff')
    .option('--jobs <n>', 'connections per side sharing one snapshot (default: from the servers, 1–4)')
    .option('--exit-code', 'exit 1 when anything differs')
    .action(
      run<{ branch?: string; tables?: string; schemaOnly?: boolean; jobs?: string; exitCode?: boolean; at?: string }, [string | undefined]>(async (ctx, opts, positional) => {
        if (positional !== undefined && opts.branch !== undefined && positional !== opts.branch) {
          throw badInput('two_branches', `give the branch once: as an argument ("${positional}") or as --branch ("${opts.branch}")`);
        }
        const jobs = opts.jobs === undefined ? undefined : Number(opts.jobs);
        if (jobs !== undefined && (!/^\d+$/.test(opts.jobs!.trim()) || jobs < 1 || jobs > 64)) throw badInput('bad_jobs', `--jobs must be a whole number from 1 to 64 (got "${opts.jobs}")`);
        const targets = await resolveDiffTargets(ctx, positional ?? opts.branch, opts.at);
        const provider = await ctx.provider();
        const sealedOff = targets.branchId && provider.sealedOff ? await provider.sealedOff(targets.branchId) : undefined;
        const sessions = await openDiffSessions(targets.branchUrl, targets.productionUrl);
        try {
          const result = await preview(sessions, {
            ...(opts.tables && { tables: opts.tables.split(',').map((t) => t.trim()).filter(Boolean) }),
            schemaOnly: !!opts.schemaOnly,
            ...(jobs !== undefined && { jobs }),
            onProgress: (e) => ctx.output.progress(e),
          });
          ctx.output.result({ branch: targets.branchLabel, ...result, ...(sealedOff && { sealedOff }) }, render(targets.branchLabel, sealedOff));
          const differs = !result.schema.identical || result.tables.some((t) => t.missing + t.changed + t.extra > 0);
          return opts.exitCode && differs ? 1 : 0;
        } finally {
          await sessions.close();
        }
      }),
    );
  addAtOption(command, 'read production as it was then instead of a branch (Neon Time Travel, no branch created)');
};

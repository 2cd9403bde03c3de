import { Option } from 'commander';
import { badInput } from '../../errors.js';
import { openDiffSessions, resolveTable } from '../../diff/preview.js';
import { diffRows, type RowDifference, type RowDiffSummary } from '../../diff/rows.js';
import { recoveryStatement } from '../../diff/sql.js';
import { renderTable } from '../output.js';
import type { CommandRunner } from '../program.js';
import { addAtOption } from '../options.js';
import { resolveDiffTargets } from '../targets.js';

type Format = 'table' | 'json' | 'ndjson' | 'csv' | 'sql';

function csvCell(v: string | null | undefined): string {
  if (v === null || v === undefined) return '';
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

const show = (v: string | null | undefined) => (v === null || v === undefined ? 'NULL' : JSON.stringify(v).slice(1, -1)).slice(0, 40);

function keyText(d: RowDifference): string {
  if (!d.key) return '(whole row)';
  return Object.entries(d.key)
    .map(([k, v]) => `${k}=${show(v)}`)
    .join(' ');
}

function detail(d: RowDifference): string {
  if (d.kind === 'changed') return d.changedColumns.map((c) => `${c}: ${show(d.branch?.[c])} → ${show(d.production?.[c])}`).join('; ');
  const values = (d.branch ?? d.production)!;
  return Object.entries(values)
    .filter(([k]) => !d.key || !(k in d.key))
    .map(([k, v]) => `${k}=${show(v)}`)
    .join(' ')
    .slice(0, 120);
}

const KIND = { missing: 'missing in production', changed: 'changed', extra: 'only in production' } as const;

function summaryLine(s: RowDiffSummary): string {
  return `${s.table}: ${s.missing} missing in production, ${s.changed} changed, ${s.extra} only in production (branch ${s.branchRows} rows, production ${s.productionRows}; ${s.seconds.toFixed(2)} s)${
    s.skippedColumns.length ? `; not compared (differ between sides): ${s.skippedColumns.join(', ')}` : ''
  }${s.mode === 'multiset' ? '; no key: compared as whole rows' : ''}`;
}

export const register: CommandRunner = (program, run) => {
  const diff = program
    .command('diff <table>')
    .description('the rows of one table that differ between a recovery branch (or --at <time>) and production')
    .option('--branch <branch>', 'pitr branch id or name, or any postgres:// URL (default: the newest pitr branch)')
    .option('--where <sql>', 'only rows matching this condition (runs read-only on both sides)')
    .option('--columns <list>', 'compare only these columns (comma-separated; the key is always included)')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'ndjson', 'csv', 'sql']).default('table'))
    .option('--limit <n>', 'print at most n differences (counts stay complete)', '1000')
    .option('--exit-code', 'exit 1 when rows differ')
    .action(
      run<{ branch?: string; where?: string; columns?: string; format: Format; limit: string; exitCode?: boolean; at?: string; json?: boolean }, [string]>(async (ctx, opts, tableName) => {
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 0) throw badInput('bad_limit', `--limit must be a whole number (got "${opts.limit}")`);
        const format: Format = opts.json && opts.format === 'table' ? 'json' : opts.format;
        const targets = await resolveDiffTargets(ctx, opts.branch, opts.at);
        const sessions = await openDiffSessions(targets.branchUrl, targets.productionUrl);
        try {
          const table = resolveTable(sessions, tableName);
          const differences: RowDifference[] = [];
          let printed = 0;
          const write = (line: string) => ctx.output.stream(line);
          if (format === 'csv') {
            const cols = table.branch.columns.map((c) => c.name);
            write(['kind', 'changed_columns', ...cols].map(csvCell).join(','));
          }
          const summary = await diffRows({
            branch: sessions.branch,
            production: sessions.production,
            branchTable: table.branch,
            productionTable: table.production,
            ...(opts.where !== undefined && { where: opts.where }),
            ...(opts.columns !== undefined && { columns: opts.columns.split(',').map((c) => c.trim()).filter(Boolean) }),
            onProgress: (e) => ctx.output.progress(e),
            onDifference: (d) => {
              if (printed >= limit) return;
              printed++;
              // Streaming formats print as the diff runs, so memory stays flat on big diffs.
              if (format === 'ndjson') write(JSON.stringify(d));
              else if (format === 'sql') write(recoveryStatement(table.branch, d));
              else if (format === 'csv') {
                const values = (d.kind === 'extra' ? d.production : d.branch)!;
                write([d.kind, d.changedColumns.join(' '), ...table.branch.columns.map((c) => values[c.name])].map(csvCell).join(','));
              } else differences.push(d);
            },
          });
          if (format === 'json') {
            ctx.output.result({ branch: targets.branchLabel, summary, differences, truncated: printed < summary.missing + summary.changed + summary.extra }, () => '');
          } else if (format === 'table') {
            ctx.output.result({ summary, differences }, () =>
              [
                summaryLine(summary),
                differences.length ? renderTable([['KIND', 'KEY', 'DETAIL'], ...differences.map((d) => [KIND[d.kind] + (d.count > 1 ? ` ×${d.count}` : ''), keyText(d), detail(d)])]) : '',
                printed < summary.missing + summary.changed + summary.extra ? `(showing ${printed}; raise --limit for more)` : '',
              ]
                .filter(Boolean)
                .join('\n'),
            );
          } else {
            ctx.output.note(summaryLine(summary));
          }
          const differs = summary.missing + summary.changed + summary.extra > 0;
          return opts.exitCode && differs ? 1 : 0;
        } finally {
          await sessions.close();
        }
      }),
    );
  addAtOption(diff, 'read production as it was then instead of a branch (Neon Time Travel, no branch created)');
};

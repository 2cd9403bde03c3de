import { checkWhereSyntax } from '../../db/user-sql.js';
import { Option } from 'commander';
import { badInput } from '../../errors.js';
import { openDiffSessions, resolveTable } from '../../diff/preview.js';
import { diffRows, type RowDifference, type RowDiffSummary } from '../../diff/rows.js';
import { recoveryStatement } from '../../report/diff-script.js';
import { renderTable } from '../output.js';
import type { CommandRunner } from '../program.js';
import { addAtOption } from '../options.js';
import { resolveDiffTargets } from '../targets.js';

type Format = 'table' | 'json' | 'ndjson' | 'csv' | 'sql';

/** The human table and --json hold differences in memory, so they stop here unless --limit says otherwise. */
const DEFAULT_LIMIT = 1000;

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

const total = (s: RowDiffSummary) => s.missing + s.changed + s.extra;

function wholeNumber(flag: string, text: string, min: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min) throw badInput(`bad_${flag}`, `--${flag} must be a whole number${min > 0 ? ` ≥ ${min}` : ''} (got "${text}")`);
  return n;
}

export const register: CommandRunner = (program, run) => {
  const diff = program
    .command('diff <table>')
    .description('the rows of one table that differ between a recovery branch (or --at <time>) and production')
    .option('--branch <branch>', 'pitr branch id or name, or any postgres:// URL (default: the newest pitr branch)')
    .option('--where <sql>', 'only rows matching this condition (runs read-only on both sides)')
    .option('--columns <list>', 'compare only these columns (comma-separated; the key is always included)')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'ndjson', 'csv', 'sql']).default('table'))
    .option('--limit <n>', `print at most n differences (counts stay complete; default: all for ndjson/csv/sql, ${DEFAULT_LIMIT} for table/json)`)
    .option('--jobs <n>', 'connections per side sharing one snapshot (default: from the servers, 1–4)')
    .option('--delete-extra', 'sql format: DELETE rows that exist only in production instead of listing them as comments')
    .option('--exit-code', 'exit 1 when rows differ')
    .action(
      run<{ branch?: string; where?: string; columns?: string; format: Format; limit?: string; jobs?: string; deleteExtra?: boolean; exitCode?: boolean; at?: string; json?: boolean }, [string]>(async (ctx, opts, tableName) => {
        const format: Format = opts.json && opts.format === 'table' ? 'json' : opts.format;
        const streaming = format === 'ndjson' || format === 'csv' || format === 'sql';
        const limit = opts.limit !== undefined ? wholeNumber('limit', opts.limit, 0) : streaming ? Infinity : DEFAULT_LIMIT;
        const jobs = opts.jobs !== undefined ? wholeNumber('jobs', opts.jobs, 1) : undefined;
        if (jobs !== undefined && jobs > 64) throw badInput('bad_jobs', `--jobs must be at most 64 (got ${jobs})`);
        if (opts.deleteExtra && format !== 'sql') throw badInput('bad_delete_extra', '--delete-extra only applies to --format sql');
        if (opts.where !== undefined) await checkWhereSyntax(opts.where);
        const targets = await resolveDiffTargets(ctx, opts.branch, opts.at);
        const sessions = await openDiffSessions(targets.branchUrl, targets.productionUrl);
        try {
          const table = resolveTable(sessions, tableName);
          const differences: RowDifference[] = [];
          let printed = 0;
          // Row values are data: written exactly, never through the secret redactor.
          const write = (line: string) => ctx.output.stream(line, { data: true });
          if (format === 'csv') {
            const cols = table.branch.columns.map((c) => c.name);
            write(['kind', 'changed_columns', ...cols].map(csvCell).join(','));
          }
          const summary = await diffRows({
            branch: sessions.branch,
            production: sessions.production,
            branchTable: table.branch,
            productionTable: table.production,
            connect: sessions.connect,
            ...(jobs !== undefined && { jobs }),
            ...(opts.where !== undefined && { where: opts.where }),
            ...(opts.columns !== undefined && { columns: opts.columns.split(',').map((c) => c.trim()).filter(Boolean) }),
            onProgress: (e) => ctx.output.progress(e),
            onDifference: (d) => {
              if (printed >= limit) return;
              printed++;
              // Streaming formats print as the diff runs, so memory stays flat on big diffs.
              if (format === 'ndjson') write(JSON.stringify(d));
              else if (format === 'sql') write(recoveryStatement(table.branch, d, { deleteExtra: !!opts.deleteExtra }));
              else if (format === 'csv') {
                const values = (d.kind === 'extra' ? d.production : d.branch)!;
                write([d.kind, d.changedColumns.join(' '), ...table.branch.columns.map((c) => values[c.name])].map(csvCell).join(','));
              } else differences.push(d);
            },
          });
          const truncated = printed < total(summary);
          if (format === 'json') {
            const result = { branch: targets.branchLabel, summary, differences, truncated };
            ctx.output.result(result, (r) => JSON.stringify(r, null, 2), { data: ['differences'] });
          } else if (format === 'table') {
            ctx.output.result(
              { summary, differences },
              (r) =>
                [
                  summaryLine(r.summary),
                  r.differences.length ? renderTable([['KIND', 'KEY', 'DETAIL'], ...r.differences.map((d) => [KIND[d.kind] + (d.count > 1 ? ` ×${d.count}` : ''), keyText(d), detail(d)])]) : '',
                  truncated ? `(showing ${printed} of ${total(r.summary)}; raise --limit for more)` : '',
                ]
                  .filter(Boolean)
                  .join('\n'),
              { data: ['differences'] },
            );
          } else {
            ctx.output.note(summaryLine(summary));
          }
          // Any cut is announced where a person or a log sees it, whatever the format.
          if (truncated && format !== 'table') ctx.output.warn(`output truncated: ${printed} of ${total(summary)} differences printed (--limit ${limit})`);
          return opts.exitCode && total(summary) > 0 ? 1 : 0;
        } finally {
          await sessions.close();
        }
      }),
    );
  addAtOption(diff, 'read production as it was then instead of a branch (Neon Time Travel, no branch created)');
};

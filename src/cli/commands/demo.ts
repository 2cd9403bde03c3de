import { badInput } from '../../errors.js';
import { runDemo, type DemoResult } from '../../demo/index.js';
import { renderFields, renderTable } from '../output.js';
import type { CommandRunner } from '../program.js';

function render(r: DemoResult): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const lines = [
    '',
    `Incident: ${r.incident.statement} at ${r.incident.at} (${r.incident.comicsDeleted} comics, cascading).`,
    `Recovery branch at ${r.target} was queryable in ${r.timings.branchSeconds.toFixed(1)} s.`,
    '',
    renderTable([
      ['TABLE', 'BEFORE INCIDENT', 'PRODUCTION NOW', 'RECOVERY BRANCH', 'LOST IN PRODUCTION'],
      ...r.counts.map((c) => [c.table, n(c.beforeIncident), n(c.production), n(c.branch), n(r.recoverable[c.table] ?? 0)]),
    ]),
    '',
    'The branch holds every row the DELETE took; production kept every write made after it.',
    renderFields([
      ['load', `${r.timings.loadSeconds.toFixed(1)} s`],
      ['base backup', `${r.timings.backupSeconds.toFixed(1)} s`],
      ['time to queryable branch', `${r.timings.branchSeconds.toFixed(1)} s`],
      ['whole demo', `${r.timings.totalSeconds.toFixed(1)} s`],
    ]),
  ];
  if (r.kept) {
    lines.push(
      '',
      'Left running (--keep). Point pitr at it:',
      ...Object.entries(r.env).map(([k, v]) => `  export ${k}='${v}'`),
      `  psql '${r.branch.connectionUrl}'   # the recovery branch`,
      `  pitr status; pitr branches`,
      `Clean up: pitr branches delete ${r.branch.name}; then stop production with pg_ctl -D ${r.root}/production/data stop and remove ${r.root}`,
    );
  }
  return lines.join('\n');
}

export const register: CommandRunner = (program, run) => {
  program
    .command('demo')
    .description('the whole incident on a local Postgres: archiving, backup, traffic, a cascading DELETE, a recovery branch from before it')
    .option('--rows <n>', 'rows of sample data (comics platform)', '500000')
    .option('--keep', 'leave production and the recovery branch running and print how to connect')
    .action(
      run<{ rows: string; keep?: boolean }>(async (ctx, opts) => {
        const rows = Number(opts.rows);
        if (!Number.isInteger(rows) || rows < 1000 || rows > 100_000_000) throw badInput('bad_rows', `--rows must be a whole number from 1000 to 100000000 (got "${opts.rows}")`);
        const result = await runDemo({ rows, keep: !!opts.keep, signal: ctx.signal, onProgress: (e) => ctx.output.progress(e) });
        ctx.output.result(result, render);
        return 0;
      }),
    );
};

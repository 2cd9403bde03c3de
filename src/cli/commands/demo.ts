import { badInput } from '../../errors.js';
import { runDemo, type DemoResult } from '../../demo/index.js';
import { renderFields, renderTable } from '../output.js';
import type { CommandRunner } from '../program.js';
import { commandLine, shellWord } from '../hints.js';

function render(r: DemoResult): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const lines = [
    '',
    `Incident: ${r.incident.statement} at ${r.incident.at} (${r.incident.comicsDeleted} comics, cascading to their chapters, comments and bookmarks).`,
    `The accidental-deletion playbook branched production at ${r.target} (queryable in ${r.timings.branchSeconds.toFixed(1)} s), previewed and diffed it, and put ${n(r.recovery.inserted)} rows back in one verified transaction.`,
    '',
    renderTable([
      ['TABLE', 'BEFORE INCIDENT', 'AFTER INCIDENT', 'RECOVERY BRANCH', 'RECOVERED', 'WRITES SINCE (KEPT)'],
      ...r.counts.map((c) => [c.table, n(c.beforeIncident), n(c.production), n(c.branch), n(c.recovered), n(c.recovered - c.beforeIncident)]),
    ]),
    '',
    `Every row the DELETE took is back, and every write made after it is still there, including ${n(r.liveWrites)} comments written while the recovery ran (nothing was truncated or re-imported).`,
    renderFields([
      ['load', `${r.timings.loadSeconds.toFixed(1)} s`],
      ['base backup', `${r.timings.backupSeconds.toFixed(1)} s`],
      ['time to queryable branch', `${r.timings.branchSeconds.toFixed(1)} s`],
      ['plan + recover + verify', `${r.timings.recoverSeconds.toFixed(1)} s`],
      ['RTO (playbook start → verified recovery)', `${r.timings.rtoSeconds.toFixed(1)} s`],
      ['whole demo', `${r.timings.totalSeconds.toFixed(1)} s`],
    ]),
    `Playbook report: ${r.recovery.playbookReport}${r.kept ? '' : ' (removed with the demo; --keep keeps it)'}`,
    `Undo it: ${commandLine('pitr', 'undo', r.recovery.runId)}${r.kept ? '' : '   # with --keep'}`,
  ];
  if (r.kept) {
    lines.push(
      '',
      'Left running (--keep). Point pitr at it:',
      ...Object.entries(r.env).map(([k, v]) => `  export ${k}=${shellWord(v)}`),
      `  psql ${shellWord(r.branch.connectionUrl)}   # the recovery branch`,
      `  pitr status; pitr branches; pitr preview; pitr runs`,
      `Clean up: ${commandLine('pitr', 'branches', 'delete', r.branch.name)}`,
      `Then:     ${commandLine('pg_ctl', '-D', `${r.root}/production/data`, 'stop')} && ${commandLine('rm', '-r', r.root)}`,
    );
  }
  return lines.join('\n');
}

export const register: CommandRunner = (program, run) => {
  program
    .command('demo')
    .description('the whole incident on a local Postgres: archiving, backup, traffic, a cascading DELETE, and the accidental-deletion playbook putting it back')
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

import type { SourceInfo } from '../../providers/types.js';
import { renderFields } from '../output.js';
import type { CommandRunner } from '../program.js';

function render(info: SourceInfo): string {
  const d = info.details as {
    production?: { reachable: boolean; walLevel?: string; archiveMode?: string; archiveTimeoutSeconds?: number };
    archiver?: { archivedCount: number; lastArchivedWal: string | null; lastArchivedTime: string | null; failedCount: number; lastFailedWal: string | null; lastFailedTime: string | null } | null;
    backups?: unknown[];
  };
  const a = d.archiver;
  const p = d.production;
  const rpo = p?.archiveTimeoutSeconds ? `≤ ${p.archiveTimeoutSeconds} s (archive_timeout) while production is down; 0 while it is up (pitr switches WAL)` : 'unbounded while production is down (archive_timeout is 0)';
  return [
    renderFields([
      ['provider', info.provider],
      ['source', info.source],
      ['server', info.pgVersion ? `PostgreSQL ${info.pgVersion}` : 'unreachable'],
      ['window', `${info.window.oldest ?? '?'} → ${info.window.reachesNow ? 'now' : (info.window.newest ?? '?')}`],
      ['newest archived', info.window.newest],
      ['backups', d.backups?.length ?? 0],
      ...(p?.reachable ? [['archiving', `${p.archiveMode} (wal_level ${p.walLevel})`] as const, ['RPO', rpo] as const] : []),
      ...(a
        ? [
            ['archived', `${a.archivedCount} segments, last ${a.lastArchivedWal ?? '-'} at ${a.lastArchivedTime ?? '-'}`] as const,
            ['failed', `${a.failedCount}${a.lastFailedWal ? `, last ${a.lastFailedWal} at ${a.lastFailedTime}` : ''}`] as const,
          ]
        : []),
    ]),
    '',
    info.problems.length ? ['Problems:', ...info.problems.map((p) => `  ✗ ${p}`)].join('\n') : 'OK: point-in-time recovery is possible across the whole window.',
  ].join('\n');
}

export const register: CommandRunner = (program, run) => {
  program
    .command('status')
    .description('production, recoverable window and archiving health (exit 1 when recovery is at risk)')
    .action(
      run(async (ctx) => {
        const info = await (await ctx.provider()).describe();
        ctx.output.result({ ...info, ok: info.problems.length === 0 }, render);
        return info.problems.length === 0 ? 0 : 1;
      }),
    );
};

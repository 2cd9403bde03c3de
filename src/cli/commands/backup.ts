import { Option } from 'commander';
import type { BackupInfo, BackupMethod } from '../../providers/local/backups.js';
import { formatBytes } from '../../report/format.js';
import { renderFields, renderTable } from '../output.js';
import type { CommandRunner } from '../program.js';
import { addRetentionOptions, describeRetentionPolicy, retentionPolicy, type RetentionOptions } from '../retention.js';


const backupJson = ({ dir, dataDir, ...rest }: BackupInfo) => ({ ...rest, dir });

export const register: CommandRunner = (program, run) => {
  const backup = program.command('backup').description('base backups of production (local provider)');
  backup
    .command('create', { isDefault: true })
    .description('take a base backup into the backup directory (pg_basebackup, verified; else a file copy on the database host)')
    .addOption(
      new Option('--method <method>', 'pg_basebackup, or copy: the low-level API and a file copy of the data directory, for hosts without pg_basebackup (default: pg_basebackup when installed)').choices(['pg_basebackup', 'copy']),
    )
    .action(
      run<{ method?: BackupMethod }>(async (ctx, opts) => {
        const info = await (await ctx.localProvider()).backup((e) => ctx.output.progress(e), opts.method);
        ctx.output.result(backupJson(info), () =>
          [
            `Base backup ${info.id} taken${info.verified ? ' and verified' : ` (${info.method === 'copy' ? 'file copy' : 'pg_verifybackup not installed'}, not verified)`} in ${info.seconds.toFixed(1)} s`,
            renderFields([
              ['dir', info.dir],
              ['consistent from', info.endedAt],
              ['WAL', `${info.startLsn} → ${info.endLsn} (timeline ${info.timeline})`],
              ['size', formatBytes(info.bytes)],
              ['server', `PostgreSQL ${info.pgVersion}`],
            ]),
          ].join('\n'),
        );
        return 0;
      }),
    );
  backup
    .command('list')
    .description('list base backups')
    .action(
      run(async (ctx) => {
        const backups = await (await ctx.localProvider()).listBackups();
        ctx.output.result({ backups: backups.map(backupJson) }, () =>
          backups.length === 0
            ? 'No base backups yet. Take one with: pitr backup'
            : renderTable([
                ['ID', 'CONSISTENT FROM', 'END LSN', 'SIZE', 'SERVER'],
                ...backups.map((b) => [b.id, b.endedAt, b.endLsn, formatBytes(b.bytes), b.pgVersion]),
              ]),
        );
        return 0;
      }),
    );
  addRetentionOptions(
    backup
      .command('prune')
      .description('delete the base backups a grandfather-father-son policy does not keep (never one a snapshot needs), then the archived WAL no kept backup needs'),
  ).action(
    run<RetentionOptions>(async (ctx, opts) => {
      const policy = retentionPolicy(ctx, opts);
      const result = await (await ctx.localProvider()).pruneBackups(policy, { dryRun: !!opts.dryRun, ...(ctx.config.timezone && { timeZone: ctx.config.timezone }) });
      const gone = result.backups.filter((b) => !b.keep);
      ctx.output.result({ dryRun: !!opts.dryRun, policy, ...result }, () => {
        if (result.backups.length === 0) return 'No base backups.';
        return [
          `Policy: ${describeRetentionPolicy(policy)}. ${result.backups.length - gone.length} backups kept, ${gone.length} ${opts.dryRun ? 'would be deleted' : 'deleted'} (${formatBytes(gone.reduce((a, b) => a + b.bytes, 0))}).`,
          renderTable([
            ['ID', 'CONSISTENT FROM', opts.dryRun ? 'WOULD' : 'DONE', 'WHY'],
            ...result.backups.map((b) => [b.id, b.endedAt, b.keep ? 'keep' : 'delete', b.reasons.join(', ')]),
          ]),
          result.wal.keepFrom
            ? `WAL archive: ${result.wal.remove.length} segment files (${formatBytes(result.wal.bytes)}) before ${result.wal.keepFrom} ${opts.dryRun ? 'would be' : 'were'} removed; every kept backup can still be restored to any later time.`
            : 'WAL archive: not a directory pitr manages (restore_command); prune it with its own tool.',
        ].join('\n');
      });
      return 0;
    }),
  );
};

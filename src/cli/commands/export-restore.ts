import { join } from 'node:path';
import type { Command } from 'commander';
import { badInput } from '../../errors.js';
import { ENCRYPTION_KEY_ENV } from '../../export/encryption.js';
import { listExports } from '../../export/list.js';
import { pruneExports } from '../../export/prune.js';
import { restoreExport } from '../../export/restore.js';
import { renderExportList, renderRestoreMarkdown, writeRestoreReport } from '../../report/export.js';
import type { RunWrapper } from '../program.js';
import { addRetentionOptions, describeRetentionPolicy, retentionPolicy, type RetentionOptions } from '../retention.js';
import { masterKey, storeOptions } from './export.js';

interface RestoreOptions {
  into?: string;
  jobs?: string;
  keepOwners?: boolean;
  keepPrivileges?: boolean;
  keyFile?: string;
  report?: boolean;
}

const keyFileHelp = `file holding the key (default: PITR_ENCRYPTION_KEY_FILE, then ${ENCRYPTION_KEY_ENV})`;

function needTo(to: string | undefined, command: string): string {
  if (!to) throw badInput('missing_to', `pitr export ${command} needs --to <dir|s3://bucket/prefix>`);
  return to;
}

/** `export list`, `export restore`, `export prune`: registered under `pitr export`. */
export function registerRestoreCommands(exportCommand: Command, run: RunWrapper): void {
  exportCommand
    .command('list')
    .description('the exports at a location, newest first, with their manifests and whether each authenticates with the key')
    .option('--to <dir|s3-url>', 'the directory or s3://bucket/prefix to list')
    .option('--key-file <file>', keyFileHelp)
    .action(
      run<{ to?: string; keyFile?: string }>(async (ctx, opts) => {
        const to = needTo(opts.to, 'list');
        // Without any key the manifests are still listed, marked "no key" (not authenticated).
        const anyKey = opts.keyFile ?? ctx.config.encryptionKeyFile ?? process.env[ENCRYPTION_KEY_ENV];
        const key = anyKey ? masterKey(ctx, opts.keyFile) : undefined;
        const result = await listExports(to, key, storeOptions(ctx));
        ctx.output.result({ location: result.location, exports: result.exports.map(({ manifest: _m, ...e }) => e) }, () => renderExportList(result.location, result.exports));
        return 0;
      }),
    );

  exportCommand
    .command('restore <object>')
    .description('restore an export (<location>/<name>) into an EMPTY database: authenticate, decrypt while streaming, pg_restore, compare every table\'s row count with the manifest')
    .option('--into <postgres-url>', 'the empty database to restore into (refused, exit 3, when it holds anything)')
    .option('--jobs <n>', 'parallel pg_restore: decrypts to a private temporary file first (default 1: streamed in one transaction)')
    .option('--keep-owners', 'restore object owners too (the roles must exist in the target; default: objects belong to the --into user)')
    .option('--keep-privileges', 'restore GRANTs too (the roles must exist in the target; default: none)')
    .option('--no-report', 'do not write report.json and report.md under <work-dir>/reports')
    .option('--key-file <file>', keyFileHelp)
    .action(
      run<RestoreOptions, [string]>(async (ctx, opts, object) => {
        if (!opts.into) throw badInput('missing_into', 'pitr export restore needs --into <postgres://… of an empty database>');
        if (!/^postgres(ql)?:\/\//i.test(opts.into)) throw badInput('bad_database_url', '--into must be a postgres:// URL');
        const jobs = opts.jobs === undefined ? 1 : Number(opts.jobs);
        if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw badInput('bad_jobs', `--jobs must be a whole number from 1 to 64, got "${opts.jobs}"`);
        const key = masterKey(ctx, opts.keyFile);
        const result = await restoreExport({
          object,
          intoUrl: opts.into,
          masterKey: key,
          storeOptions: storeOptions(ctx),
          jobs,
          keepOwners: !!opts.keepOwners,
          keepPrivileges: !!opts.keepPrivileges,
          onProgress: (e) => ctx.output.progress(e),
          signal: ctx.signal,
        });
        const reportDir = opts.report === false ? null : await writeRestoreReport(join(ctx.config.workDir, 'reports'), result);
        ctx.output.result({ ...result, reportDir }, () => renderRestoreMarkdown(result) + (reportDir ? `\nReport: ${reportDir}/report.md\n` : ''));
        return 0;
      }),
    );

  addRetentionOptions(
    exportCommand
      .command('prune')
      .description('delete the exports a grandfather-father-son policy does not keep (daily 30 / weekly 12 / monthly 12 / yearly 7 by default); never the newest, never one that does not authenticate unless --force')
      .option('--to <dir|s3-url>', 'the directory or s3://bucket/prefix to prune')
      .option('--force', 'also delete exports whose manifest does not authenticate (other keys, damaged, unfinished) when the policy does not keep them')
      .option('--key-file <file>', keyFileHelp),
  ).action(
    run<RetentionOptions & { to?: string; force?: boolean; keyFile?: string }>(async (ctx, opts) => {
      const to = needTo(opts.to, 'prune');
      const policy = retentionPolicy(ctx, opts);
      const result = await pruneExports({
        location: to,
        masterKey: masterKey(ctx, opts.keyFile),
        policy,
        dryRun: !!opts.dryRun,
        force: !!opts.force,
        ...(ctx.config.timezone && { timeZone: ctx.config.timezone }),
        storeOptions: storeOptions(ctx),
      });
      ctx.output.result({ dryRun: !!opts.dryRun, policy, location: result.location, exports: result.verdicts, deleted: result.deleted }, () => {
        if (result.verdicts.length === 0) return `No exports in ${result.location}.`;
        const gone = result.verdicts.filter((v) => !v.keep);
        return [
          `Policy: ${describeRetentionPolicy(policy)}. ${result.verdicts.length - gone.length} kept, ${gone.length} ${opts.dryRun ? 'would be deleted' : 'deleted'}.`,
          ...result.verdicts.map((v) => `${v.keep ? 'keep  ' : opts.dryRun ? 'delete' : 'deleted'} ${v.name} (${v.createdAt}): ${v.reasons.join(', ')}`),
        ].join('\n');
      });
      return 0;
    }),
  );
}

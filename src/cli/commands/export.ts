import { badInput } from '../../errors.js';
import { loadEncryptionKey, ENCRYPTION_KEY_ENV } from '../../export/encryption.js';
import { exportFromProvider, verifyExport } from '../../export/index.js';
import type { ExportStoreOptions } from '../../export/store/index.js';
import { renderExport, renderVerify } from '../../report/export.js';
import type { CommandContext } from '../context.js';
import type { CommandRunner } from '../program.js';
import { commandLine } from '../hints.js';
import { addBranchCreationOptions } from '../options.js';
import { registerRestoreCommands } from './export-restore.js';

interface ExportOptions {
  to?: string;
  branch?: string;
  /** Global options (`--at`, `--name` belong to the program): read through optsWithGlobals. */
  at?: string;
  name?: string;
  keyFile?: string;
}

interface VerifyOptions {
  restore?: boolean;
  keyFile?: string;
  to?: string;
  branch?: string;
  at?: string;
  name?: string;
}

/** --key-file > encryptionKeyFile (config, PITR_ENCRYPTION_KEY_FILE) > PITR_ENCRYPTION_KEY. */
export function masterKey(ctx: CommandContext, keyFile: string | undefined): Buffer {
  return loadEncryptionKey({ file: keyFile ?? ctx.config.encryptionKeyFile, env: process.env[ENCRYPTION_KEY_ENV] });
}

export function storeOptions(ctx: CommandContext): ExportStoreOptions {
  return {
    ...(ctx.config.s3Endpoint !== undefined && { s3Endpoint: ctx.config.s3Endpoint }),
    ...(ctx.config.s3Region !== undefined && { s3Region: ctx.config.s3Region }),
  };
}

export const register: CommandRunner = (program, run) => {
  const exportCommand = program
    .command('export')
    .description('encrypted pg_dump of production (or a branch, or a past state) to a directory or S3, with an authenticated manifest')
    .option('--to <dir|s3-url>', 'where to write: a directory or s3://bucket/prefix (S3 endpoint: PITR_S3_ENDPOINT, region: PITR_S3_REGION)')
    .option('--branch <branch>', 'export a pitr branch (id or name) or any postgres:// URL instead of production')
    .option('--at <time>', 'export production as it was then, through a temporary recovery branch (also snapshot:<name>)')
    .option('--name <name>', 'export name (default pitr-<database>-<yyyymmddThhmmssZ>)')
    .option('--key-file <file>', `file holding the 256-bit key, hex or base64 (default: PITR_ENCRYPTION_KEY_FILE, then ${ENCRYPTION_KEY_ENV})`)
    .action(
      run<ExportOptions>(async (ctx, opts) => {
        if (!opts.to) throw badInput('missing_to', 'pitr export needs --to <dir|s3://bucket/prefix>');
        const key = masterKey(ctx, opts.keyFile);
        const at = opts.at !== undefined ? ctx.readTime(opts.at, '(a temporary recovery branch is made for the export)') : undefined;
        const result = await exportFromProvider({
          provider: await ctx.provider(),
          ...(opts.branch !== undefined && { branch: opts.branch }),
          ...(at && { at }),
          location: opts.to,
          ...(opts.name !== undefined && { name: opts.name }),
          masterKey: key,
          storeOptions: storeOptions(ctx),
          onProgress: (e) => ctx.output.progress(e),
          signal: ctx.signal,
        });
        ctx.output.result(result, (r) => renderExport(r, commandLine('pitr', 'export', 'verify', r.manifestObject, '--restore')));
        return 0;
      }),
    );

  addBranchCreationOptions(exportCommand, {});
  exportCommand
    .command('verify <object>')
    .description('authenticate and decrypt an export (path or s3:// URL of its .dump.enc or .manifest.json), check it against its manifest and list it with pg_restore; exit 1 on any failure')
    .option('--restore', 'also restore it into a throw-away cluster and compare every table\'s row count with the manifest')
    .option('--key-file <file>', `file holding the key (default: PITR_ENCRYPTION_KEY_FILE, then ${ENCRYPTION_KEY_ENV})`)
    .action(
      run<VerifyOptions, [string]>(async (ctx, opts, object) => {
        for (const [flag, value] of [['--to', opts.to], ['--branch', opts.branch], ['--at', opts.at], ['--name', opts.name]] as const) {
          if (value !== undefined) throw badInput('bad_option', `pitr export verify takes no ${flag}`);
        }
        const key = masterKey(ctx, opts.keyFile);
        const result = await verifyExport({
          object,
          masterKey: key,
          storeOptions: storeOptions(ctx),
          restore: !!opts.restore,
          onProgress: (e) => ctx.output.progress(e),
          signal: ctx.signal,
        });
        ctx.output.result(result, renderVerify);
        return 0;
      }),
    );

  registerRestoreCommands(exportCommand, run);
};

import { badInput } from '../../errors.js';
import { loadEncryptionKey, ENCRYPTION_KEY_ENV } from '../../export/encryption.js';
import { exportFromProvider, verifyExport, type ExportResult, type VerifyResult } from '../../export/index.js';
import type { ExportStoreOptions } from '../../export/store/index.js';
import type { CommandContext } from '../context.js';
import { renderFields } from '../output.js';
import type { CommandRunner } from '../program.js';
import { commandLine } from '../hints.js';
import { addBranchCreationOptions } from '../options.js';
import { formatBytes } from './backup.js';
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

const rows = (n: number) => n.toLocaleString('en-US');
const plural = (n: number, word: string) => `${rows(n)} ${word}${n === 1 ? '' : 's'}`;
/** `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → `pg_dump 15.18`. */
const shortVersion = (v: string) => v.replace(/^(\S+) \(PostgreSQL\) (\S+).*$/, '$1 $2');

function renderExport(r: ExportResult): string {
  return [
    `Exported ${r.source} to ${r.dumpObject}`,
    renderFields([
      ['manifest', r.manifestObject],
      ['state', r.target ?? 'current'],
      ['dump', `${formatBytes(r.bytes)} (pg_dump -Fc, sha256 ${r.sha256.slice(0, 16)}…), ${formatBytes(r.encryptedBytes)} encrypted (AES-256-GCM, key id ${r.keyId})`],
      ['tables', `${rows(r.tables)} (${plural(r.rows, 'row')}${r.consistent ? ', counted in the dump\'s snapshot' : ''})`],
      ['server', `PostgreSQL ${r.server}; ${shortVersion(r.pgDump)}`],
      ['time', `${r.seconds.toFixed(1)} s (${r.mbPerSecond.toFixed(1)} MB/s of dump)`],
    ]),
    ...r.warnings.map((w) => `warning: ${w}`),
    '',
    `Check it with: ${commandLine('pitr', 'export', 'verify', r.manifestObject, '--restore')}`,
  ].join('\n');
}

function renderVerify(r: VerifyResult): string {
  const m = r.manifest;
  return [
    `Export ${r.name} verified: every chunk authenticated, ${formatBytes(r.authenticated.encryptedBytes)} decrypted in ${r.authenticated.seconds.toFixed(1)} s (${r.authenticated.mbPerSecond.toFixed(1)} MB/s), sizes and sha256 equal the manifest`,
    renderFields([
      ['dump', r.dumpObject],
      ['source', m.source],
      ['state', m.target ?? `current (as of ${m.createdAt})`],
      ['made', `${m.createdAt} by pitr ${m.tool.version} with ${shortVersion(m.pgDump.version)} from PostgreSQL ${m.server.version}`],
      ['pg_restore', `lists ${rows(r.list.entries)} ${r.list.entries === 1 ? 'entry' : 'entries'}, ${rows(r.list.tableData)} with table data`],
      [
        'restore',
        r.restore
          ? `restored into a throw-away PostgreSQL ${r.restore.server} in ${r.restore.seconds.toFixed(1)} s: ${plural(r.restore.tables, 'table')}, ${plural(r.restore.rows, 'row')}, every count equal to the manifest`
          : 'not tried (add --restore)',
      ],
    ]),
  ].join('\n');
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
        ctx.output.result(result, renderExport);
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

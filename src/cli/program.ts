import { Command, CommanderError, Option } from 'commander';
import { createRequire } from 'node:module';
import { badInput, PitrError } from '../errors.js';
import { LOG_LEVELS } from '../log.js';
import { buildContext, type CliIo, type CommandContext } from './context.js';
import { Output } from './output.js';
import { addBranchCreateOptions, createBranch, type BranchCreateOptions } from './commands/branch-create.js';
import * as backup from './commands/backup.js';
import * as branchCreate from './commands/branch-create.js';
import * as branches from './commands/branches.js';
import * as demo from './commands/demo.js';
import * as status from './commands/status.js';
import * as connectionString from './commands/connection-string.js';
import * as restore from './commands/restore.js';
import * as previewCommand from './commands/preview.js';
import * as diffCommand from './commands/diff.js';
import * as recoverCommand from './commands/recover.js';
import * as playbookCommand from './commands/playbook.js';
import * as drillCommand from './commands/drill.js';
import * as snapshotCommand from './commands/snapshot.js';
import * as migrateCommand from './commands/migrate.js';
import * as exportCommand from './commands/export.js';
import * as whenCommand from './commands/when.js';

export type Action<O, A extends unknown[]> = (ctx: CommandContext, options: O, ...args: A) => Promise<number>;
/** Wraps a command handler: builds its context, runs it, and records its exit code. */
export type RunWrapper = <O = Record<string, unknown>, A extends unknown[] = []>(action: Action<O, A>) => (...args: unknown[]) => Promise<void>;
export type CommandRunner = (program: Command, run: RunWrapper) => void;

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

export function buildProgram(io: CliIo, result: { exitCode: number; debug: boolean; json: boolean }): Command {
  const program = new Command('pitr');
  const run: RunWrapper =
    (action) =>
    async (...args: unknown[]) => {
      const command = args.at(-1) as Command;
      // Global options are parsed wherever they appear, so handlers see them merged with their own.
      const options = command.optsWithGlobals();
      const positional = args.slice(0, -2);
      const ctx = await buildContext(command, io);
      result.debug = ctx.config.logLevel === 'debug' || ctx.config.logLevel === 'trace';
      result.exitCode = await (action as Action<unknown, unknown[]>)(ctx, options, ...positional);
    };

  program
    .description('Point-in-time recovery for Postgres: branch production at a past instant, see what changed, copy back only what was lost.')
    .version(version, '-V, --version')
    .addOption(new Option('--provider <provider>', 'where production lives (default: neon when NEON_API_KEY is set, else local)').choices(['neon', 'local']))
    .option('--config <file>', 'config file (default: pitr.config.json|yaml in the current directory)')
    .option('--json', 'print results as JSON on stdout (errors too)')
    .option('-y, --yes', 'answer yes to confirmations (writes to production still need this or a typed confirmation)')
    .option('--no-input', 'never prompt; refuse instead of asking')
    .addOption(new Option('--log-level <level>', 'diagnostics on stderr').choices([...LOG_LEVELS]))
    .option('--tz <zone>', 'IANA time zone for times written without an offset (default UTC)')
    .option('--database-url <url>', 'production (env DATABASE_URL)')
    .option('--backup-dir <dir>', 'base backups (env PITR_BACKUP_DIR)')
    .option('--wal-archive <dir>', 'directory of archived WAL (env PITR_WAL_ARCHIVE)')
    .option('--restore-command <cmd>', 'restore_command for other archives, e.g. pgBackRest or WAL-G (env PITR_RESTORE_COMMAND)')
    .option('--work-dir <dir>', 'where recovery instances and run reports live (env PITR_WORK_DIR, default ./.pitr)')
    .option('--api-host <url>', 'Neon API base URL (env NEON_API_HOST, default https://console.neon.tech/api/v2)')
    .option('--project-id <id>', 'Neon project (env NEON_PROJECT_ID)')
    .option('--source <branch>', 'Neon production branch, name or id (env NEON_SOURCE_BRANCH, default: the default branch)')
    .option('--database <name>', 'Neon database (env NEON_DATABASE, default: the branch\'s only database)')
    .option('--role <name>', 'Neon role (env NEON_ROLE, default: the database owner)')
    .addOption(new Option('--driver <driver>', 'how to reach Postgres: pg (TCP) or ws (WebSocket, env PITR_DRIVER)').choices(['pg', 'ws']))
    .option('--ws-proxy <template>', 'WebSocket proxy for --driver ws, e.g. ws://127.0.0.1:8080/v1?address={host}:{port} (env PITR_WS_PROXY)')
    .showHelpAfterError('(run pitr --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(`pitr: ${s.replace(/^error: /, 'error: ')}`),
    });

  // `pitr --at <time>` is the headline: the same as `pitr branch create --at <time>`.
  addBranchCreateOptions(program);
  program.allowExcessArguments(true).action(
    run<BranchCreateOptions>(async (ctx, options) => {
      const stray = program.args[0];
      if (stray !== undefined) throw badInput('unknown_command', `unknown command "${stray}" (run pitr --help for the list)`);
      if (!options.at) {
        program.outputHelp();
        return 0;
      }
      return createBranch(ctx, options);
    }),
  );

  for (const module of [branchCreate, branches, previewCommand, diffCommand, recoverCommand, playbookCommand, drillCommand, snapshotCommand, migrateCommand, exportCommand, connectionString, restore, backup, status, demo, whenCommand]) module.register(program, run);
  return program;
}

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const result = { exitCode: 0, debug: false, json: argv.includes('--json') };
  const program = buildProgram(io, result);
  try {
    await program.parseAsync(argv as string[]);
    return result.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return 2;
    }
    const output = new Output({ json: result.json, stdout: io.stdout as never, stderr: io.stderr as never });
    const debug = result.debug || argv.some((a, i) => a === '--log-level' && /debug|trace/.test(argv[i + 1] ?? '')) || /debug|trace/.test(io.env.PITR_LOG_LEVEL ?? '');
    if (io.signal.aborted && !(err instanceof PitrError)) {
      return output.error(new PitrError('interrupted', 'interrupted'), debug);
    }
    return output.error(err, debug);
  }
}

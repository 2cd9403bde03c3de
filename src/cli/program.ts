import type { Command as CommandType, CommanderError as CommanderErrorType, Option as OptionType } from 'commander';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { LOG_LEVELS } from '../log-levels.js';
import type { CliIo, CommandContext } from './context.js';
import { addBranchCreateOptions, type BranchCreationOptions } from './options.js';

// commander is CommonJS: require() skips the ESM wrapper's export scan, measurably faster at start-up.
const { Command, CommanderError, Option } = createRequire(import.meta.url)('commander') as {
  Command: typeof CommandType;
  CommanderError: typeof CommanderErrorType;
  Option: typeof OptionType;
};
type Command = CommandType;

export type Action<O, A extends unknown[]> = (ctx: CommandContext, options: O, ...args: A) => Promise<number>;
/** Wraps a command handler: builds its context, runs it, and records its exit code. */
export type RunWrapper = <O = Record<string, unknown>, A extends unknown[] = []>(action: Action<O, A>) => (...args: unknown[]) => Promise<void>;
export type CommandRunner = (program: Command, run: RunWrapper) => void;
type CommandModule = { register: CommandRunner };

interface CommandEntry {
  name: string;
  alias?: string;
  /** Arguments as the root help shows them. */
  args?: string;
  description: string;
  hidden?: boolean;
  load: () => Promise<CommandModule>;
}

// One loader per module (a module may register several commands); completion walks every
// command, so it loads them all.
const recoverModule = () => import('./commands/recover.js');
const completion = () => import('./commands/completion.js');

/**
 * Every top-level command, in help order. Only the module of the command being run is loaded
 * (with the libraries it needs): start-up is paid on every call, by every playbook step that
 * shells out and in every recovery's time-to-queryable. The others appear in the root help from
 * this table (test/unit/cli-commands.test.ts keeps it equal to the modules).
 */
export const COMMANDS: readonly CommandEntry[] = [
  { name: 'branch', args: '[command]', description: 'recovery branches (see also: branches)', load: () => import('./commands/branch-create.js') },
  { name: 'branches', args: '[command]', description: 'list, delete and prune the recovery branches pitr created', load: () => import('./commands/branches.js') },
  { name: 'preview', args: '[branch]', description: 'what differs between a recovery branch (or --at <time>) and production: schema, row counts, missing/changed rows', load: () => import('./commands/preview.js') },
  { name: 'diff', args: '<table>', description: 'the rows of one table that differ between a recovery branch (or --at <time>) and production', load: () => import('./commands/diff.js') },
  { name: 'recover', args: '<tables...>', description: 'copy chosen rows from a recovery branch back into production, in one transaction, after a plan and a confirmation', load: recoverModule },
  { name: 'undo', args: '<run-id>', description: 'reverse a recovery exactly (rows changed since are left alone and reported)', load: recoverModule },
  { name: 'runs', args: '[command]', description: 'recoveries and undos, with their plans and reports', load: recoverModule },
  { name: 'playbook', args: '[command]', description: 'scripted incident runbooks (YAML)', load: () => import('./commands/playbook.js') },
  { name: 'when', description: "find the instant a query's result changed, by bisection over past states: the moment to branch from", load: () => import('./commands/when.js') },
  { name: 'drill', description: 'restore drill: restore production at a time (default now), check it, time it, clean up; exit 1 on any failure', load: () => import('./commands/drill.js') },
  { name: 'snapshot', args: '[command]', description: 'named restore points of production that never expire (use them as --at snapshot:<name>)', load: () => import('./commands/snapshot.js') },
  { name: 'migrate', args: '<command...>', description: 'take a restore point, run a migration command (drizzle-kit, prisma, any), and say exactly how to roll back if it fails', load: () => import('./commands/migrate.js') },
  { name: 'export', args: '[command]', description: 'encrypted pg_dump of production (or a branch, or a past state) to a directory or S3, with an authenticated manifest', load: () => import('./commands/export.js') },
  { name: 'connection-string', alias: 'cs', args: '<branch>', description: 'the full connection URI of a branch (id or name), password included, for psql', load: () => import('./commands/connection-string.js') },
  { name: 'restore', description: 'roll the whole production branch back in place to a point in time, keeping the current state under a name', load: () => import('./commands/restore.js') },
  { name: 'backup', args: '[command]', description: 'base backups of production (local provider)', load: () => import('./commands/backup.js') },
  { name: 'status', description: 'production, recoverable window and archiving health (exit 1 when recovery is at risk)', load: () => import('./commands/status.js') },
  { name: 'demo', description: 'the whole incident on a local Postgres: archiving, backup, traffic, a cascading DELETE, and the accidental-deletion playbook putting it back', load: () => import('./commands/demo.js') },
  { name: 'completion', args: '<shell>', description: 'print a shell completion script: bash, zsh or fish (e.g. source <(pitr completion bash))', load: completion },
  { name: '__complete', hidden: true, description: 'candidates for the last of the given words (used by the completion scripts)', load: completion },
];

export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/**
 * Help is wrapped at 80 columns, or narrower on a narrower terminal: the same text on every
 * terminal and in a pipe, which lets bin/pitr.cjs print the root help rendered at build time
 * (scripts/render-root-help.mjs) without loading the CLI.
 */
export function helpWidth(): number {
  return Math.min(process.stdout.columns || 80, 80);
}

/** The root command and its global options (accepted before or after any command). */
function rootCommand(io: CliIo): Command {
  return new Command('pitr')
    .description('Point-in-time recovery for Postgres: branch production at a past instant, see what changed, copy back only what was lost.')
    .usage('[options] [command]  |  pitr --at <time> [branch options]')
    .version(packageVersion(), '-V, --version')
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
    .configureHelp({ showGlobalOptions: true, helpWidth: helpWidth() })
    .showHelpAfterError('(run pitr --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(`pitr: ${s}`),
    });
}

/**
 * The top-level command an argument list runs, skipping global options and their values;
 * undefined for `pitr`, `pitr --at …` and `pitr --help`.
 */
export function commandOf(program: Command, args: readonly string[]): CommandEntry | undefined {
  // Values of global options and of `pitr --at`'s own options are not command names.
  const headline = addBranchCreateOptions(new Command('at'));
  const takesValue = new Set(
    [...program.options, ...headline.options].filter((o) => o.required || o.optional).flatMap((o) => [o.long, o.short].filter((f): f is string => !!f)),
  );
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return undefined;
    if (arg.startsWith('-')) {
      if (takesValue.has(arg)) i++;
      continue;
    }
    const name = arg === 'help' ? args.slice(i + 1).find((a) => !a.startsWith('-')) : arg;
    return COMMANDS.find((c) => c.name === name || c.alias === name);
  }
  return undefined;
}

/**
 * Builds the program for one argument list. `all` registers every command for real
 * (completion and tests); otherwise only the one being run, the others as help entries.
 */
export async function buildProgram(io: CliIo, result: { exitCode: number; debug: boolean; json: boolean }, args: readonly string[], all = false): Promise<Command> {
  const program = rootCommand(io);
  const run: RunWrapper =
    (action) =>
    async (...actionArgs: unknown[]) => {
      const command = actionArgs.at(-1) as Command;
      // Global options are parsed wherever they appear, so handlers see them merged with their own.
      const options = command.optsWithGlobals();
      const positional = actionArgs.slice(0, -2);
      const { buildContext } = await import('./context.js');
      const ctx = await buildContext(command, io);
      result.debug = ctx.config.logLevel === 'debug' || ctx.config.logLevel === 'trace';
      result.exitCode = await (action as Action<unknown, unknown[]>)(ctx, options, ...positional);
    };

  const selected = all ? undefined : commandOf(program, args);
  if (selected?.load === completion) all = true;
  const modules = new Map<CommandEntry['load'], CommandModule>();
  if (all) for (const entry of COMMANDS) if (!modules.has(entry.load)) modules.set(entry.load, await entry.load());
  const wanted = selected && (await selected.load());
  const registered = new Set<CommandModule>();
  for (const entry of COMMANDS) {
    const module = modules.get(entry.load) ?? (selected && entry.load === selected.load ? wanted : undefined);
    if (module) {
      if (!registered.has(module)) module.register(program, run);
      registered.add(module);
      continue;
    }
    // Shown in the root help only; the command itself is never parsed with this stand-in.
    if (entry.hidden) continue;
    const stub = program.command(entry.name).description(entry.description);
    if (entry.alias) stub.alias(entry.alias);
    if (entry.args) stub.arguments(entry.args);
    // Never silently do nothing should the command detection above ever miss.
    stub.allowUnknownOption().allowExcessArguments().action(() => {
      throw new Error(`pitr ${entry.name} was not loaded`);
    });
  }

  // `pitr --at <time>` is the headline: the same as `pitr branch create --at <time>`. It is the
  // default command, so its options belong to it and not to every other command.
  const headline = addBranchCreateOptions(program.command('at', { isDefault: true, hidden: true }))
    .argument('[command]')
    .action(
      run<BranchCreationOptions & { at?: string; showPassword?: boolean }, [string | undefined]>(async (ctx, options, stray) => {
        const { badInput } = await import('../errors.js');
        if (stray !== undefined) throw badInput('unknown_command', `unknown command "${stray}" (run pitr --help for the list)`);
        if (!options.at) {
          program.outputHelp();
          return 0;
        }
        const { createBranch } = await import('./commands/branch-create.js');
        return createBranch(ctx, options);
      }),
    );
  rejectUnknownSubcommands(program);
  program.addHelpText('after', () => {
    const help = headline.createHelp();
    help.prepareContext({ helpWidth: helpWidth() });
    const width = help.longestOptionTermLength(headline, help);
    const lines = help.visibleOptions(headline).map((o) => help.formatItem(help.optionTerm(o), width, help.optionDescription(o), help));
    return `\nCreate a recovery branch: pitr --at <time> [options] (same as pitr branch create)\n${lines.join('\n')}\n`;
  });
  return program;
}

/**
 * `pitr branches foo` would run the default subcommand (list) with "foo" as an argument; say
 * what it is instead: an unknown command (exit 2).
 */
function rejectUnknownSubcommands(command: Command): void {
  for (const sub of command.commands) rejectUnknownSubcommands(sub);
  const fallback = (command as unknown as { _defaultCommandName?: string | null })._defaultCommandName;
  if (!fallback || command.parent === null) return;
  command.hook('preSubcommand', (parent, sub) => {
    const stray = parent.args[0];
    if (sub.name() === fallback && stray !== undefined && stray !== fallback && !stray.startsWith('-') && sub.registeredArguments.length === 0) {
      const names = parent.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden).map((c) => c.name());
      parent.error(`error: unknown command '${stray}' for 'pitr ${parent.name()}' (its commands: ${names.join(', ')})`, { code: 'commander.unknownCommand', exitCode: 2 });
    }
  });
}

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const result = { exitCode: 0, debug: false, json: argv.includes('--json') };
  try {
    const program = await buildProgram(io, result, argv.slice(2));
    await program.parseAsync(argv as string[]);
    return result.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return 2;
    }
    // Loaded only on the error path: start-up is paid on every call.
    const [{ Output }, { PitrError }] = await Promise.all([import('./output.js'), import('../errors.js')]);
    const output = new Output({ json: result.json, stdout: io.stdout as never, stderr: io.stderr as never });
    const debug = result.debug || argv.some((a, i) => a === '--log-level' && /debug|trace/.test(argv[i + 1] ?? '')) || /debug|trace/.test(io.env.PITR_LOG_LEVEL ?? '');
    if (io.signal.aborted && !(err instanceof PitrError)) {
      return output.error(new PitrError('interrupted', 'interrupted'), debug);
    }
    return output.error(err, debug);
  }
}

import { runGuardedMigration } from '../../migrate/index.js';
import { formatCompactUtc } from '../../time/index.js';
import type { CommandRunner } from '../program.js';
import { commandLine } from '../hints.js';
import { runNamedPlaybook } from './playbook.js';

export const register: CommandRunner = (program, run) => {
  program
    .command('migrate')
    .description('take a restore point, run a migration command (drizzle-kit, prisma, any), and say exactly how to roll back if it fails')
    .argument('<command...>', 'the migration command, after --')
    .option('--name <name>', 'restore point name (default pre-migration-<utc time>)')
    .option('--rollback', 'when the migration fails, run the failed-migration playbook at once (behind its usual confirmation)')
    .action(
      run<{ name?: string; rollback?: boolean }, [string[]]>(async (ctx, opts, command) => {
        const name = opts.name ?? `pre-migration-${formatCompactUtc(new Date()).toLowerCase()}`;
        const streams = ctx.output.childStreams();
        const result = await runGuardedMigration({
          provider: await ctx.provider(),
          snapshotName: name,
          command,
          cwd: process.cwd(),
          env: process.env,
          ...streams,
          onProgress: (e) => ctx.output.progress(e),
        });
        await Promise.all([new Promise<void>((r) => streams.stdout.end(r)), new Promise<void>((r) => streams.stderr.end(r))]);
        const rollbackCommand = commandLine('pitr', 'playbook', 'run', 'failed-migration', '--set', `at=snapshot:${result.snapshot.name}`);
        const failed = result.exitCode !== 0;
        if (failed && opts.rollback) {
          ctx.output.note(`Migration failed (exit ${result.exitCode}${result.startError ? `: ${result.startError}` : ''}); rolling back with: ${rollbackCommand}`);
          await runNamedPlaybook(ctx, 'failed-migration', { at: `snapshot:${result.snapshot.name}` }, false);
          return result.exitCode;
        }
        ctx.output.result({ ...result, failed, rollbackCommand: failed ? rollbackCommand : null }, () =>
          failed
            ? [
                `Migration FAILED (exit ${result.exitCode}${result.signal ? `, ${result.signal}` : ''}${result.startError ? `: ${result.startError}` : ''}) after ${result.seconds.toFixed(1)} s.`,
                `Production before it is kept as snapshot ${result.snapshot.name}. To see what it changed and roll back:`,
                `  ${rollbackCommand}`,
              ].join('\n')
            : [
                `Migration succeeded in ${result.seconds.toFixed(1)} s. Restore point ${result.snapshot.name} kept.`,
                `Branch from it: ${commandLine('pitr', '--at', `snapshot:${result.snapshot.name}`)}`,
                `Remove it:      ${commandLine('pitr', 'snapshot', 'delete', result.snapshot.name)}`,
              ].join('\n'),
        );
        return result.exitCode;
      }),
    );
};

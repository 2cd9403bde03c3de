import type { CommandRunner } from '../program.js';
import { branchProvider } from '../export-branches.js';

export const register: CommandRunner = (program, run) => {
  program
    .command('connection-string <branch>')
    .alias('cs')
    .description('the full connection URI of a branch (id or name), password included, for psql')
    .action(
      run<Record<string, never>, [string]>(async (ctx, _opts, branch) => {
        const uri = await (await branchProvider(ctx)).connectionString(branch);
        // The user asked for the secret: this is the one output that shows it.
        ctx.output.result({ branch, uri }, (d) => d.uri, { reveal: true });
        return 0;
      }),
    );
};

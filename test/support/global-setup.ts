import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { filesMissingPrograms, isCi, skipSummary } from './client-programs.js';
import { hintCommands, hintProblem } from './hints.js';
import { REVEALING_COMMANDS, TEST_DB_PASSWORD, TEST_NEON_API_KEY } from './secrets.js';

/**
 * Builds the CLI once (integration tests drive the real built binary), and collects every CLI
 * run of the whole suite so the teardown can prove no secret ever reached stdout or stderr.
 */
export default function setup(): () => Promise<void> {
  const skipped = skipSummary(filesMissingPrograms());
  if (skipped && isCi()) throw new Error(`CI=true runs every test file: ${skipped.replace(/^SKIPPED/, 'cannot run')}`);
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  execFileSync(process.execPath, ['scripts/render-root-help.mjs'], { stdio: 'inherit' });
  const dir = mkdtempSync(join(tmpdir(), 'pitr-transcripts-'));
  process.env.PITR_TEST_TRANSCRIPTS = dir;
  return async () => {
    const leaks: string[] = [];
    const hints = new Set<string>();
    let runs = 0;
    for (const file of readdirSync(dir)) {
      for (const line of readFileSync(join(dir, file), 'utf8').split('\n').filter(Boolean)) {
        runs++;
        const run = JSON.parse(line) as { args: string[]; stdout: string; stderr: string };
        const all = run.stdout + run.stderr;
        if (all.includes(TEST_NEON_API_KEY)) leaks.push(`API key in: pitr ${run.args.join(' ')}`);
        const revealing = run.args.some((a) => REVEALING_COMMANDS.includes(a));
        if ((!revealing && all.includes(TEST_DB_PASSWORD)) || run.stderr.includes(TEST_DB_PASSWORD)) leaks.push(`password in: pitr ${run.args.join(' ')}`);
        for (const hint of hintCommands(all)) hints.add(hint);
      }
    }
    // Every command pitr told someone to run must run as printed (quoting included).
    const broken: string[] = [];
    for (const hint of hints) {
      const problem = await hintProblem(hint);
      if (problem) broken.push(problem);
    }
    rmSync(dir, { recursive: true, force: true });
    if (leaks.length) throw new Error(`secrets leaked in ${leaks.length} of ${runs} CLI runs:\n${leaks.join('\n')}`);
    process.stdout.write(`secret check: ${runs} CLI runs, no API key or password leaked\n`);
    if (broken.length) throw new Error(`${broken.length} of ${hints.size} hints printed by pitr would not run as printed:\n${broken.join('\n')}`);
    process.stdout.write(`hint check: ${hints.size} distinct hinted commands parse and resolve\n`);
    // Last, so it is the line a reader sees: which files did not run, and why.
    if (skipped) process.stdout.write(`\n${skipped}\n`);
  };
}

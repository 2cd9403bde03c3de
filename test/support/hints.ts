import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { splitShellWords } from '../../src/cli/hints.js';
import { buildProgram } from '../../src/cli/program.js';

/** `Label: pitr …` lines: the commands pitr tells people to run next. */
const HINT = /^\s*[A-Z][A-Za-z ]*:\s+(pitr\s.*)$/;

export function hintCommands(output: string): string[] {
  return output.split('\n').flatMap((line) => {
    const m = HINT.exec(line);
    return m ? [m[1]!] : [];
  });
}

const quiet = () => new Writable({ write: (_c, _e, done) => done() });

/**
 * Why a hinted command would not run as printed (undefined when it would): it must split into
 * words like a shell does, and pitr's own parser must accept those words (known command and
 * options, the right number of arguments). Nothing is executed: every action is a no-op.
 */
export async function hintProblem(command: string): Promise<string | undefined> {
  let words: string[];
  try {
    words = splitShellWords(command);
  } catch (err) {
    return (err as Error).message;
  }
  if (words[0] !== 'pitr') return `does not start with pitr: ${command}`;
  let error = '';
  const io = { stdout: quiet(), stderr: new Writable({ write: (c, _e, done) => ((error += String(c)), done()) }), stdinIsTTY: false, env: {}, cwd: '/', signal: new AbortController().signal };
  const program = await buildProgram(io, { exitCode: 0, debug: false, json: false }, words.slice(1), true);
  const silence = (c: Command) => {
    c.action(() => undefined);
    c.commands.forEach(silence);
  };
  program.commands.forEach(silence);
  try {
    await program.parseAsync(words.slice(1), { from: 'user' });
    return undefined;
  } catch {
    return `${command}: ${error.split('\n')[0]}`;
  }
}

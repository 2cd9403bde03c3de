import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { buildProgram, commandOf, COMMANDS, runCli } from '../../src/cli/program.js';
import type { CliIo } from '../../src/cli/context.js';

/**
 * Every command rejects an option it does not declare, an unknown subcommand and an excess
 * argument with exit 2, before any work starts.
 */
function io(): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  const sink = (append: (s: string) => void) => new Writable({ write: (chunk, _e, done) => (append(String(chunk)), done()) });
  return {
    stdout: sink((s) => (out += s)),
    stderr: sink((s) => (err += s)),
    stdinIsTTY: false,
    env: {},
    cwd: '/nonexistent-pitr-test-dir',
    signal: new AbortController().signal,
    out: () => out,
    err: () => err,
  };
}

const hidden = (c: Command) => (c as unknown as { _hidden?: boolean })._hidden;

/** Every runnable command path with placeholder values for its required arguments. */
async function allCommands(): Promise<{ path: string[]; args: string[]; variadic: boolean; subcommands: string[] }[]> {
  const program = await buildProgram(io(), { exitCode: 0, debug: false, json: false }, [], true);
  const found: { path: string[]; args: string[]; variadic: boolean; subcommands: string[] }[] = [];
  const walk = (command: Command, path: string[]) => {
    for (const sub of command.commands) {
      if (hidden(sub) || sub.name() === 'help') continue;
      const here = [...path, sub.name()];
      // Optional arguments get a value too, so the next word is one too many.
      const args = sub.registeredArguments.map((a) => `x-${a.name()}`);
      found.push({ path: here, args, variadic: sub.registeredArguments.some((a) => a.variadic), subcommands: sub.commands.map((c) => c.name()) });
      walk(sub, here);
    }
  };
  walk(program, []);
  return found;
}

describe('usage errors on every command', async () => {
  const commands = await allCommands();

  it('covers every top-level command', () => {
    const top = new Set(commands.map((c) => c.path[0]));
    for (const entry of COMMANDS.filter((c) => !c.hidden)) expect(top.has(entry.name), entry.name).toBe(true);
    expect(commands.length).toBeGreaterThan(30);
  });

  it.each(commands.map((c) => [c.path.join(' '), c] as const))('%s: an unknown option is exit 2', async (_name, c) => {
    const x = io();
    const code = await runCli(['node', 'pitr', ...c.path, ...c.args, '--no-such-option'], x);
    expect(code, x.err()).toBe(2);
    expect(x.err()).toContain("unknown option '--no-such-option'");
    expect(x.out()).toBe('');
  });

  it.each(commands.filter((c) => !c.variadic).map((c) => [c.path.join(' '), c] as const))('%s: an excess argument or unknown subcommand is exit 2', async (_name, c) => {
    const x = io();
    const code = await runCli(['node', 'pitr', ...c.path, ...c.args, 'no-such-thing'], x);
    expect(code, x.err()).toBe(2);
    expect(x.err()).toMatch(c.subcommands.length ? /unknown command 'no-such-thing'|too many arguments/ : /too many arguments/);
    expect(x.out()).toBe('');
  });

  it('finds the command to load past global options and option values', async () => {
    const program = await buildProgram(io(), { exitCode: 0, debug: false, json: false }, []);
    expect(commandOf(program, ['--work-dir', 'status', 'diff', 't'])?.name).toBe('diff');
    expect(commandOf(program, ['--name', 'status', '--at', '-15m'])).toBeUndefined();
    expect(commandOf(program, ['cs', 'b1'])?.name).toBe('connection-string');
    expect(commandOf(program, ['help', 'recover'])?.name).toBe('recover');
  });

  it('preview takes the branch as an argument or as --branch, not two different ones', async () => {
    const help = io();
    await runCli(['node', 'pitr', 'preview', '--help'], help);
    expect(help.out()).toContain('--branch <branch>');
    const both = io();
    expect(await runCli(['node', 'pitr', 'preview', 'a', '--branch', 'b', '--provider', 'local'], both)).toBe(2);
    expect(both.err()).toContain('give the branch once');
  });

  it('an unknown top-level command is exit 2', async () => {
    const x = io();
    expect(await runCli(['node', 'pitr', 'no-such-thing'], x)).toBe(2);
    expect(x.err()).toContain('unknown command "no-such-thing"');
  });

  it('branch options belong to the commands that create branches', async () => {
    for (const args of [['status', '--ttl', '5m'], ['diff', 't', '--offline'], ['branches', '--archive-wait', '1s'], ['preview', '--name', 'x']]) {
      const x = io();
      expect(await runCli(['node', 'pitr', ...args], x), args.join(' ')).toBe(2);
    }
    const help = io();
    expect(await runCli(['node', 'pitr', 'recover', '--help'], help)).toBe(0);
    expect(help.out()).toContain('--at <time>');
    const drill = io();
    await runCli(['node', 'pitr', 'drill', '--help'], drill);
    expect(drill.out()).toMatch(/--timeout[\s\S]*--offline[\s\S]*--archive-wait/);
    expect(drill.out()).not.toContain('--ttl');
  });

  it('the root help lists every command from the table, with the descriptions the modules declare', async () => {
    const program = await buildProgram(io(), { exitCode: 0, debug: false, json: false }, [], true);
    for (const entry of COMMANDS.filter((c) => !c.hidden)) {
      const real = program.commands.find((c) => c.name() === entry.name);
      expect(real?.description(), entry.name).toBe(entry.description);
      expect(real?.aliases()[0], entry.name).toBe(entry.alias);
    }
  });
});

describe('pitr --help from the executable', () => {
  const bin = fileURLToPath(new URL('../../bin/pitr.cjs', import.meta.url));
  const main = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
  const run = (file: string, args: string[]) => spawnSync(process.execPath, [file, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  it('prints the text stored at build time, byte for byte what the CLI renders', () => {
    const rendered = run(main, ['--help']);
    expect(rendered.status).toBe(0);
    expect(rendered.stdout).toContain('Usage: pitr');
    for (const flag of ['--help', '-h']) {
      const fast = run(bin, [flag]);
      expect(fast.status).toBe(0);
      expect(fast.stdout).toBe(rendered.stdout);
    }
  });

  it('is also what the CLI prints on a 200-column terminal (help wraps at 80 everywhere)', () => {
    // util-linux script(1) gives the CLI a real terminal; skipped only where it does not exist.
    const probe = spawnSync('script', ['--version'], { encoding: 'utf8' });
    if (probe.status !== 0) return;
    const tty = spawnSync('script', ['-qec', `stty cols 200; ${JSON.stringify(process.execPath)} ${JSON.stringify(main)} --help`, '/dev/null'], { encoding: 'utf8' });
    expect(tty.status).toBe(0);
    expect(tty.stdout.replace(/\r/g, '')).toBe(run(main, ['--help']).stdout);
  });
});

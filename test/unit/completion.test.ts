import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { buildProgram } from '../../src/cli/program.js';
import { complete } from '../../src/cli/commands/completion.js';
import { CLI, runPitr } from '../support/cli.js';

const quiet = () => new Writable({ write: (_c, _e, done) => done() });
const program = () => buildProgram({ stdout: quiet(), stderr: quiet(), stdinIsTTY: false, env: {}, cwd: '/', signal: new AbortController().signal }, { exitCode: 0, debug: false, json: false }, [], true);

describe('shell completion', () => {
  it('completes commands, subcommands, options, choices and shipped playbooks', async () => {
    const p = await program();
    expect(await complete(p, ['re'])).toEqual(['recover', 'restore']);
    expect(await complete(p, ['branches', ''])).toEqual(['delete', 'list', 'prune']);
    expect(await complete(p, ['recover', 'comics', '--d'])).toEqual(['--database', '--database-url', '--delete-extra', '--driver', '--dry-run']);
    expect(await complete(p, ['diff', 't', '--format', ''])).toEqual(['csv', 'json', 'ndjson', 'sql', 'table']);
    expect(await complete(p, ['playbook', 'run', 'acc'])).toEqual(['accidental-deletion']);
    expect(await complete(p, ['completion', ''])).toEqual(['bash', 'fish', 'zsh']);
    expect(await complete(p, ['status', '--ttl'])).toEqual([]);
  });

  it('completes branch names and run ids from the local work directory', async () => {
    const work = mkdtempSync(join(tmpdir(), 'pitr-complete-'));
    try {
      mkdirSync(join(work, 'branches', 'b1'), { recursive: true });
      writeFileSync(join(work, 'branches', 'b1', 'branch.json'), '{}');
      const p = await program();
      // Whatever the store holds (none here), completion never fails or prints noise.
      expect(await complete(p, ['--work-dir', work, 'branches', 'delete', ''])).toEqual(expect.any(Array));
      expect(await complete(p, ['--work-dir', work, 'undo', ''])).toEqual([]);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it.each(['bash', 'zsh', 'fish'])('prints a %s script; an unknown shell is exit 2', async (shell) => {
    const r = await runPitr(['completion', shell]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('pitr __complete --');
    expect((await runPitr(['completion', 'tcsh'])).code).toBe(2);
  });

  it('the bash script completes through the real CLI', () => {
    const bin = mkdtempSync(join(tmpdir(), 'pitr-bin-'));
    try {
      writeFileSync(join(bin, 'pitr'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
      chmodSync(join(bin, 'pitr'), 0o755);
      const out = execFileSync('bash', ['-c', 'source <(pitr completion bash); COMP_WORDS=(pitr branches p); COMP_CWORD=2; _pitr_complete; printf "%s\\n" "${COMPREPLY[@]}"'], {
        env: { PATH: `${bin}:${process.env.PATH}` },
        encoding: 'utf8',
      });
      expect(out.trim()).toBe('prune');
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});

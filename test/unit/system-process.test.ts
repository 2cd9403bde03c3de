import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PitrError } from '../../src/errors.js';
import { freeLoopbackPort } from '../../src/system/ports.js';
import { commandLine, ensureServerDir, isRoot, lastMeaningfulLine, minimalEnvironment, postgresOsUser, run, runChecked, serverEnvironment } from '../../src/system/process.js';

const saved = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
  Object.assign(process.env, saved);
});

describe('environments of child programs', () => {
  it("a throw-away cluster's programs get locale, PATH and temp dir only: no key, token or URL", () => {
    Object.assign(process.env, { PITR_ENCRYPTION_KEY: 'k', AWS_SECRET_ACCESS_KEY: 's', NEON_API_KEY: 'n', DATABASE_URL: 'postgres://x', PGPASSWORD: 'p', LC_ALL: 'C.UTF-8', TZ: 'UTC' });
    const env = minimalEnvironment({ PGDATA: '/d' });
    expect(Object.keys(env).sort()).toEqual(expect.arrayContaining(['LC_ALL', 'PATH', 'PGDATA', 'TZ']));
    for (const k of Object.keys(env)) expect(k).toMatch(/^(PATH|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|PGDATA)$/);
  });

  it("a recovery instance keeps the user's restore_command settings but none of pitr's or production's", () => {
    Object.assign(process.env, { PITR_ENCRYPTION_KEY: 'k', NEON_API_KEY: 'n', DATABASE_URL: 'postgres://x', PGPASSWORD: 'p', PGHOST: 'prod', PGDATA: '/d', AWS_PROFILE: 'wal', PGBACKREST_STANZA: 'main' });
    const env = serverEnvironment();
    for (const k of ['PITR_ENCRYPTION_KEY', 'NEON_API_KEY', 'DATABASE_URL', 'PGPASSWORD', 'PGHOST']) expect(env, k).not.toHaveProperty(k);
    expect(env).toMatchObject({ PGDATA: '/d', AWS_PROFILE: 'wal', PGBACKREST_STANZA: 'main' });
  });
});

describe('run', () => {
  it('collects output and the exit code, and never throws for a non-zero exit', async () => {
    expect(await run('sh', ['-c', 'echo out; echo err >&2; exit 3'])).toEqual({ code: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('feeds stdin when given input', async () => {
    expect((await run('cat', [], { input: 'hello' })).stdout).toBe('hello');
  });

  it('a missing program is a one-line PitrError naming it', async () => {
    const err = await run('pitr-no-such-program', []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PitrError);
    expect((err as PitrError).message).toBe('cannot run pitr-no-such-program: not found');
  });

  it('kills a program that outlives its timeout', async () => {
    const started = Date.now();
    const r = await run('sleep', ['30'], { timeoutMs: 200 });
    expect(r.code).not.toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('runs server programs as the postgres user when pitr is root', () => {
    expect(commandLine('initdb', ['-D', 'x'])).toEqual(['initdb', ['-D', 'x']]);
    expect(commandLine('initdb', ['-D', 'x'], true)).toEqual(isRoot() ? ['runuser', ['-u', 'postgres', '--', 'initdb', '-D', 'x']] : ['initdb', ['-D', 'x']]);
  });
});

describe('runChecked', () => {
  it('turns a failure into its error line, with passwords masked in headline and detail', async () => {
    const script = 'echo "connecting to postgres://app:s3cret-pw@db/x"; echo "FATAL: password authentication failed for postgres://app:s3cret-pw@db/x" >&2; echo "retrying" >&2; exit 1';
    const err = (await runChecked('sh', ['-c', script], { what: 'pg_dump', code: 'dump_failed' }).catch((e: unknown) => e)) as PitrError;
    expect(err.code).toBe('dump_failed');
    expect(err.message).toBe('pg_dump failed: FATAL: password authentication failed for postgres://app:********@db/x');
    expect(err.detail).toContain('retrying');
    expect(`${err.message}${err.detail}`).not.toContain('s3cret-pw');
  });

  it('passes a success through', async () => {
    expect((await runChecked('sh', ['-c', 'echo ok'], { what: 'x' })).stdout).toBe('ok\n');
  });

  it('lastMeaningfulLine prefers the last error-like line, else the last line, else says there was none', () => {
    expect(lastMeaningfulLine('could not connect\nhint: try again\n')).toBe('could not connect');
    expect(lastMeaningfulLine('one\ntwo\n\n')).toBe('two');
    expect(lastMeaningfulLine('  \n')).toBe('no output');
  });
});

describe.runIf(isRoot())('server directories when pitr runs as root', () => {
  let root: string;
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('hands the directory to postgres (0700) and makes the parents it creates passable only (root:postgres 0710)', async () => {
    root = await mkdtemp(join(tmpdir(), 'pitr-dirs-'));
    const { uid, gid } = await postgresOsUser();
    const target = join(root, 'a', 'b', 'data');
    await ensureServerDir(target);
    const data = await stat(target);
    expect([data.uid, data.gid, data.mode & 0o777]).toEqual([uid, gid, 0o700]);
    const parent = await stat(join(root, 'a', 'b'));
    expect([parent.uid, parent.gid, parent.mode & 0o777]).toEqual([0, gid, 0o710]);
  });
});

describe('freeLoopbackPort', () => {
  it('returns a port that can be listened on at once', async () => {
    const port = await freeLoopbackPort();
    expect(port).toBeGreaterThan(0);
    const { createServer } = await import('node:net');
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
    await new Promise((r) => server.close(r));
  });
});

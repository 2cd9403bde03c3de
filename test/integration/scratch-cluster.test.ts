import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { localEnv, makeTempRoot, startCluster, type TestCluster } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';
import { createLocalCluster, type LocalCluster } from '../../src/system/local-cluster.js';
import { run } from '../../src/system/process.js';
import { serverPid } from '../../src/system/postgres-server.js';

/**
 * Finding 7 of the safety review (issue 13): the throw-away cluster of `export verify --restore`
 * holds a copy of production. It takes no passwordless login, its server gets none of pitr's
 * secrets in its environment, and the dump is restored by a role without superuser rights.
 */
describe('throw-away clusters', () => {
  let root: string;
  let scratch: LocalCluster;
  const planted = { PITR_ENCRYPTION_KEY: 'k'.repeat(64), AWS_SECRET_ACCESS_KEY: 'aws-secret', NEON_API_KEY: 'neon-key', DATABASE_URL: 'postgresql://u:p@h/db' };

  beforeAll(async () => {
    root = await makeTempRoot('pitr-scratch-');
    const saved = { ...process.env };
    Object.assign(process.env, planted);
    try {
      scratch = await createLocalCluster({ root: join(root, 'c'), fast: true, password: true });
    } finally {
      for (const k of Object.keys(planted)) if (saved[k] === undefined) delete process.env[k];
    }
  });
  afterAll(async () => {
    await scratch?.destroy();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('finding 7: the scratch cluster refuses a passwordless TCP login and accepts its own URL', async () => {
    const psql = scratch.bin.path('psql');
    const bare = await run(existsSync(psql) ? psql : 'psql', ['-w', '-h', '127.0.0.1', '-p', String(scratch.port), '-U', 'postgres', '-d', 'postgres', '-c', 'select 1'], {
      env: { PATH: process.env.PATH },
    });
    expect(bare.code).not.toBe(0);
    expect(bare.stderr).toMatch(/password/);
    const wrong = new pg.Client({ host: '127.0.0.1', port: scratch.port, user: 'postgres', database: 'postgres', password: 'guess' });
    await expect(wrong.connect()).rejects.toMatchObject({ code: '28P01' });
    const ok = new pg.Client({ connectionString: scratch.url });
    await ok.connect();
    await ok.end();
  });

  it('finding 7: the scratch server inherits none of pitr\'s secrets', async () => {
    const pid = await serverPid(scratch.dataDir);
    const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0');
    const names = environ.map((e) => e.split('=')[0]);
    for (const k of Object.keys(planted)) expect(names).not.toContain(k);
    expect(names.filter((n) => /^(PITR_|AWS_|NEON_|PGPASS|PGUSER|PGHOST)/.test(n!))).toEqual([]);
  });
});

describe('export verify --restore runs the dump with no superuser rights', () => {
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  const marker = `/tmp/pitr-verify-marker-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-verify-');
    await prod.query('create database app');
    const c = new pg.Client({ connectionString: prod.urlFor('app') });
    await c.connect();
    // A CHECK whose function, run by a superuser anywhere but production, runs a shell command.
    await c.query(`
      create function public.evil(int) returns boolean language plpgsql as $f$
      begin
        if current_setting('port')::int <> ${prod.port} then
          execute format('copy (select 1) to program %L', 'touch ${marker}');
        end if;
        return true;
      end $f$;
      create table public.x(id int primary key check (public.evil(id)));
      insert into public.x select generate_series(1, 10);`);
    await c.end();
    env = { ...localEnv(prod, work), DATABASE_URL: prod.urlFor('app'), PITR_ENCRYPTION_KEY: randomBytes(32).toString('hex') };
  });
  afterAll(async () => {
    await rm(marker, { force: true });
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('finding 7: a function in the dumped schema cannot run COPY … TO PROGRAM during the restore', async () => {
    const out = join(work, 'exports');
    const e = await runPitr(['export', '--to', out, '--json'], env);
    expect(e.code, e.stderr).toBe(0);
    const v = await runPitr(['export', 'verify', e.json.manifestObject ?? e.json.manifest ?? out, '--restore', '--json'], env);
    expect(existsSync(marker)).toBe(false);
    // The restore role may not run programs: the restore fails loudly instead.
    expect(v.code).toBe(1);
    expect(v.json?.error?.code, v.stderr).toBe('export_restore_failed');
    expect(v.stderr).toMatch(/permission denied|must be superuser|pg_execute_server_program/);
  });
});

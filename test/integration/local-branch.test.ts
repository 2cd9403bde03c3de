import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { makeTempRoot, startCluster, type TestCluster } from '../support/cluster.js';
import { cliTranscript, processesUsing, runPitr } from '../support/cli.js';
import { hasProgram } from '../support/client-programs.js';
import { TEST_DB_PASSWORD } from '../support/secrets.js';
import { rm } from 'node:fs/promises';
import { describePointInTime, parsePointInTime } from '../../src/time/index.js';

/**
 * The foundation's acceptance path, through the real built CLI and real WAL replay:
 * archive → ~100k rows → pitr backup → writes → T1 → delete → writes → pitr --at T1.
 */
describe('pitr --at on the local provider', () => {
  const PASSWORD = TEST_DB_PASSWORD;
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  let t1: string;
  let lsn1: string;
  let before: { users: number; orders: number };

  async function countsAt(url: string) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query(`
        select (select count(*) from users)::int as users,
               (select count(*) from orders)::int as orders,
               (select count(*) from users where id <= 500)::int as deleted_users,
               (select count(*) from orders where user_id <= 500)::int as deleted_orders,
               (select count(*) from users where name = 'before-t1')::int as before_t1,
               (select count(*) from users where name like 'after-t1%')::int as after_t1`);
      return rows[0];
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-work-');
    // Trust auth ignores the password, but pitr must still never print it.
    const url = prod.url.replace('postgres@', `postgres:${PASSWORD}@`);
    env = { DATABASE_URL: url, PITR_BACKUP_DIR: join(work, 'backups'), PITR_WAL_ARCHIVE: prod.archiveDir, PITR_WORK_DIR: join(work, 'pitr') };
    await prod.query(`
      create table users(id int primary key, name text not null);
      create table orders(id bigint primary key, user_id int not null references users on delete cascade, total numeric(10,2));
      insert into users select g, 'user ' || g from generate_series(1, 20000) g;
      insert into orders select g, 1 + g % 20000, g % 1000 from generate_series(1, 80000) g;`);
    const backup = await runPitr(['backup', '--json'], env);
    expect(backup.code, backup.stderr).toBe(0);
    // pg_basebackup's manifest checked by pg_verifybackup; on a machine with only the embedded
    // server binaries the backup is a file copy with no manifest, and must not claim a check.
    expect(backup.json.verified).toBe(hasProgram('pg_basebackup') && hasProgram('pg_verifybackup'));
    await prod.query(`insert into users values (30001, 'before-t1')`);
    await new Promise((r) => setTimeout(r, 20));
    const [mark] = await prod.query<{ now: string; lsn: string }>(`select now()::text as now, pg_current_wal_insert_lsn()::text as lsn`);
    t1 = mark!.now;
    lsn1 = mark!.lsn;
    await prod.query(`delete from users where id <= 500`); // cascades to their orders
    await prod.query(`insert into users select g, 'after-t1 ' || g from generate_series(40001, 40100) g`);
    await prod.query(`select pg_switch_wal()`);
    before = (await countsAt(prod.url)) as { users: number; orders: number };
  });

  afterAll(async () => {
    await runPitr(['branches', 'list', '--json'], env).then(async (r) => {
      for (const b of r.json?.branches ?? []) await runPitr(['branches', 'delete', b.id], env);
    });
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('creates a branch at T1 that holds the deleted rows and none of the later writes', async () => {
    const r = await runPitr(['--at', t1, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(Object.keys(r.json)).toEqual(expect.arrayContaining(['id', 'name', 'provider', 'target', 'connectionUrl', 'createdAt', 'expiresAt', 'secondsToQueryable']));
    expect(r.json.provider).toBe('local');
    expect(r.json.target).toBe(describePointInTime(parsePointInTime(t1)));
    expect(r.json.target).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(r.json.connectionUrl).not.toContain(PASSWORD);
    expect(r.json.secondsToQueryable).toBeGreaterThan(0);
    const branchUrl = r.json.connectionUrl.replace(/:\*+@/, `:${PASSWORD}@`);
    const counts = await countsAt(branchUrl);
    expect(counts).toMatchObject({ users: 20001, orders: 80000, deleted_users: 500, before_t1: 1, after_t1: 0 });
    expect(counts.deleted_orders).toBeGreaterThan(0);
    // Production is untouched.
    expect(await countsAt(prod.url)).toEqual(before);
    expect(before).toMatchObject({ deleted_users: 0, after_t1: 100 });
  });

  it('creates a branch at an LSN', async () => {
    const r = await runPitr(['branch', 'create', '--at', `lsn:${lsn1}`, '--json', '--show-password'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.target).toBe(`lsn:${lsn1}`);
    expect(r.json.connectionUrl).toContain(PASSWORD);
    expect(await countsAt(r.json.connectionUrl)).toMatchObject({ users: 20001, deleted_users: 500, before_t1: 1, after_t1: 0 });
  });

  it('works with any restore_command instead of a WAL archive directory (pgBackRest, WAL-G)', async () => {
    const { PITR_WAL_ARCHIVE, ...rest } = env;
    const r = await runPitr(['--at', t1, '--json', '--show-password'], { ...rest, PITR_RESTORE_COMMAND: `cp '${PITR_WAL_ARCHIVE}/%f' "%p"` });
    expect(r.code, r.stderr).toBe(0);
    expect(await countsAt(r.json.connectionUrl)).toMatchObject({ users: 20001, deleted_users: 500, after_t1: 0 });
    expect((await runPitr(['branches', 'delete', r.json.id], env)).code).toBe(0);
  });

  it('prints the resolved UTC instant for a relative time', async () => {
    const r = await runPitr(['--at', '1s ago', '--ttl', '1s', '--name', 'short-lived'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/target: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z \(from "1s ago"\)/);
    expect(r.stdout).toContain('Recovery branch ready');
    expect(r.stdout).toContain('short-lived');
  });

  it('lists, prunes expired and deletes branches', async () => {
    const list = await runPitr(['branches', '--json'], env);
    expect(list.code).toBe(0);
    expect(list.json.branches).toHaveLength(3);
    expect(list.json.branches.every((b: { state: string }) => b.state === 'running')).toBe(true);
    const human = await runPitr(['branches', 'list'], env);
    expect(human.stdout).toMatch(/ID\s+NAME\s+TARGET\s+SOURCE\s+CREATED\s+EXPIRES\s+STATE/);

    await new Promise((r) => setTimeout(r, 1100));
    const dry = await runPitr(['branches', 'prune', '--dry-run', '--json'], env);
    expect(dry.json.deleted.map((b: { name: string }) => b.name)).toEqual(['short-lived']);
    const prune = await runPitr(['branches', 'prune', '--json'], env);
    expect(prune.code).toBe(0);
    expect(prune.json.deleted.map((b: { name: string }) => b.name)).toEqual(['short-lived']);
    const pruned = prune.json.deleted[0];
    expect(existsSync(join(env.PITR_WORK_DIR!, 'branches', pruned.id))).toBe(false);

    const remaining = (await runPitr(['branches', '--json'], env)).json.branches;
    expect(remaining).toHaveLength(2);
    const del = await runPitr(['branches', 'delete', remaining[0].name], env);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toContain(`Deleted ${remaining[0].name}`);
    expect(await processesUsing(join(env.PITR_WORK_DIR!, 'branches', remaining[0].id))).toEqual([]);
    const unknown = await runPitr(['branches', 'delete', 'no-such-branch'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no recovery branch "no-such-branch"');
  });

  it('reports status: window, archiving health, backups', async () => {
    const r = await runPitr(['status', '--json'], env);
    expect(r.code, r.stdout).toBe(0);
    expect(r.json).toMatchObject({ provider: 'local', ok: true, problems: [] });
    expect(r.json.pgVersion).toMatch(/^\d+\.\d+/);
    expect(r.json.window.oldest).toBeTruthy();
    expect(r.json.details.archiver.failedCount).toBe(0);
    expect(r.json.details.backups).toHaveLength(1);
  });

  it('never prints the production password', () => {
    expect(cliTranscript.length).toBeGreaterThan(10);
    const leaks = cliTranscript.filter((run) => !run.args.includes('--show-password') && (run.stdout + run.stderr).includes(PASSWORD));
    expect(leaks.map((run) => run.args.join(' '))).toEqual([]);
    // Even when asked to show it, the password goes to stdout only.
    expect(cliTranscript.filter((run) => run.stderr.includes(PASSWORD))).toEqual([]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { localEnv, makeTempRoot, startCluster, type TestCluster } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';

/**
 * `pitr backup --method copy`: a base backup without pg_basebackup (the low-level API and a file
 * copy), proven by restoring it with real WAL replay to a time after it.
 */
describe('pitr backup --method copy', () => {
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-copy-');
    env = localEnv(prod, work);
    await prod.query(`create table items(id int primary key, note text); insert into items select g, 'item ' || g from generate_series(1, 50000) g`);
  });

  afterAll(async () => {
    const list = await runPitr(['branches', 'list', '--json'], env);
    for (const b of list.json?.branches ?? []) await runPitr(['branches', 'delete', b.id], env);
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('copies the data directory between pg_backup_start and pg_backup_stop, with its label and without the excluded files', async () => {
    const r = await runPitr(['backup', '--method', 'copy', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ method: 'copy', verified: false, timeline: 1 });
    expect(r.json.startWal).toMatch(/^[0-9A-F]{24}$/);
    expect(r.json.bytes).toBeGreaterThan(1_000_000);
    const data = join(r.json.dir, 'data');
    expect(existsSync(join(data, 'backup_label'))).toBe(true);
    expect(existsSync(join(data, 'postmaster.pid'))).toBe(false);
    expect(await readdir(join(data, 'pg_wal'))).toEqual(['archive_status']);
    const list = await runPitr(['backup', 'list', '--json'], env);
    expect(list.code, list.stderr).toBe(0);
  });

  it('restores to a time after the backup: the deleted rows are back, the later rows are not', async () => {
    await prod.query(`insert into items values (100001, 'before the mistake')`);
    await new Promise((r) => setTimeout(r, 20));
    const [{ now }] = (await prod.query<{ now: string }>('select now()::text as now')) as [{ now: string }];
    await prod.query(`delete from items where id <= 1000; insert into items values (100002, 'after the mistake')`);
    const r = await runPitr(['--at', now, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const pg = await import('pg');
    const client = new pg.default.Client({ connectionString: r.json.connectionUrl });
    await client.connect();
    try {
      const { rows } = await client.query(`select count(*)::int as n, count(*) filter (where id > 100000)::int as later, max(id)::int as max from items`);
      expect(rows[0]).toEqual({ n: 50001, later: 1, max: 100001 });
    } finally {
      await client.end();
    }
  });

  it('refuses an unknown --method (usage error)', async () => {
    const r = await runPitr(['backup', '--method', 'rsync'], env);
    expect(r.code).toBe(2);
  });
});

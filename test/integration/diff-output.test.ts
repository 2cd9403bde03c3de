import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import pg from 'pg';
import { makeTempRoot, startCluster, type TestCluster, localEnv } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';

/**
 * pitr diff output is data: byte-exact in every format (values that look like secrets included),
 * complete unless --limit says otherwise, any cut announced, and the sql format round-trips.
 */
const VAULT_ROWS = `
  (1, 'p@ss:word', 'Bearer abc.def.ghi', 'password=topsecret', 'postgres://bob:hunter2@db.example.com/app', E'tab\\there, "quoted"\\nnext line'),
  (2, 'hunter2', 'tok_123456', 'secret=1', 'https://alice:pw@host/x', 'plain'),
  (3, null, '', 'x', 'mysql://u:p@h', E'back\\\\slash'),
  (4, 'same', 'same', 'same', 'same', 'same')`;

describe('pitr diff output', () => {
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  let branchName: string;
  /** Each table as it was at the branch's point in time, in COPY text form. */
  const before: Record<string, string> = {};

  const snapshot = async (client: pg.ClientBase, table: string) => {
    const { rows } = await client.query(`select t::text as r from ${table} t order by t::text collate "C"`);
    return rows.map((r) => r.r).join('\n');
  };

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-diff-output-');
    env = localEnv(prod, work);
    await prod.query(`
      create table vault (id int primary key, password text, token text, secret text, url text, note text);
      insert into vault values ${VAULT_ROWS};
      create table bulk (id int primary key, v text);
      insert into bulk select g, 'v' || g from generate_series(1, 1500) g;
      create table keyless (a text, b int);
      insert into keyless values ('x', 1), ('x', 1), ('x', 1), ('y', null), ('z', 3);`);
    expect((await runPitr(['backup'], env)).code).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    const c = new pg.Client({ connectionString: prod.url });
    await c.connect();
    const t1 = (await c.query('select now()::text as now')).rows[0].now;
    for (const t of ['vault', 'bulk', 'keyless']) before[t] = await snapshot(c, t);
    await c.end();
    await new Promise((r) => setTimeout(r, 20));
    await prod.query(`
      delete from vault where id = 1;
      update vault set url = 'https://alice:NEWpw@host/x', password = 'changed' where id = 2;
      insert into vault values (100, 'token-like', 'Bearer zzz', 'secret', 'postgres://eve:evil@x/y', 'only in production');
      delete from bulk where id > 300;
      insert into bulk values (5000, 'extra');
      delete from keyless where ctid in (select ctid from keyless where a = 'x' limit 2);
      insert into keyless values ('w', 9), ('z', 3);`);
    const branch = await runPitr(['--at', t1, '--json', '--name', 'output-test'], env);
    expect(branch.code, branch.stderr).toBe(0);
    branchName = branch.json.name;
  });

  afterAll(async () => {
    await runPitr(['branches', 'delete', branchName], env);
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('values that look like secrets come out exactly, in every format', async () => {
    const ndjson = await runPitr(['diff', 'vault', '--format', 'ndjson'], env);
    expect(ndjson.code, ndjson.stderr).toBe(0);
    const lines = ndjson.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((d) => [d.kind, d.key.id])).toEqual([['missing', '1'], ['changed', '2'], ['extra', '100']]);
    expect(lines[0].branch).toEqual({ id: '1', password: 'p@ss:word', token: 'Bearer abc.def.ghi', secret: 'password=topsecret', url: 'postgres://bob:hunter2@db.example.com/app', note: 'tab\there, "quoted"\nnext line' });
    expect(lines[1]).toMatchObject({ changedColumns: ['password', 'url'], branch: { url: 'https://alice:pw@host/x', password: 'hunter2' }, production: { url: 'https://alice:NEWpw@host/x', password: 'changed' } });
    expect(lines[2].production.url).toBe('postgres://eve:evil@x/y');

    const json = await runPitr(['diff', 'vault', '--json'], env);
    expect(json.json.truncated).toBe(false);
    expect(json.json.differences.map((d: { branch: unknown; production: unknown }) => [d.branch, d.production])).toEqual(lines.map((d) => [d.branch, d.production]));

    const csv = await runPitr(['diff', 'vault', '--format', 'csv'], env);
    expect(csv.stdout).toBe(
      [
        'kind,changed_columns,id,password,token,secret,url,note',
        'missing,,1,p@ss:word,Bearer abc.def.ghi,password=topsecret,postgres://bob:hunter2@db.example.com/app,"tab\there, ""quoted""\nnext line"',
        'changed,password url,2,hunter2,tok_123456,secret=1,https://alice:pw@host/x,plain',
        'extra,,100,token-like,Bearer zzz,secret,postgres://eve:evil@x/y,only in production',
        '',
      ].join('\n'),
    );

    const table = await runPitr(['diff', 'vault'], env);
    expect(table.stdout).toContain('url: https://alice:pw@host/x → https://alice:NEWpw@host/x');
    expect(table.stdout).toContain('password=p@ss:word token=Bearer abc.def.ghi secret=password=topsecret url=postgres://bob:hunter2@db.exam');
    expect(table.stdout).not.toContain('********');
  });

  it('sql output applied to production makes each table equal to the branch', async () => {
    for (const t of ['vault', 'bulk', 'keyless']) {
      const sql = await runPitr(['diff', t, '--format', 'sql', '--delete-extra'], env);
      expect(sql.code, sql.stderr).toBe(0);
      const c = new pg.Client({ connectionString: prod.url });
      await c.connect();
      try {
        // A copy of production: the same rows, inside a transaction that is rolled back.
        await c.query('begin');
        expect(await snapshot(c, t)).not.toBe(before[t]);
        await c.query(sql.stdout);
        expect(await snapshot(c, t)).toBe(before[t]);
      } finally {
        await c.query('rollback');
        await c.end();
      }
    }
    const kept = await runPitr(['diff', 'vault', '--format', 'sql'], env);
    expect(kept.stdout.trim().split('\n').at(-1)).toBe(`-- only in production (kept): "public"."vault" WHERE "id" = '100'::integer`);
  });

  it('streaming formats print every difference; cuts are announced; --json says truncated', async () => {
    const all = await runPitr(['diff', 'bulk', '--format', 'ndjson'], env);
    expect(all.stdout.trim().split('\n')).toHaveLength(1201);
    expect(all.stderr).not.toContain('truncated');
    const csv = await runPitr(['diff', 'bulk', '--format', 'csv'], env);
    expect(csv.stdout.trim().split('\n')).toHaveLength(1202);
    const sql = await runPitr(['diff', 'bulk', '--format', 'sql'], env);
    expect(sql.stdout.trim().split('\n')).toHaveLength(1201);

    const cut = await runPitr(['diff', 'bulk', '--format', 'ndjson', '--limit', '10'], env);
    expect(cut.stdout.trim().split('\n')).toHaveLength(10);
    expect(cut.stderr).toContain('output truncated: 10 of 1201 differences printed (--limit 10)');

    const json = await runPitr(['diff', 'bulk', '--json'], env);
    expect(json.json.differences).toHaveLength(1000);
    expect(json.json.truncated).toBe(true);
    expect(json.stderr).toContain('output truncated: 1000 of 1201');
    const table = await runPitr(['diff', 'bulk'], env);
    expect(table.stdout).toContain('(showing 1000 of 1201; raise --limit for more)');
  });

  it('--jobs changes nothing in the output; bad --jobs is a usage error', async () => {
    const one = await runPitr(['diff', 'bulk', '--format', 'ndjson', '--jobs', '1'], env);
    const four = await runPitr(['diff', 'bulk', '--format', 'ndjson', '--jobs', '4'], env);
    expect(four.code, four.stderr).toBe(0);
    expect(four.stdout).toBe(one.stdout);
    for (const bad of ['0', 'x', '1.5', '65']) {
      const r = await runPitr(['diff', 'bulk', '--jobs', bad], env);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toContain('--jobs must be');
    }
    expect((await runPitr(['preview', '--jobs', '0'], env)).code).toBe(2);
    expect((await runPitr(['diff', 'bulk', '--delete-extra'], env)).code).toBe(2);
  });
});

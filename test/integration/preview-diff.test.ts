import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { makeTempRoot, startCluster, type TestCluster, localEnv } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';

/** preview and diff through the built CLI, against a real recovery branch (local provider). */
describe('pitr preview / pitr diff', () => {
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  let branchName: string;

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-diff-');
    env = localEnv(prod, work);
    await prod.query(`
      create table authors(id int primary key, name text not null);
      create table "Books"(id int primary key, author_id int not null references authors on delete cascade, title text, price numeric(8,2));
      create table tags(label text, n int);
      insert into authors select g, 'author ' || g from generate_series(1, 200) g;
      insert into "Books" select g, 1 + g % 200, E'title\\t' || g, g / 10.0 from generate_series(1, 3000) g;
      insert into tags select 'tag' || (g % 5), g % 5 from generate_series(1, 50) g;
      analyze;`);
    expect((await runPitr(['backup'], env)).code).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    const t1 = (await prod.query<{ now: string }>('select now()::text as now'))[0]!.now;
    await new Promise((r) => setTimeout(r, 20));
    // The incident: a cascading delete and a bad update; then normal traffic.
    await prod.query(`delete from authors where id = 7`);
    await prod.query(`update "Books" set price = 0 where id between 100 and 119`);
    await prod.query(`insert into authors values (1000, 'new author')`);
    await prod.query(`delete from tags where ctid in (select ctid from tags where label = 'tag1' limit 2)`);
    await prod.query(`alter table authors add column bio text`);
    const branch = await runPitr(['--at', t1, '--json', '--name', 'before-incident'], env);
    expect(branch.code, branch.stderr).toBe(0);
    branchName = branch.json.name;
  });

  afterAll(async () => {
    await runPitr(['branches', 'delete', branchName], env);
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('preview: schema diff and per-table impact, sorted by impact, newest branch by default', async () => {
    const r = await runPitr(['preview', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.schema.changedTables).toEqual([expect.objectContaining({ table: 'public.authors', columnsOnlyInProduction: ['bio'] })]);
    const byTable = Object.fromEntries(r.json.tables.map((t: { table: string }) => [t.table, t]));
    expect(byTable['public.Books']).toMatchObject({ missing: 15, changed: 20, extra: 0, branchRows: 3000, productionRows: 2985, changedColumnCounts: { price: 20 } });
    expect(byTable['public.authors']).toMatchObject({ missing: 1, changed: 0, extra: 1 });
    expect(byTable['public.tags']).toMatchObject({ mode: 'multiset', missing: 2, extra: 0 });
    expect(r.json.tables[0].table).toBe('public.Books');
    const human = await runPitr(['preview', branchName], env);
    expect(human.stdout).toMatch(/public\.Books\s+3,000\s+2,985\s+15\s+20\s+0\s+price \(20\)/);
    expect(human.stdout).toContain('~ public.authors: +bio');
    const check = await runPitr(['preview', '--exit-code', '--tables', 'tags'], env);
    expect(check.code).toBe(1);
  });

  it('diff: the rows, in every format, with --where and --columns', async () => {
    const json = await runPitr(['diff', '"Books"', '--json', '--where', 'author_id = 7 or id between 100 and 119'], env);
    expect(json.code, json.stderr).toBe(0);
    expect(json.json.summary).toMatchObject({ missing: 15, changed: 20, extra: 0, keyColumns: ['id'] });
    const changed = json.json.differences.find((d: { kind: string }) => d.kind === 'changed');
    expect(changed).toMatchObject({ changedColumns: ['price'], production: { price: '0.00' } });

    const sql = await runPitr(['diff', '"Books"', '--format', 'sql', '--where', 'id in (6, 100)'], env);
    expect(sql.stdout.trim().split('\n')).toEqual([
      `INSERT INTO "public"."Books" ("id", "author_id", "title", "price") VALUES ('6'::integer, '7'::integer, 'title	6'::text, '0.60'::numeric(8,2));`,
      `UPDATE "public"."Books" SET "price" = '10.00'::numeric(8,2) WHERE "id" = '100'::integer;`,
    ]);
    const csv = await runPitr(['diff', 'authors', '--format', 'csv'], env);
    expect(csv.stdout.trim().split('\n')).toEqual(['kind,changed_columns,id,name', 'missing,,7,author 7', 'extra,,1000,new author']);
    const ndjson = await runPitr(['diff', 'authors', '--format', 'ndjson', '--limit', '1'], env);
    expect(ndjson.stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(ndjson.stdout).kind).toBe('missing');
    const cols = await runPitr(['diff', '"Books"', '--columns', 'title', '--json'], env);
    expect(cols.json.summary).toMatchObject({ comparedColumns: ['id', 'title'], changed: 0, missing: 15 });
    const exit = await runPitr(['diff', 'authors', '--exit-code'], env);
    expect(exit.code).toBe(1);
    expect(exit.stdout).toContain('1 missing in production, 0 changed, 1 only in production');
  });

  it('--where cannot change anything: multiple statements, writes and locks are refused', async () => {
    for (const where of ['1=1; drop table authors', `id = (select 1 from (delete from authors returning 1) x)`, 'id in (select id from authors for update)', 'nosuchcolumn = 1']) {
      const r = await runPitr(['diff', 'authors', '--where', where], env);
      expect(r.code, where).toBe(2);
      expect(r.stderr).toContain('--where was rejected by Postgres');
    }
    expect((await prod.query<{ n: number }>('select count(*)::int as n from authors'))[0]!.n).toBe(200);
  });

  it('bad input: unknown table, --at without time travel, bad --limit', async () => {
    const unknown = await runPitr(['diff', 'nope'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown table nope \(tables: .*authors/);
    const at = await runPitr(['preview', '--at', '-1m'], env);
    expect(at.code).toBe(2);
    expect(at.stderr).toContain('needs the neon provider');
    expect((await runPitr(['diff', 'authors', '--limit', 'x'], env)).code).toBe(2);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { copyOut } from '../../src/db/copy-out.js';
import { updatePlanned, updatesStayAsWritten } from '../../src/recover/write.js';
import type { RecoverySessions } from '../../src/recover/session.js';
import type { TableSelection } from '../../src/recover/selection.js';
import type { TableInfo } from '../../src/db/introspect.js';
import { startCluster, type TestCluster } from '../support/cluster.js';

/**
 * The pieces the many-changes recovery path is built from, on a real server: the lean COPY OUT
 * reader against pg-copy-streams (bytes, errors, the connection afterwards), and the UPDATE
 * whose own comparison with the branch rows stands in for the final verification.
 */
let db: TestCluster;
let client: pg.Client;

beforeAll(async () => {
  db = await startCluster();
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
}, 120_000);

afterAll(async () => {
  await client?.end();
  await db?.destroy();
});

async function bytesOf(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk);
  return Buffer.concat(parts);
}

describe('copyOut', () => {
  it('yields the same bytes as pg-copy-streams, text and binary, with notices in between, and leaves the connection usable', async () => {
    await client.query(`create or replace function noisy(i int) returns int language plpgsql as $$ begin if i % 5000 = 0 then raise notice 'row %', i; end if; return i; end $$`);
    for (const format of ['', ' (format binary)']) {
      const sql = `copy (select noisy(g), md5(g::text), g::float8 / 3, case when g % 7 = 0 then null else repeat('x', g % 300) end from generate_series(1, 20000) g) to stdout${format}`;
      const ours = copyOut(client, sql);
      const mine = await bytesOf(ours);
      const theirs = await bytesOf(client.query(copyTo(sql)));
      expect(mine.equals(theirs)).toBe(true);
      expect(ours.rowCount).toBe(20000);
    }
    expect((await client.query('select 41 + 1 as n')).rows[0].n).toBe(42);
  });

  it("fails with the server's error when the query fails mid-stream, and the connection still answers", async () => {
    const failing = copyOut(client, `copy (select 1 / (20000 - g) from generate_series(1, 30000) g) to stdout`);
    await expect(bytesOf(failing)).rejects.toThrow('division by zero');
    expect((await client.query('select 1 as n')).rows[0].n).toBe(1);
  });

  it('a reader that gives up mid-stream closes that connection: its next query fails at once instead of waiting forever', async () => {
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    other.on('error', () => undefined);
    const stream = copyOut(other, `copy (select g, md5(g::text) from generate_series(1, 2000000) g) to stdout`);
    for await (const chunk of stream) {
      expect(chunk.length).toBeGreaterThan(0);
      break;
    }
    const started = Date.now();
    await expect(other.query('select 1')).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(5000);
    await other.end().catch(() => undefined);
  });
});

describe('the UPDATE as its own verification', () => {
  const selection = {
    role: 'root',
    key: ['id'],
    columns: [
      { name: 'id', type: 'integer', identity: null },
      { name: 'a', type: 'text', identity: null },
      { name: 'b', type: 'integer', identity: null },
    ],
    production: { schema: 'public', name: 'fold', qualified: '"public"."fold"' },
  } as unknown as TableSelection;

  it('counts updated rows that differ from their branch row (here: a plan that leaves out a differing column)', async () => {
    await client.query('begin');
    try {
      await client.query(`create table fold (id int primary key, a text, b int); insert into fold select g, 'bad', 0 from generate_series(1, 10) g`);
      await client.query(`create temp table pitr_src_0 on commit drop as select g as id, 'good'::text as a, g as b from generate_series(1, 10) g`);
      await client.query(`create temp table pitr_applied_0 on commit drop as select id, ''::text as action, 0::int8 as h from fold where false`);
      const plan = (columns: string) =>
        `create temp table pitr_plan_0 on commit drop as select f.id, 'update'::text as action, hashtextextended(row(f.id, f.a, f.b)::text, 0) as old_hash, null::int8 as new_hash, ${columns}::text[] as cols from fold f`;
      await client.query(plan(`'{a}'`));
      // Column b differs on every row but is not in the plan: each updated row is still not the branch's.
      expect(await updatePlanned(client, selection, 0)).toBe(10);
      expect((await client.query(`select count(*)::int as n from pitr_applied_0 where action = 'update'`)).rows[0].n).toBe(10);
      await client.query(`drop table pitr_plan_0; delete from pitr_applied_0; update fold set a = 'bad', b = 0`);
      await client.query(plan(`'{a,b}'`));
      expect(await updatePlanned(client, selection, 0)).toBe(0);
      expect((await client.query(`select count(*)::int as n from fold where a = 'good' and b = id`)).rows[0].n).toBe(10);
    } finally {
      await client.query('rollback');
    }
  });

  it('is trusted only when nothing can touch the rows before COMMIT', () => {
    const parent = { schema: 'public', name: 'fold', qualified: '"public"."fold"', foreignKeys: [] } as unknown as TableInfo;
    const child = (onUpdate: string) =>
      ({ schema: 'public', name: 'kid', qualified: '"public"."kid"', root: null, foreignKeys: [{ refSchema: 'public', refTable: 'fold', onUpdate, onDelete: 'no action', columns: ['f'] }] }) as unknown as TableInfo;
    const s = { ...selection, production: parent } as TableSelection;
    const one = { selections: [s] } as unknown as RecoverySessions;
    expect(updatesStayAsWritten(one, s, false, [parent, child('no action')])).toBe(true);
    expect(updatesStayAsWritten(one, s, false, [parent, child('restrict')])).toBe(true);
    expect(updatesStayAsWritten(one, s, false, [parent, child('cascade')])).toBe(false);
    expect(updatesStayAsWritten(one, s, false, [parent, child('set null')])).toBe(false);
    expect(updatesStayAsWritten(one, s, true, [parent])).toBe(false);
    expect(updatesStayAsWritten({ selections: [s, s] } as unknown as RecoverySessions, s, false, [parent])).toBe(false);
    expect(updatesStayAsWritten(one, { ...s, role: 'cascade' } as TableSelection, false, [parent])).toBe(false);
  });
});

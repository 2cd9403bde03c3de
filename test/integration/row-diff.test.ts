import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startBranchAndProduction, type TestCluster } from '../support/cluster.js';
import { findTable, introspect } from '../../src/db/introspect.js';
import { parseTableName } from '../../src/db/sql.js';
import { beginDiffSession, diffKeys, diffRows, endDiffSession, type KeyDifference, type RowDiffOptions, type RowDifference } from '../../src/diff/rows.js';
import { diffSchemas } from '../../src/diff/schema.js';
import { mulberry32 } from '../support/random.js';
import { startWsProxy } from '../support/ws-proxy.js';
import { connect, useDriver } from '../../src/db/connect.js';

/**
 * The row diff must give exactly what a naive full comparison gives. Two databases of one
 * cluster stand in for branch and production; random deletes, updates and inserts hit
 * "production". Every table is diffed several ways: tiny segments bisected down to 7 rows, one
 * big segment settled by cost, 16-row segments streamed in small batches over 4 jobs (packed
 * texts, or COPY), and every segment settled without a first pass (a single integer key).
 * Only the branch is analyzed: production has no planner statistics at all.
 */
const SCHEMA = `
create type mood as enum ('sad', 'ok', 'happy');
create table typed (
  id int primary key, f8 float8, n numeric, t text, b bytea, j jsonb, arr int[], ts timestamptz, e mood, u uuid);
create table composite (a int not null, b text not null, v text, primary key (a, b));
create table icu_keys (k text collate "und-x-icu" primary key, v int);
create table "Order Items" ("Order Id" int primary key, "Qty" int, "select" text);
create table nokey (a int, b text);
create table uniq (code text not null unique, v int);
create table events (id int, at date, payload text, primary key (id, at)) partition by range (at);
create table events_2025 partition of events for values from ('2025-01-01') to ('2026-01-01');
create table events_2026 partition of events for values from ('2026-01-01') to ('2027-01-01');
create table ckeys (k text primary key, v text);
create table ukeys (id uuid primary key, v text, n int);
`;

const POPULATE = `
insert into typed select g,
  case g % 7 when 0 then 'NaN'::float8 when 1 then '-0'::float8 when 2 then 'Infinity'::float8 when 3 then null else g / 3.0 end,
  case when g % 5 = 0 then null else g * 1.000001 end,
  case g % 4 when 0 then null when 1 then E'tab\\there\\nnewline ü ' || g when 2 then '' else 'plain ' || g end,
  case when g % 6 = 0 then null else decode(md5(g::text), 'hex') end,
  case when g % 3 = 0 then null else jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'x')) end,
  case when g % 8 = 0 then null else array[g, g + 1, null] end,
  timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute',
  (array['sad', 'ok', 'happy'])[1 + g % 3]::mood,
  md5(g::text)::uuid
from generate_series(1, 600) g;
insert into composite select g % 20, 'k' || (g / 20), 'v' || g from generate_series(1, 500) g;
insert into icu_keys select k, ord::int from unnest(array['a', 'B', 'b', 'A', 'é', 'e', 'Z', 'z', '_x', ' sp', 'Ä', 'ä', '10', '9', 'ß', 'ss']) with ordinality as x(k, ord);
insert into icu_keys select 'key ' || g, g from generate_series(1, 300) g;
insert into "Order Items" select g, g % 10, 'sel' || g from generate_series(1, 400) g;
insert into nokey select g % 50, 'dup' || (g % 50) from generate_series(1, 400) g;
insert into uniq select 'code-' || g, g from generate_series(1, 300) g;
insert into events select g, date '2025-06-01' + (g % 400), 'p' || g from generate_series(1, 500) g;
insert into ckeys select k, 'v' || ord from unnest(array['a', 'B', 'b', 'A', 'é', 'e', 'Z', 'z', '_x', ' sp', 'Ä', 'ä']) with ordinality as x(k, ord);
insert into ckeys select 'c' || g, 'w' || g from generate_series(1, 200) g;
insert into ukeys select md5('u' || g)::uuid, 'u' || g, g from generate_series(1, 400) g;
`;

/** Random deletes, updates and inserts, as SQL, for "production". */
function mutations(seed: number): string[] {
  const r = mulberry32(seed);
  const pick = (n: number) => 1 + Math.floor(r() * n);
  const out: string[] = [];
  for (let i = 0; i < 40; i++) {
    const id = pick(600);
    const choice = r();
    if (choice < 0.3) out.push(`delete from typed where id = ${id}`);
    else if (choice < 0.45) out.push(`update typed set f8 = ${r() < 0.5 ? "'NaN'" : r() < 0.5 ? "'-0'" : r()} where id = ${id}`);
    else if (choice < 0.55) out.push(`update typed set t = E'changed\\t${i}' , j = null where id = ${id}`);
    else if (choice < 0.65) out.push(`update typed set b = '\\x00ff', arr = array[${i}] where id = ${id}`);
    else if (choice < 0.75) out.push(`insert into typed (id, t) values (${1000 + i}, 'new ${i}') on conflict do nothing`);
    else if (choice < 0.85) out.push(`update typed set ts = ts + interval '1 microsecond', e = 'happy' where id = ${id}`);
    else out.push(`update typed set n = n + 0.000001, u = null where id = ${id}`);
  }
  for (let i = 0; i < 15; i++) {
    out.push(`delete from composite where a = ${pick(20) - 1} and b = 'k${pick(25) - 1}'`);
    out.push(`update composite set v = 'upd${i}' where a = ${pick(20) - 1} and b = 'k${pick(25) - 1}'`);
    out.push(`update icu_keys set v = -v where k = 'key ${pick(300)}'`);
    out.push(`delete from "Order Items" where "Order Id" = ${pick(400)}`);
    out.push(`update "Order Items" set "Qty" = null where "Order Id" = ${pick(400)}`);
    out.push(`delete from nokey where ctid = (select ctid from nokey where a = ${pick(50) - 1} limit 1)`);
    out.push(`update uniq set v = 0 where code = 'code-${pick(300)}'`);
    out.push(`update events set payload = 'changed' where id = ${pick(500)}`);
    out.push(`delete from events where id = ${pick(500)}`);
  }
  for (let i = 0; i < 10; i++) out.push(`update ckeys set v = 'x${i}' where k = 'c${pick(200)}'`, `delete from ckeys where k = 'c${pick(200)}'`);
  for (let i = 0; i < 12; i++) {
    out.push(`update ukeys set n = -n where id = md5('u${pick(400)}')::uuid`, `delete from ukeys where id = md5('u${pick(400)}')::uuid`);
    out.push(`insert into ukeys values (md5('new${i}')::uuid, 'new', ${i}) on conflict do nothing`);
  }
  // The ends of the uuid order: one below every key, one above.
  out.push(`insert into ukeys values ('00000000-0000-0000-0000-000000000000', 'low', 0), ('ffffffff-ffff-ffff-ffff-ffffffffffff', 'high', 0)`);
  out.push(`delete from ckeys where k in ('é', 'B')`, `update ckeys set v = null where k = 'ä'`, `insert into ckeys values ('Ω', 'new'), ('0', 'new')`);
  out.push(`delete from icu_keys where k in ('é', 'B', 'ß')`, `insert into icu_keys values ('Ω', 1), ('0', 2)`);
  out.push(`insert into nokey values (7, 'dup7'), (7, 'dup7'), (999, 'only in production')`);
  out.push(`insert into composite values (99, 'new', 'n')`, `insert into events values (9999, '2026-03-01', 'new')`);
  // Values swapped between two neighbouring rows (one segment): a row hash that combines its
  // columns linearly, summed per segment, would not see it.
  const swap = (table: string, key: string, column: string, a: number, b: number) =>
    `update ${table} o set ${column} = (select ${column} from ${table} x where x.${key} = case o.${key} when ${a} then ${b} else ${a} end) where ${key} in (${a}, ${b})`;
  out.push(swap('"Order Items"', '"Order Id"', '"Qty"', 201, 202), swap('typed', 'id', 'ts', 301, 302), swap('typed', 'id', 'u', 303, 304));
  return out;
}

type Row = Record<string, string | null>;

async function naive(client: pg.Client, table: string, cols: string[], key: string[] | null) {
  const { rows } = await client.query<Row>(`select ${cols.map((c) => `"${c.replace(/"/g, '""')}"::text as "${c.replace(/"/g, '""')}"`).join(', ')} from ${table}`);
  const map = new Map<string, { row: Row; count: number }>();
  for (const row of rows) {
    const id = JSON.stringify(key ? key.map((k) => row[k]) : cols.map((c) => row[c]));
    const entry = map.get(id);
    if (entry) entry.count++;
    else map.set(id, { row, count: 1 });
  }
  return map;
}

describe('row diff = naive full comparison', () => {
  let cluster: TestCluster;
  let branch: pg.Client;
  let production: pg.Client;

  beforeAll(async () => {
    ({ cluster, branch, production } = await startBranchAndProduction());
    for (const c of [branch, production]) {
      await c.query(SCHEMA);
      await c.query(POPULATE);
    }
    await branch.query('analyze');
    // Production sorts the text key by bytes, the branch by the database collation: the diff
    // cannot range that key through an index and picks segments out of scans instead.
    await production.query(`alter table ckeys alter column k type text collate "C"`);
    for (const sql of mutations(42)) await production.query(sql);
    // A migration half-done in production: a dropped column, a retyped one.
    await production.query(`alter table uniq add column note text; alter table "Order Items" drop column "select"; alter table composite alter column v type varchar(40)`);
  });

  afterAll(async () => {
    await branch?.end();
    await production?.end();
    await cluster?.destroy();
  });

  const tables = ['typed', 'composite', 'icu_keys', '"Order Items"', 'nokey', 'uniq', 'events', 'ckeys', 'ukeys'];
  type Way = 'bisect' | 'auto' | 'stream' | 'copy' | 'dense' | 'dense-copy';
  const WAYS: Record<Way, Partial<RowDiffOptions>> = {
    bisect: { segmentRows: 7, strategy: 'bisect', jobs: 1 },
    auto: { segmentRows: 100000, strategy: 'auto', jobs: 1 },
    stream: { segmentRows: 16, strategy: 'stream', jobs: 4, batchRows: 40 },
    // Integer keys stream by COPY, as a segment too big for one text per side does.
    copy: { segmentRows: 16, strategy: 'stream', jobs: 2, batchRows: 40, packedRows: 0 },
    // A single integer key settled without the first pass, as dense changes are (others ignore it): packed, and by COPY.
    dense: { segmentRows: 16, skipChecksums: true, jobs: 3, batchRows: 40 },
    'dense-copy': { segmentRows: 16, skipChecksums: true, jobs: 2, batchRows: 40, packedRows: 0 },
  };

  /** Runs the diff inside fresh diff sessions, with job connections to the same databases. */
  async function diffOf(name: string, options: Partial<RowDiffOptions>) {
    const [bSchema, pSchema] = [await introspect(branch), await introspect(production)];
    const bTable = findTable(bSchema, parseTableName(name))!;
    const pTable = findTable(pSchema, parseTableName(name))!;
    await Promise.all([beginDiffSession(branch), beginDiffSession(production)]);
    const found: RowDifference[] = [];
    const connect = (db: string) => async () => {
      const c = new pg.Client({ connectionString: cluster.urlFor(db) });
      await c.connect();
      return c;
    };
    try {
      const summary = await diffRows({
        branch,
        production,
        branchTable: bTable,
        productionTable: pTable,
        connect: { branch: connect('branch'), production: connect('production') },
        ...options,
        onDifference: (d) => void found.push(d),
      });
      return { summary, found, bTable, pTable };
    } finally {
      await Promise.all([endDiffSession(branch), endDiffSession(production)]);
    }
  }

  it('production has no planner statistics; the branch has', async () => {
    const stats = async (c: pg.Client) => Number((await c.query(`select count(*) from pg_stats where schemaname = 'public'`)).rows[0].count);
    expect(await stats(production)).toBe(0);
    expect(await stats(branch)).toBeGreaterThan(0);
  });

  it.each(tables.flatMap((t) => (Object.keys(WAYS) as Way[]).map((w) => [t, w] as [string, Way])))('%s (%s)', async (name, way) => {
    const { summary, found, bTable, pTable } = await diffOf(name, WAYS[way]);
    const cols = summary.comparedColumns;
    const key = summary.mode === 'key' ? summary.keyColumns : null;
    await Promise.all([beginDiffSession(branch), beginDiffSession(production)]);
    const [nb, np] = await Promise.all([naive(branch, bTable.qualified, cols, key), naive(production, pTable.qualified, cols, key)]);
    await Promise.all([endDiffSession(branch), endDiffSession(production)]);
    const expected: string[] = [];
    for (const [id, b] of nb) {
      const p = np.get(id);
      if (!key) {
        const d = b.count - (p?.count ?? 0);
        if (d > 0) expected.push(`missing ${id} x${d}`);
        if (d < 0) expected.push(`extra ${id} x${-d}`);
      } else if (!p) expected.push(`missing ${id} x1`);
      else {
        const changed = cols.filter((c) => b.row[c] !== p.row[c]);
        if (changed.length) expected.push(`changed ${id} x1 ${changed.join(',')}`);
      }
    }
    for (const [id, p] of np) if (!nb.has(id)) expected.push(`extra ${id} x${p.count}`);
    const actual = found.map((d) => {
      const values = (d.branch ?? d.production)!;
      const id = JSON.stringify(key ? key.map((k) => values[k]) : cols.map((c) => values[c]));
      return `${d.kind} ${id} x${d.count}${d.kind === 'changed' ? ` ${d.changedColumns.join(',')}` : ''}`;
    });
    expect(actual.sort()).toEqual(expected.sort());
    expect(expected.length).toBeGreaterThan(0);
    expect(summary.missing + summary.changed + summary.extra).toBe(found.reduce((s, d) => s + d.count, 0));
    if (way === 'bisect') expect(summary.segments.checked + summary.segments.initial).toBeGreaterThan(1);
    if (way === 'stream') expect(summary.jobs).toBe(4);
    if (key) expect([summary.branchRows, summary.productionRows]).toEqual([nb.size, np.size]);
    // Without a first pass, every range is settled (a first pass settles the differing ones only).
    if (way.startsWith('dense') && ['typed', '"Order Items"', 'ukeys'].includes(name)) expect(summary.segments.fetched).toBe(summary.segments.initial);
  });

  it.each(tables)('%s: the same differences in the same order for --jobs 1 and --jobs 4', async (name) => {
    for (const strategy of ['stream', 'bisect'] as const) {
      const one = await diffOf(name, { segmentRows: 9, strategy, jobs: 1, batchRows: 30 });
      const four = await diffOf(name, { segmentRows: 9, strategy, jobs: 4, batchRows: 30 });
      expect(four.summary.jobs).toBe(4);
      expect(four.found).toEqual(one.found);
      const counts = (s: typeof one.summary) => [s.missing, s.changed, s.extra, s.branchRows, s.productionRows, s.segments];
      expect(counts(four.summary)).toEqual(counts(one.summary));
    }
  });

  it('over the WebSocket driver (no COPY): the same differences as over TCP', async () => {
    const names = ['typed', 'nokey', 'ckeys'];
    const overTcp = new Map<string, RowDifference[]>();
    for (const name of names) overTcp.set(name, (await diffOf(name, WAYS.stream)).found);
    const proxy = await startWsProxy();
    useDriver({ driver: 'ws', wsProxy: proxy.template });
    const wsBranch = await connect(cluster.urlFor('branch'));
    const wsProduction = await connect(cluster.urlFor('production'));
    try {
      for (const name of names) {
        const [bSchema, pSchema] = [await introspect(wsBranch), await introspect(wsProduction)];
        await Promise.all([beginDiffSession(wsBranch), beginDiffSession(wsProduction)]);
        const found: RowDifference[] = [];
        try {
          await diffRows({
            branch: wsBranch,
            production: wsProduction,
            branchTable: findTable(bSchema, parseTableName(name))!,
            productionTable: findTable(pSchema, parseTableName(name))!,
            connect: { branch: () => connect(cluster.urlFor('branch')), production: () => connect(cluster.urlFor('production')) },
            ...WAYS.stream,
            onDifference: (d) => void found.push(d),
          });
        } finally {
          await Promise.all([endDiffSession(wsBranch), endDiffSession(wsProduction)]);
        }
        expect(found.length, name).toBeGreaterThan(0);
        expect(found, name).toEqual(overTcp.get(name));
      }
    } finally {
      useDriver({ driver: 'pg' });
      await wsBranch.end();
      await wsProduction.end();
      await proxy.close();
    }
  });

  it('diffKeys streams the differing keys without rows, in batches, matching diffRows', async () => {
    const [bSchema, pSchema] = [await introspect(branch), await introspect(production)];
    const args = { branch, production, branchTable: findTable(bSchema, parseTableName('composite'))!, productionTable: findTable(pSchema, parseTableName('composite'))!, segmentRows: 5, batchRows: 20 };
    await Promise.all([beginDiffSession(branch), beginDiffSession(production)]);
    try {
      const batches: KeyDifference[][] = [];
      const summary = await diffKeys(args, (keys) => void batches.push(keys));
      const rows: RowDifference[] = [];
      await diffRows({ ...args, onDifference: (d) => void rows.push(d) });
      expect(batches.length).toBeGreaterThan(1);
      expect(batches.flat().map((k) => `${k.kind} ${JSON.stringify(k.key)}`)).toEqual(rows.map((d) => `${d.kind} ${JSON.stringify([d.key!.a, d.key!.b])}`));
      expect(summary.missing + summary.changed + summary.extra).toBe(rows.length);
    } finally {
      await Promise.all([endDiffSession(branch), endDiffSession(production)]);
    }
  });

  it('reports schema differences and compares only the common columns', async () => {
    const diff = diffSchemas(await introspect(branch), await introspect(production));
    expect(diff.identical).toBe(false);
    const items = diff.changedTables.find((t) => t.table === 'public.Order Items')!;
    expect(items.columnsOnlyInBranch).toEqual(['select']);
    const composite = diff.changedTables.find((t) => t.table === 'public.composite')!;
    expect(composite.retypedColumns).toEqual([{ column: 'v', branch: 'text', production: 'character varying(40)' }]);
    expect(diff.changedTables.find((t) => t.table === 'public.uniq')!.columnsOnlyInProduction).toEqual(['note']);
  });

  it('identical tables take the fast path: one checksum scan, nothing fetched', async () => {
    const [bSchema, pSchema] = [await introspect(branch), await introspect(branch)];
    const t = findTable(bSchema, { schema: null, name: 'typed' })!;
    await beginDiffSession(branch);
    const other = new pg.Client({ connectionString: cluster.urlFor('branch') });
    await other.connect();
    await beginDiffSession(other);
    const summary = await diffRows({ branch, production: other, branchTable: t, productionTable: findTable(pSchema, { schema: null, name: 'typed' })!, segmentRows: 7 });
    await endDiffSession(other);
    await other.end();
    await endDiffSession(branch);
    expect(summary).toMatchObject({ missing: 0, changed: 0, extra: 0, segments: { fetched: 0, checked: 0 } });
    expect(summary.branchRows).toBe(600);
  });
});

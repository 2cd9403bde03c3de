import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startBranchAndProduction, type TestCluster } from '../support/cluster.js';
import { findTable, introspect } from '../../src/db/introspect.js';
import { beginDiffSession, diffRows, endDiffSession, type RowDiffOptions, type RowDifference } from '../../src/diff/rows.js';
import { mulberry32 } from '../support/random.js';
import { sampleDenseChanges } from '../../src/diff/dense.js';
import { planRowDiff, useFastRowHash } from '../../src/diff/plan.js';
import { segmentTable } from '../../src/diff/segments.js';

/**
 * Scattered changes to integer-keyed tables: the differing segments are narrowed to their
 * differing eighths up front, a few queries per side however many batches follow, and the
 * eighths come back packed (one row per range, no COPY row per key). The result must still be
 * exactly a naive full comparison, in the same order for any number of jobs, including keys
 * at the ends of bigint and negative keys.
 */
const MAX = 2n ** 63n - 1n;

const SCHEMA = `
create table nums (id bigint primary key, v text, n numeric(10, 2));
create table edge (id bigint primary key, v int);
create table small (id int primary key, v text);
create table mixed (id int primary key, v text);
create table dense (id bigint primary key, v int);
insert into nums select 3 * g - 30000, 'v' || g, g / 7.0 from generate_series(1, 20000) g;
insert into edge select ${MAX} - 2 * g, g from generate_series(0, 3000) g;
insert into small select g, md5(g::text) from generate_series(1, 5000) g;
insert into mixed select 2 * g, 'm' || g from generate_series(1, 3000) g;
insert into dense select g, g from generate_series(1, 12000) g;
`;

function mutations(seed: number): string[] {
  const r = mulberry32(seed);
  const out: string[] = [];
  for (let i = 0; i < 120; i++) {
    const g = 1 + Math.floor(r() * 20000);
    const c = r();
    if (c < 0.33) out.push(`delete from nums where id = ${3 * g - 30000}`);
    else if (c < 0.66) out.push(`update nums set n = n + 0.01 where id = ${3 * g - 30000}`);
    else out.push(`insert into nums values (${3 * g - 29999}, 'new', 1) on conflict do nothing`);
  }
  for (let i = 0; i < 20; i++) {
    const g = Math.floor(r() * 3000);
    out.push(r() < 0.5 ? `update edge set v = -v where id = ${MAX - 2n * BigInt(g)}` : `delete from edge where id = ${MAX - 2n * BigInt(g)}`);
    out.push(`update small set v = 'x' where id = ${1 + Math.floor(r() * 5000)}`);
  }
  for (let i = 0; i < 300; i++) {
    const g = 1 + Math.floor(r() * 3000);
    const c = r();
    out.push(c < 0.33 ? `delete from mixed where id = ${2 * g}` : c < 0.66 ? `update mixed set v = 'u' where id = ${2 * g}` : `insert into mixed values (${2 * g - 1}, 'i') on conflict do nothing`);
  }
  out.push('update dense set v = -v where id % 10 = 3', 'delete from dense where id % 50 = 7', 'insert into dense values (0, 0), (12001, 1)');
  // The very ends: the largest bigint key changes, one is added just below the smallest.
  out.push(`update edge set v = 0 where id = ${MAX}`, `insert into edge values (${MAX - 6003n}, 1)`, `insert into nums values (-30001, 'first', 0)`);
  return out;
}

describe('narrowed, packed settling of integer keys = naive full comparison', () => {
  let cluster: TestCluster;
  let branch: pg.Client;
  let production: pg.Client;
  const seen: string[] = [];
  const original = pg.Client.prototype.query;

  beforeAll(async () => {
    ({ cluster, branch, production } = await startBranchAndProduction());
    await Promise.all([branch.query(SCHEMA), production.query(SCHEMA)]);
    for (const sql of mutations(7)) await production.query(sql);
    (pg.Client.prototype as unknown as { query: unknown }).query = function (this: pg.Client, ...args: unknown[]) {
      const q = args[0] as string | { text?: string; constructor?: { name?: string } };
      seen.push(typeof q === 'string' ? q : (q.text ?? `[${q.constructor?.name}]`));
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    };
  });

  afterAll(async () => {
    pg.Client.prototype.query = original;
    await branch?.end();
    await production?.end();
    await cluster?.destroy();
  });

  async function diffOf(name: string, options: Partial<RowDiffOptions>) {
    const [bTable, pTable] = [findTable(await introspect(branch), { schema: null, name })!, findTable(await introspect(production), { schema: null, name })!];
    const connect = (db: string) => async () => {
      const c = new pg.Client({ connectionString: cluster.urlFor(db) });
      await c.connect();
      return c;
    };
    await Promise.all([beginDiffSession(branch), beginDiffSession(production)]);
    seen.length = 0;
    const found: RowDifference[] = [];
    try {
      const summary = await diffRows({ branch, production, branchTable: bTable, productionTable: pTable, connect: { branch: connect('branch'), production: connect('production') }, ...options, onDifference: (d) => void found.push(d) });
      return { summary, found, queries: [...seen] };
    } finally {
      await Promise.all([endDiffSession(branch), endDiffSession(production)]);
    }
  }

  async function naive(name: string): Promise<string[]> {
    const read = async (c: pg.Client) => new Map((await c.query(`select id::text as id, row_to_json(t)::text as r from ${name} t`)).rows.map((x) => [x.id as string, x.r as string]));
    const [b, p] = [await read(branch), await read(production)];
    const out: string[] = [];
    for (const [id, row] of b) if (!p.has(id)) out.push(`missing ${id}`);
    else if (p.get(id) !== row) out.push(`changed ${id}`);
    for (const id of p.keys()) if (!b.has(id)) out.push(`extra ${id}`);
    return out.sort();
  }

  const ids = (found: RowDifference[]) => found.map((d) => `${d.kind} ${(d.branch ?? d.production)!.id}`);

  it.each(['nums', 'edge', 'small'])('%s: exact and the same for 1 and 3 jobs; narrowed up front, settled packed', async (name) => {
    const options = { strategy: 'stream', batchRows: 300 } as const;
    const one = await diffOf(name, { ...options, jobs: 1 });
    const three = await diffOf(name, { ...options, jobs: 3 });
    const expected = await naive(name);
    expect(expected.length).toBeGreaterThan(10);
    expect([...ids(one.found)].sort()).toEqual(expected);
    expect(three.found).toEqual(one.found);
    for (const run of [one, three]) {
      const narrowing = run.queries.filter((q) => q.includes('concat_ws'));
      const packed = run.queries.filter((q) => q.includes('string_agg'));
      // A few narrowing queries per side (one per job here), not one per batch of differing segments.
      expect(narrowing.length).toBeGreaterThan(0);
      expect(narrowing.length).toBeLessThanOrEqual(2 * run.summary.jobs);
      expect(packed.length).toBeGreaterThan(0);
      expect(run.queries.filter((q) => q.includes('copy (') || q.startsWith('['))).toEqual([]);
    }
  });

  it('the order of a merge of every row streamed: keys only in production before the keys only in the branch, between rows on both sides', async () => {
    // One segment with a change every ten rows: too dense to narrow, so all rows are packed and merged at once.
    const { found, queries } = await diffOf('mixed', { strategy: 'stream', segmentRows: 100000, jobs: 2 });
    expect(queries.some((q) => q.includes('string_agg'))).toBe(true);
    expect(queries.some((q) => q.includes('concat_ws'))).toBe(false);
    const read = async (c: pg.Client) => new Map((await c.query(`select id, v from mixed order by id`)).rows.map((x) => [x.id as number, x.v as string]));
    const [b, p] = [await read(branch), await read(production)];
    const expected: string[] = [];
    let onlyB: number[] = [];
    let onlyP: number[] = [];
    const flush = () => {
      expected.push(...onlyP.map((id) => `extra ${id}`), ...onlyB.map((id) => `missing ${id}`));
      onlyB = [];
      onlyP = [];
    };
    for (const id of [...new Set([...b.keys(), ...p.keys()])].sort((x, y) => x - y)) {
      if (!p.has(id)) onlyB.push(id);
      else if (!b.has(id)) onlyP.push(id);
      else {
        flush();
        if (b.get(id) !== p.get(id)) expected.push(`changed ${id}`);
      }
    }
    flush();
    expect(expected.filter((x) => x.startsWith('extra')).length).toBeGreaterThan(10);
    expect(ids(found)).toEqual(expected);
  });

  it('dense changes: neighbouring differing segments settle as one range each, rows are fetched by key probes', async () => {
    const run = await diffOf('dense', { segmentRows: 64, jobs: 1 });
    expect([...ids(run.found)].sort()).toEqual(await naive('dense'));
    expect(run.summary.segments.fetched).toBeGreaterThan(150);
    const packed = run.queries.filter((q) => q.includes('string_agg'));
    // Every segment differs and none is narrowed: one range per batch (12,000 rows fit in one), not one per segment.
    expect(packed).toHaveLength(2);
    for (const q of packed) expect(q).toMatch(/unnest\('\{"?-?\d+"?\}'::bigint\[\], '\{"?\d+"?\}'::bigint\[\], '\{"?true"?\}'::bool\[\]\)/);
    expect(run.queries.some((q) => q.includes('concat_ws'))).toBe(false);
    // Never analyzed, `= any($1)` was planned as a sequential scan per batch: the fetch probes the key's index per key.
    const fetches = run.queries.filter((q) => q.includes('pitr_keys'));
    expect(fetches.length).toBeGreaterThan(0);
    const plan = await branch.query({ text: `explain ${fetches[0]!}`, values: [['5', '6']] });
    expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n')).toMatch(/Index Scan using dense_pkey/);
  });

  it('dense changes skip the first pass: the same differences and row counts as with it, for 1 and 3 jobs', async () => {
    const withPass = await diffOf('dense', { skipChecksums: false, jobs: 1 });
    const one = await diffOf('dense', { skipChecksums: true, jobs: 1 });
    const three = await diffOf('dense', { skipChecksums: true, jobs: 3, batchRows: 2000 });
    expect([...ids(one.found)].sort()).toEqual(await naive('dense'));
    expect(three.found).toEqual(one.found);
    const firstPass = (q: string) => q.includes('count(*)::int8 as n, sum(');
    expect(withPass.queries.some(firstPass)).toBe(true);
    for (const run of [one, three]) {
      expect(run.queries.some(firstPass)).toBe(false);
      const { branchRows, productionRows, missing, changed, extra } = run.summary;
      const w = withPass.summary;
      expect({ branchRows, productionRows, missing, changed, extra }).toEqual({ branchRows: w.branchRows, productionRows: w.productionRows, missing: w.missing, changed: w.changed, extra: w.extra });
    }
    expect(one.summary.branchRows).toBe(12000);
  });

  it('the sample calls a tenth of rows changed everywhere dense, and 0.6% of rows changed not', async () => {
    await Promise.all([beginDiffSession(branch), beginDiffSession(production)]);
    try {
      const sampled = async (name: string) => {
        const [b, p] = [findTable(await introspect(branch), { schema: null, name })!, findTable(await introspect(production), { schema: null, name })!];
        const plan = await useFastRowHash(planRowDiff(b, p), branch, production);
        const seg = await segmentTable(plan, { client: branch, table: b }, { client: production, table: p }, 64);
        return sampleDenseChanges({ client: branch, table: b }, { client: production, table: p }, plan, seg);
      };
      expect((await sampled('dense'))?.rows).toBeGreaterThan(1000);
      expect(await sampled('nums')).toBeNull();
    } finally {
      await Promise.all([endDiffSession(branch), endDiffSession(production)]);
    }
  });

  it('a job connection that cannot open leaves one job, and the main sessions as they were', async () => {
    const [bTable, pTable] = [findTable(await introspect(branch), { schema: null, name: 'nums' })!, findTable(await introspect(production), { schema: null, name: 'nums' })!];
    const expected = (await naive('nums')).length;
    await Promise.all([beginDiffSession(branch), beginDiffSession(production)]);
    try {
      await branch.query(`select set_config('max_parallel_workers_per_gather', '3', true)`);
      const failing = async (): Promise<pg.Client> => {
        throw new Error('too many connections');
      };
      const summary = await diffRows({ branch, production, branchTable: bTable, productionTable: pTable, jobs: 3, connect: { branch: failing, production: failing } });
      expect(summary.jobs).toBe(1);
      expect(summary.missing + summary.changed + summary.extra).toBe(expected);
      expect((await branch.query(`select current_setting('max_parallel_workers_per_gather') as v`)).rows[0].v).toBe('3');
    } finally {
      await Promise.all([endDiffSession(branch), endDiffSession(production)]);
    }
  });
});

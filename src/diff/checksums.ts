import type pg from 'pg';
import type { TableInfo } from '../db/introspect.js';
import type { Plan } from './plan.js';
import type { KeyRange, Segmentation } from './segments.js';

/** Row count and exact sum of 64-bit row hashes (numeric in Postgres, bigint here). */
export interface Checksum {
  n: number;
  h: bigint;
}
export const EMPTY: Checksum = { n: 0, h: 0n };
export const sameChecksum = (a: Checksum, b: Checksum) => a.n === b.n && a.h === b.h;

const hashOf = (plan: Plan) => plan.rowHash;

/**
 * The first pass on one side: count and hash sum per bucket in one scan. With several jobs a
 * plain table is cut into block ranges (TID range scans), one per job; sums simply add up, so
 * the per-bucket totals are the same for any number of jobs.
 */
export async function bucketChecksums(clients: pg.ClientBase[], table: TableInfo, plan: Plan, seg: Segmentation, pages: number): Promise<Map<number, Checksum>> {
  // Units of work: block ranges of a plain table (of the pages segmentation found), or the leaf partitions of a partitioned one.
  let units: { from: string; extra: string }[] = [{ from: table.qualified, extra: '' }];
  if (clients.length > 1 && table.kind === 'table') {
    if (pages >= clients.length) {
      const cuts = clients.map((_, i) => Math.floor((pages * i) / clients.length));
      units = cuts.map((lo, i) => {
        const hi = i + 1 < cuts.length ? cuts[i + 1] : null;
        return { from: table.qualified, extra: ` and ctid >= '(${lo},0)'::tid${hi === null ? '' : ` and ctid < '(${hi},0)'::tid`}` };
      });
    }
  } else if (clients.length > 1 && table.kind === 'partitioned' && plan.where === 'true') {
    // (A --where may name the parent table, so filtered diffs scan through the parent.)
    const { rows } = await clients[0]!.query(
      `select format('%I.%I', n.nspname, c.relname) as leaf from pg_partition_tree($1::regclass) t join pg_class c on c.oid = t.relid join pg_namespace n on n.oid = c.relnamespace
        where t.isleaf order by pg_relation_size(t.relid) desc`,
      [table.qualified],
    );
    if (rows.length) units = rows.map((r) => ({ from: r.leaf as string, extra: '' }));
  }
  const sql = (from: string, extra: string) =>
    plan.mode === 'multiset'
      ? // The hash is both the bucket and the checksum: computed once per row (offset 0 keeps it so).
        `select ${seg.bucketSql.replaceAll(plan.segmentExpr, 'x.h')} as b, count(*)::int8 as n, sum(x.h)::text as h
           from (select ${hashOf(plan)} as h from ${from} where ${plan.where}${extra} offset 0) x group by 1`
      : `select ${seg.bucketSql} as b, count(*)::int8 as n, sum(${hashOf(plan)})::text as h from ${from} where ${plan.where}${extra} group by 1`;
  const out = new Map<number, Checksum>();
  const add = (r: pg.QueryResult) => {
    for (const [b, n, h] of r.rows as [number, string, string][]) {
      const prev = out.get(Number(b));
      out.set(Number(b), prev ? { n: prev.n + Number(n), h: prev.h + BigInt(h) } : { n: Number(n), h: BigInt(h) });
    }
  };
  // Biggest units first, each job taking the next free one; the sums do not depend on who ran what.
  let next = 0;
  await Promise.all(
    clients.slice(0, Math.min(clients.length, units.length)).map(async (c) => {
      // Without statistics the planner expects a group per row and sorts; the real groups fit a hash table.
      await c.query(`select set_config('enable_sort', 'off', true)`);
      try {
        while (next < units.length) {
          const u = units[next++]!;
          add(await c.query({ text: sql(u.from, u.extra), rowMode: 'array', queryMode: 'extended' } as pg.QueryConfig));
        }
      } finally {
        await c.query(`select set_config('enable_sort', 'on', true)`);
      }
    }),
  );
  return out;
}

export function rangePredicate(plan: Plan, r: KeyRange, params: unknown[]): string {
  params.push(r.lo, r.hi);
  const lo = `$${params.length - 1}::${plan.segmentType}`;
  const hi = `$${params.length}::${plan.segmentType}`;
  return `${plan.segmentExpr} >= ${lo} and ${plan.segmentExpr} ${r.hiInclusive ? '<=' : '<'} ${hi}`;
}

/** Count and hash sum of one key range (an index range scan). */
export async function rangeChecksum(client: pg.ClientBase, table: TableInfo, plan: Plan, r: KeyRange): Promise<Checksum> {
  const params: unknown[] = [];
  const { rows } = await client.query(
    `select count(*)::int8 as n, coalesce(sum(${hashOf(plan)}), 0)::text as h from ${table.qualified} where ${plan.where} and ${rangePredicate(plan, r, params)}`,
    params,
  );
  return { n: Number(rows[0].n), h: BigInt(rows[0].h) };
}

/**
 * Halves of a key range: integers at the midpoint, other keys at the median of the larger side
 * (read through the index). Null when the range holds a single key value.
 */
export async function splitRange(client: pg.ClientBase, table: TableInfo, plan: Plan, r: KeyRange, rows: number): Promise<[KeyRange, KeyRange] | null> {
  if (plan.integerSegments) {
    const lo = BigInt(r.lo);
    const hi = r.hiInclusive ? BigInt(r.hi) : BigInt(r.hi) - 1n;
    if (hi <= lo) return null;
    const mid = lo + (hi - lo) / 2n;
    return [
      { lo: r.lo, hi: mid.toString(), hiInclusive: true },
      { lo: (mid + 1n).toString(), hi: hi.toString(), hiInclusive: true },
    ];
  }
  const params: unknown[] = [];
  const predicate = rangePredicate(plan, r, params);
  params.push(Math.floor(rows / 2));
  const { rows: found } = await client.query(
    `select (${plan.segmentExpr})::text as m from ${table.qualified} where ${plan.where} and ${predicate} order by ${plan.segmentExpr} offset $${params.length} limit 1`,
    params,
  );
  const median: string | undefined = found[0]?.m;
  if (median === undefined || median === r.lo) return null;
  return [
    { lo: r.lo, hi: median, hiInclusive: false },
    { lo: median, hi: r.hi, hiInclusive: r.hiInclusive },
  ];
}

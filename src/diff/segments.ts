import type pg from 'pg';
import type { TableInfo } from '../db/introspect.js';
import { arrayLiteral } from '../db/sql.js';
import type { Plan } from './plan.js';

/**
 * Initial segments come from the data itself, never from planner statistics (a restored branch
 * is rarely analyzed): integer keys are cut into equal ranges between min and max (read from the
 * index), other keys at quantiles of a block sample, the row hash of keyless tables into equal
 * slices of the hash space. Segments are small (about `segmentRows` rows) so that scattered
 * changes dirty few rows' worth of segments; the first pass groups by bucket in one scan.
 */

/** A key range [lo, hi] (hi excluded unless hiInclusive), as text cast in SQL. */
export interface KeyRange {
  lo: string;
  hi: string;
  hiInclusive: boolean;
}

export interface Segmentation {
  /** Number of buckets; ids are 0..count-1. */
  count: number;
  /** SQL giving a row's bucket id (inline literals: COPY takes no parameters). */
  bucketSql: string;
  /** The key range of a bucket, when segments can be ranged through the index. */
  range(bucket: number): KeyRange | null;
  /** Rows the larger side is estimated to hold. */
  estimatedRows: number;
  /** Each side's size in pages (the first pass cuts a plain table into block ranges by it). */
  pages: { branch: number; production: number };
  /**
   * Ranges are of an integer key with int8 arithmetic inside them: a range can be cut into
   * equal key sub-ranges arithmetically (and each ranged through the index on its own).
   */
  integerRanges?: boolean;
}

const MAX_SEGMENTS = 131_072;
const EXACT_PAGES = 256;

/**
 * The table's size in pages, as SQL over $1 (the table): pg_partition_tree lists nothing for a
 * plain table, so without its own size every plain table looked empty and was sorted whole.
 */
const PAGES_SQL = `(select greatest(pg_relation_size($1::regclass), (select sum(pg_relation_size(relid)) from pg_partition_tree($1::regclass)))::float8 / current_setting('block_size')::int)`;

/** The sampling percentage: every row of a small table, else `sampled` (SQL over the pages). */
const percentSql = (sampled: string) => `(select case when ceil(${PAGES_SQL}) <= ${EXACT_PAGES} then 100 else least(100, greatest(0.05, ${sampled})) end)::float8`;

interface SideFacts {
  rows: number;
  /** The table's size in pages (its partitions' sizes, when partitioned). */
  pages: number;
  /** Sorted sample (or all values) of the segment expression, for quantile cuts. */
  sample: string[];
  min: string | null;
  max: string | null;
}

/**
 * Rows, bounds and (for keys that are not integers) a sample of one side, in as few round trips
 * as possible: over a 20 ms link each one costs as much as hashing thousands of rows, and a
 * preview pays them for every table. The sampling percentage is computed from the table's size
 * inside the query (TABLESAMPLE takes any expression that does not read the table).
 */
async function sideFacts(client: pg.ClientBase, table: TableInfo, plan: Plan, segmentRows: number, needSample: boolean, needBounds: boolean): Promise<SideFacts> {
  const from = table.qualified;
  const e = plan.segmentExpr;
  // First and last by the key's order, not min()/max(): uuid and other orderable types have no such aggregates.
  // The output is named v: ORDER BY a bare column name would otherwise sort by the output, as text.
  const bounds = `(select (${e})::text as v from ${from} order by ${e} asc limit 1) as lo, (select (${e})::text as v from ${from} order by ${e} desc limit 1) as hi`;
  if (!needSample) {
    // About 512 pages are read to estimate the rows; SYSTEM sampling reads whole pages, so it is cheap.
    const percent = percentSql(`100 * 512 / ${PAGES_SQL}`);
    const { rows } = await client.query(
      `select (select count(*)::float8 from ${from} tablesample system (${percent})) as n, ${percent} as percent, ${PAGES_SQL} as pages${needBounds ? `, ${bounds}` : ''}`,
      [from],
    );
    const r = rows[0]!;
    return { rows: Math.round((Number(r.n) * 100) / Number(r.percent)), pages: Math.ceil(Number(r.pages)), sample: [], min: r.lo ?? null, max: r.hi ?? null };
  }
  // About four sampled keys per segment.
  const percent = percentSql(String((100 * 4) / segmentRows));
  const r = await client.query({ text: `select (${e})::text, ${percent}, ${PAGES_SQL} from ${from} tablesample system (${percent}) order by ${e}`, values: [from], rowMode: 'array' });
  const sampled = r.rows as [string, number, number][];
  const sample = sampled.map((x) => x[0]);
  // No sampled row: the percentage and size are asked for on their own (an empty or nearly empty table).
  const [, pct, pages] = sampled[0] ?? ((await client.query({ text: `select null, ${percent}, ${PAGES_SQL}`, values: [from], rowMode: 'array' })).rows[0] as [null, number, number]);
  let min: string | null = null;
  let max: string | null = null;
  if (needBounds) {
    const b = await client.query(`select ${bounds}`);
    min = b.rows[0]?.lo ?? null;
    max = b.rows[0]?.hi ?? null;
  }
  return { rows: Math.round((sample.length * 100) / Number(pct)), pages: Math.ceil(Number(pages)), sample, min, max };
}

export async function segmentTable(plan: Plan, branch: { client: pg.ClientBase; table: TableInfo }, production: { client: pg.ClientBase; table: TableInfo }, segmentRows: number): Promise<Segmentation> {
  const integer = plan.mode === 'key' && plan.integerSegments;
  const needSample = plan.mode === 'key' && !integer;
  const needBounds = plan.mode === 'key' && (integer || plan.indexRanges);
  const [b, p] = await Promise.all([
    sideFacts(branch.client, branch.table, plan, segmentRows, needSample, needBounds),
    sideFacts(production.client, production.table, plan, segmentRows, needSample, needBounds),
  ]);
  const estimatedRows = Math.max(b.rows, p.rows, 1);
  const pages = { branch: b.pages, production: p.pages };
  const wanted = Math.min(MAX_SEGMENTS, Math.max(1, Math.ceil(estimatedRows / segmentRows)));

  if (plan.mode === 'multiset') {
    const bits = Math.max(0, Math.ceil(Math.log2(wanted)));
    const half = 2 ** Math.max(0, bits - 1);
    // The top `bits` bits of the signed 64-bit row hash, shifted to 0..2^bits-1.
    const bucketSql = bits === 0 ? '0' : `((${plan.segmentExpr}) >> ${64 - bits})::int + ${half}`;
    return { count: 2 ** bits, bucketSql, range: () => null, estimatedRows, pages };
  }

  if (integer) {
    const lows = [b.min, p.min].filter((v): v is string => v !== null).map(BigInt);
    const highs = [b.max, p.max].filter((v): v is string => v !== null).map(BigInt);
    if (lows.length === 0) return { count: 1, bucketSql: '0', range: () => null, estimatedRows, pages };
    const min = lows.reduce((x, y) => (x < y ? x : y));
    const max = highs.reduce((x, y) => (x > y ? x : y));
    const span = max - min + 1n;
    const step = span / BigInt(wanted) + (span % BigInt(wanted) ? 1n : 0n);
    const count = Number((span + step - 1n) / step);
    const rangeOf = (i: number): KeyRange => {
      const lo = min + BigInt(i) * step;
      const hi = lo + step - 1n;
      return { lo: lo.toString(), hi: (hi > max ? max : hi).toString(), hiInclusive: true };
    };
    // key - min stays within int8 only when the span does; otherwise numeric arithmetic.
    const cast = span < 2n ** 62n ? 'int8' : 'numeric';
    const bucketSql = count === 1 ? '0' : `((${plan.segmentExpr})::${cast} - ${min}::${cast}) / ${step}::${cast}`;
    return { count, bucketSql: cast === 'numeric' ? `floor(${bucketSql})::int` : `(${bucketSql})::int`, range: rangeOf, estimatedRows, pages, integerRanges: cast === 'int8' };
  }

  // Other keys: quantiles of the larger side's sample, in the order the segment expression sorts.
  const sample = b.sample.length >= p.sample.length ? b.sample : p.sample;
  const thresholds: string[] = [];
  for (let i = 1; i < wanted && sample.length > 0; i++) {
    const v = sample[Math.floor((i * sample.length) / wanted)]!;
    if (thresholds.at(-1) !== v) thresholds.push(v);
  }
  if (thresholds[0] !== undefined && thresholds[0] === sample[0] && thresholds.length > 0) thresholds.shift();
  const count = thresholds.length + 1;
  const bucketSql = thresholds.length ? `width_bucket(${plan.segmentExpr}, ${arrayLiteral(thresholds, plan.segmentType)})` : '0';
  const lows = [b.min, p.min].filter((v): v is string => v !== null);
  const highs = [b.max, p.max].filter((v): v is string => v !== null);
  const range = (i: number): KeyRange | null => {
    if (!plan.indexRanges || lows.length === 0) return null;
    return {
      lo: i === 0 ? lows[0]! : thresholds[i - 1]!,
      hi: i === count - 1 ? highs[0]! : thresholds[i]!,
      hiInclusive: i === count - 1,
    };
  };
  // With index ranges, the open ends use the smaller min and the larger max of both sides, in SQL.
  if (plan.indexRanges && lows.length === 2) {
    lows.splice(0, 2, await pick(branch.client, plan, lows, 'least'));
    highs.splice(0, 2, await pick(branch.client, plan, highs, 'greatest'));
  }
  return { count, bucketSql, range, estimatedRows, pages };
}

/** least/greatest of two key values in the key's own order, asked of Postgres (no JS comparator). */
async function pick(client: pg.ClientBase, plan: Plan, values: string[], fn: 'least' | 'greatest'): Promise<string> {
  const { rows } = await client.query(`select ${fn}($1::${plan.segmentType}${plan.keyCollate}, $2::${plan.segmentType}${plan.keyCollate})::text as v`, values);
  return rows[0].v;
}

import type pg from 'pg';
import type { TableInfo } from '../db/introspect.js';
import { quoteLiteral } from '../db/sql.js';
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
  /**
   * Ranges are of an integer key with int8 arithmetic inside them: a range can be cut into
   * equal key sub-ranges arithmetically (and each ranged through the index on its own).
   */
  integerRanges?: boolean;
}

const MAX_SEGMENTS = 131_072;
const EXACT_PAGES = 256;

export function pgArray(values: string[]): string {
  return `{${values.map((v) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`;
}

async function pagesOf(client: pg.ClientBase, table: TableInfo): Promise<number> {
  // pg_partition_tree lists nothing for a plain table: without its own size, every plain table looked empty and was sorted whole.
  const { rows } = await client.query(
    `select greatest(pg_relation_size($1::regclass), (select sum(pg_relation_size(relid)) from pg_partition_tree($1::regclass)))::float8 / current_setting('block_size')::int as pages`,
    [table.qualified],
  );
  return Math.ceil(Number(rows[0]?.pages ?? 0));
}

interface SideFacts {
  rows: number;
  /** Sorted sample (or all values) of the segment expression, for quantile cuts. */
  sample: string[];
  min: string | null;
  max: string | null;
}

async function sideFacts(client: pg.ClientBase, table: TableInfo, plan: Plan, segmentRows: number, needSample: boolean, needBounds: boolean): Promise<SideFacts> {
  const pages = await pagesOf(client, table);
  const from = table.qualified;
  const exact = pages <= EXACT_PAGES;
  // About four sampled keys per segment; SYSTEM sampling reads whole pages, so it is cheap.
  const percent = exact ? 100 : Math.min(100, Math.max(0.05, (100 * 4) / segmentRows));
  const sampleClause = exact ? '' : ` tablesample system (${percent})`;
  let rows: number;
  let sample: string[] = [];
  if (needSample) {
    const r = await client.query({ text: `select (${plan.segmentExpr})::text from ${from}${sampleClause} order by ${plan.segmentExpr}`, rowMode: 'array' });
    sample = (r.rows as string[][]).map((x) => x[0]!);
    rows = Math.round((sample.length * 100) / percent);
  } else {
    const countPercent = exact ? 100 : Math.min(100, Math.max(0.05, (100 * 512) / pages));
    const r = await client.query(`select count(*)::float8 as n from ${from}${exact ? '' : ` tablesample system (${countPercent})`}`);
    rows = Math.round((Number(r.rows[0]!.n) * 100) / countPercent);
  }
  let min: string | null = null;
  let max: string | null = null;
  if (needBounds) {
    // First and last by the key's order, not min()/max(): uuid and other orderable types have no such aggregates.
    const e = plan.segmentExpr;
    const r = await client.query(
      // The output is named v: ORDER BY a bare column name would otherwise sort by the output, as text.
      `select (select (${e})::text as v from ${from} order by ${e} asc limit 1) as lo, (select (${e})::text as v from ${from} order by ${e} desc limit 1) as hi`,
    );
    min = r.rows[0]?.lo ?? null;
    max = r.rows[0]?.hi ?? null;
  }
  return { rows, sample, min, max };
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
  const wanted = Math.min(MAX_SEGMENTS, Math.max(1, Math.ceil(estimatedRows / segmentRows)));

  if (plan.mode === 'multiset') {
    const bits = Math.max(0, Math.ceil(Math.log2(wanted)));
    const half = 2 ** Math.max(0, bits - 1);
    // The top `bits` bits of the signed 64-bit row hash, shifted to 0..2^bits-1.
    const bucketSql = bits === 0 ? '0' : `((${plan.segmentExpr}) >> ${64 - bits})::int + ${half}`;
    return { count: 2 ** bits, bucketSql, range: () => null, estimatedRows };
  }

  if (integer) {
    const lows = [b.min, p.min].filter((v): v is string => v !== null).map(BigInt);
    const highs = [b.max, p.max].filter((v): v is string => v !== null).map(BigInt);
    if (lows.length === 0) return { count: 1, bucketSql: '0', range: () => null, estimatedRows };
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
    return { count, bucketSql: cast === 'numeric' ? `floor(${bucketSql})::int` : `(${bucketSql})::int`, range: rangeOf, estimatedRows, integerRanges: cast === 'int8' };
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
  const bucketSql = thresholds.length ? `width_bucket(${plan.segmentExpr}, ${quoteLiteral(pgArray(thresholds))}::${plan.segmentType}[])` : '0';
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
  return { count, bucketSql, range, estimatedRows };
}

/** least/greatest of two key values in the key's own order, asked of Postgres (no JS comparator). */
async function pick(client: pg.ClientBase, plan: Plan, values: string[], fn: 'least' | 'greatest'): Promise<string> {
  const { rows } = await client.query(`select ${fn}($1::${plan.segmentType}${plan.keyCollate}, $2::${plan.segmentType}${plan.keyCollate})::text as v`, values);
  return rows[0].v;
}

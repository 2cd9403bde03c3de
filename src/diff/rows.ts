import type pg from 'pg';
import { PitrError } from '../errors.js';
import type { ColumnInfo, TableInfo } from '../db/introspect.js';
import { checkWhere, quoteIdent, whereRejected } from '../db/sql.js';
import type { ProgressSink } from '../providers/types.js';
import { comparableColumns } from './schema.js';
import { normalizeSession } from '../db/session.js';

/**
 * Row diff between a recovery branch (the past) and production (now), computed inside Postgres:
 * both sides hash their rows per key-range segment in one scan each, in parallel; only segments
 * whose count or hash sum differ are split (by the median key) and re-checked, until they are
 * small enough to fetch and compare row by row. Memory is bounded by the leaf segment size.
 */

export type Values = Record<string, string | null>;

export interface RowDifference {
  /** missing: in the branch, not in production (deleted since); changed: same key, other values; extra: only in production. */
  kind: 'missing' | 'changed' | 'extra';
  key: Values | null;
  branch: Values | null;
  production: Values | null;
  changedColumns: string[];
  /** Multiset mode: how many copies of this row differ. */
  count: number;
}

export interface RowDiffSummary {
  table: string;
  mode: 'key' | 'multiset';
  keyColumns: string[];
  comparedColumns: string[];
  /** Columns not compared because they exist on one side only or changed type. */
  skippedColumns: string[];
  branchRows: number;
  productionRows: number;
  missing: number;
  changed: number;
  extra: number;
  segments: { initial: number; checked: number; fetched: number };
  seconds: number;
}

export interface RowDiffOptions {
  branch: pg.ClientBase;
  production: pg.ClientBase;
  branchTable: TableInfo;
  productionTable: TableInfo;
  /** Extra filter applied on both sides (inside the caller's read-only transaction). */
  where?: string;
  /** Compare only these columns (plus the key). */
  columns?: string[];
  /** Largest segment fetched row by row (default 2000). */
  leafRows?: number;
  onProgress?: ProgressSink;
  /** Called for each difference, in key order within a segment. */
  onDifference?: (d: RowDifference) => void | Promise<void>;
}

/**
 * Every text rendering must be identical on both sides, or equal rows would hash differently:
 * the caller runs this once per connection, inside the transaction used for the diff.
 */
export async function beginDiffSession(client: pg.ClientBase): Promise<void> {
  // REPEATABLE READ: one snapshot for the many queries a diff runs while production keeps changing.
  await client.query('begin isolation level repeatable read read only');
  await normalizeSession(client, 'pitr diff');
}

export async function endDiffSession(client: pg.ClientBase): Promise<void> {
  await client.query('rollback').catch(() => undefined);
}

interface Plan {
  table: string;
  mode: 'key' | 'multiset';
  keyColumns: ColumnInfo[];
  compared: ColumnInfo[];
  skipped: string[];
  /** First key column: what segments are ranges of (or the row hash in multiset mode). */
  segmentExpr: string;
  segmentType: string;
  rowText: string;
  where: string;
}

const SEGMENT_INT8 = 'int8';

export function planRowDiff(branchTable: TableInfo, productionTable: TableInfo, where?: string, onlyColumns?: string[]): Plan {
  let compared = comparableColumns(branchTable, productionTable);
  const allNames = new Set([...branchTable.columns, ...productionTable.columns].map((c) => c.name));
  if (onlyColumns?.length) {
    const unknown = onlyColumns.filter((c) => !compared.some((k) => k.name === c));
    if (unknown.length) throw new PitrError('unknown_column', `cannot compare column(s) ${unknown.join(', ')} of ${branchTable.schema}.${branchTable.name}: not on both sides with the same type`, { exit: 'usage' });
  }
  const byName = new Map(compared.map((c) => [c.name, c]));
  const usable = (cols: string[] | null | undefined) => !!cols?.length && cols.every((c) => byName.has(c)) && sameKeyOnBoth(cols, productionTable);
  const keyNames = usable(branchTable.primaryKey) ? branchTable.primaryKey! : branchTable.uniqueKeys.find((k) => usable(k)) ?? null;
  if (onlyColumns?.length) compared = compared.filter((c) => onlyColumns.includes(c.name) || keyNames?.includes(c.name));
  if (compared.length === 0) throw new PitrError('no_common_columns', `${branchTable.schema}.${branchTable.name} has no column with the same type on both sides`, { exit: 'usage' });
  const skipped = [...allNames].filter((n) => !comparableColumns(branchTable, productionTable).some((c) => c.name === n));
  const rowText = `row(${compared.map((c) => quoteIdent(c.name)).join(', ')})::text`;
  const table = `${branchTable.schema}.${branchTable.name}`;
  const filter = where ? `(${where})` : 'true';
  if (keyNames) {
    const keyColumns = keyNames.map((n) => byName.get(n)!);
    const first = keyColumns[0]!;
    return {
      table,
      mode: 'key',
      keyColumns,
      compared,
      skipped,
      segmentExpr: first.collatable ? `${quoteIdent(first.name)} collate "C"` : quoteIdent(first.name),
      segmentType: first.type,
      rowText,
      where: filter,
    };
  }
  return { table, mode: 'multiset', keyColumns: [], compared, skipped, segmentExpr: `hashtextextended(${rowText}, 0)`, segmentType: SEGMENT_INT8, rowText, where: filter };
}

function sameKeyOnBoth(cols: string[], production: TableInfo): boolean {
  const key = JSON.stringify(cols);
  return JSON.stringify(production.primaryKey) === key || production.uniqueKeys.some((k) => JSON.stringify(k) === key);
}

/** A half-open range of the segment expression; null bounds are open. Values are text, cast in SQL. */
interface Segment {
  lo: string | null;
  hi: string | null;
}
interface Checksum {
  n: number;
  h: string;
}

export async function diffRows(options: RowDiffOptions): Promise<RowDiffSummary> {
  try {
    return await diffRowsChecked(options);
  } catch (err) {
    throw options.where === undefined ? err : whereRejected(err);
  }
}

async function diffRowsChecked(options: RowDiffOptions): Promise<RowDiffSummary> {
  const started = Date.now();
  const plan = planRowDiff(options.branchTable, options.productionTable, options.where, options.columns);
  if (options.where !== undefined) {
    await Promise.all([checkWhere(options.branch, options.branchTable.qualified, options.where), checkWhere(options.production, options.productionTable.qualified, options.where)]);
  }
  const leafRows = options.leafRows ?? 2000;
  const from = { branch: options.branchTable.qualified, production: options.productionTable.qualified };
  const summary: RowDiffSummary = {
    table: plan.table,
    mode: plan.mode,
    keyColumns: plan.keyColumns.map((c) => c.name),
    comparedColumns: plan.compared.map((c) => c.name),
    skippedColumns: plan.skipped,
    branchRows: 0,
    productionRows: 0,
    missing: 0,
    changed: 0,
    extra: 0,
    segments: { initial: 0, checked: 0, fetched: 0 },
    seconds: 0,
  };

  const thresholds = await initialThresholds(options, plan);
  const initial = await Promise.all([
    bucketChecksums(options.branch, from.branch, plan, thresholds),
    bucketChecksums(options.production, from.production, plan, thresholds),
  ]);
  const buckets = new Set([...initial[0].keys(), ...initial[1].keys()]);
  summary.segments.initial = buckets.size;
  let pending: { segment: Segment; branch: Checksum; production: Checksum; dense: boolean }[] = [];
  for (const b of [...buckets].sort((x, y) => x - y)) {
    const branch = initial[0].get(b) ?? { n: 0, h: '0' };
    const production = initial[1].get(b) ?? { n: 0, h: '0' };
    summary.branchRows += branch.n;
    summary.productionRows += production.n;
    if (branch.n !== production.n || branch.h !== production.h) {
      pending.push({ segment: { lo: b === 0 ? null : thresholds[b - 1]!, hi: b >= thresholds.length ? null : thresholds[b]! }, branch, production, dense: false });
    }
  }
  // Changes spread everywhere: splitting rules out little, so mid-sized segments are fetched directly.
  if (pending.length > buckets.size / 2) for (const item of pending) item.dense = true;
  const denseFetchRows = leafRows * 16;

  // Bisect breadth-first; leaves are fetched and compared row by row.
  while (pending.length > 0) {
    const next: typeof pending = [];
    for (const item of pending) {
      options.onProgress?.({ phase: 'diff', message: `${plan.table}: ${summary.segments.checked} segments checked, ${summary.segments.fetched} fetched` });
      const size = Math.max(item.branch.n, item.production.n);
      const fetchNow = size <= leafRows || (item.dense && size <= denseFetchRows);
      const split = fetchNow ? null : await splitPoint(options, from, plan, item.segment, item.branch.n >= item.production.n ? 'branch' : 'production', size);
      if (split === null) {
        summary.segments.fetched++;
        await compareSegment(options, from, plan, item.segment, summary);
        continue;
      }
      const left: Segment = { lo: item.segment.lo, hi: split };
      const right: Segment = { lo: split, hi: item.segment.hi };
      // Only the left half is scanned: counts and hash sums add up, so the right half is the rest.
      const [[bl], [pl]] = await Promise.all([rangeChecksums(options.branch, from.branch, plan, [left]), rangeChecksums(options.production, from.production, plan, [left])]);
      summary.segments.checked += 1;
      const minus = (whole: Checksum, part: Checksum): Checksum => ({ n: whole.n - part.n, h: (BigInt(whole.h) - BigInt(part.h)).toString() });
      const halves = [
        { segment: left, branch: bl!, production: pl! },
        { segment: right, branch: minus(item.branch, bl!), production: minus(item.production, pl!) },
      ].filter((h) => h.branch.n !== h.production.n || h.branch.h !== h.production.h);
      for (const h of halves) next.push({ ...h, dense: item.dense || halves.length === 2 });
    }
    pending = next;
  }
  summary.seconds = (Date.now() - started) / 1000;
  return summary;
}

/**
 * Initial segment boundaries: the planner's histogram of the first key column (free, roughly
 * equal-sized ranges), re-sorted in the order the diff uses; in multiset mode, equal slices of
 * the 64-bit hash space.
 */
async function initialThresholds(options: RowDiffOptions, plan: Plan): Promise<string[]> {
  if (plan.mode === 'multiset') {
    const estimate = Math.max(options.branchTable.estimatedRows, options.productionTable.estimatedRows);
    const slices = Math.min(4096, Math.max(1, 2 ** Math.ceil(Math.log2(Math.max(1, estimate / Math.max(1, options.leafRows ?? 2000))))));
    const out: string[] = [];
    for (let i = 1; i < slices; i++) out.push((-(2n ** 63n) + (2n ** 64n * BigInt(i)) / BigInt(slices)).toString());
    return out;
  }
  const key = plan.keyColumns[0]!;
  const order = key.collatable ? ' collate "C"' : '';
  for (const [client, table] of [
    [options.branch, options.branchTable],
    [options.production, options.productionTable],
  ] as const) {
    // Re-sorted in the order segments compare keys (bytes for text), by Postgres itself.
    const { rows } = await client.query(
      `select array(select u.v::text from unnest(histogram_bounds::text::${key.type}[]) as u(v) group by u.v order by u.v${order})::text[] as bounds
         from pg_stats where schemaname = $1 and tablename = $2 and attname = $3 and histogram_bounds is not null`,
      [table.schema, table.name, key.name],
    );
    if (rows[0]) return rows[0].bounds;
  }
  return [];
}

function toPgArray(values: string[]): string {
  return `{${values.map((v) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`;
}

async function bucketChecksums(client: pg.ClientBase, from: string, plan: Plan, thresholds: string[]): Promise<Map<number, Checksum>> {
  const bucket = thresholds.length ? `width_bucket(${plan.segmentExpr}, $1::${plan.segmentType}[])` : '0';
  // Always the extended protocol: it runs exactly one statement, whatever the filter holds.
  const { rows } = await client.query({
    text: `select ${bucket} as b, count(*)::int8 as n, coalesce(sum(hashtextextended(${plan.rowText}, 0)), 0)::text as h
       from ${from} where ${plan.where} group by 1`,
    values: thresholds.length ? [toPgArray(thresholds)] : [],
    queryMode: 'extended',
  } as pg.QueryConfig);
  return new Map(rows.map((r) => [Number(r.b), { n: Number(r.n), h: r.h }]));
}

function rangePredicate(plan: Plan, segment: Segment, params: unknown[]): string {
  const parts = [plan.where];
  if (segment.lo !== null) {
    params.push(segment.lo);
    parts.push(`${plan.segmentExpr} >= $${params.length}::${plan.segmentType}`);
  }
  if (segment.hi !== null) {
    params.push(segment.hi);
    parts.push(`${plan.segmentExpr} < $${params.length}::${plan.segmentType}`);
  }
  return parts.join(' and ');
}

async function rangeChecksums(client: pg.ClientBase, from: string, plan: Plan, segments: Segment[]): Promise<Checksum[]> {
  const params: unknown[] = [];
  const selects = segments.map(
    (s, i) => `select ${i} as i, count(*)::int8 as n, coalesce(sum(hashtextextended(${plan.rowText}, 0)), 0)::text as h from ${from} where ${rangePredicate(plan, s, params)}`,
  );
  const { rows } = await client.query(selects.join(' union all '), params);
  const out = segments.map(() => ({ n: 0, h: '0' }));
  for (const r of rows) out[Number(r.i)] = { n: Number(r.n), h: r.h };
  return out;
}

/**
 * A value that splits a segment roughly in half: the median of the segment expression on the
 * larger side. Null when the segment cannot be split (one single value of the first key column).
 */
async function splitPoint(options: RowDiffOptions, from: { branch: string; production: string }, plan: Plan, segment: Segment, side: 'branch' | 'production', size: number): Promise<string | null> {
  if (plan.mode === 'multiset') {
    const lo = segment.lo === null ? -(2n ** 63n) : BigInt(segment.lo);
    const hi = segment.hi === null ? 2n ** 63n : BigInt(segment.hi);
    if (hi - lo < 2n) return null;
    return ((lo + hi) / 2n).toString();
  }
  const client = side === 'branch' ? options.branch : options.production;
  const params: unknown[] = [];
  const predicate = rangePredicate(plan, segment, params);
  params.push(Math.floor(size / 2));
  const { rows } = await client.query(
    `select (${plan.segmentExpr})::text as m from ${from[side]} where ${predicate} order by ${plan.segmentExpr} offset $${params.length} limit 1`,
    params,
  );
  const median: string | undefined = rows[0]?.m;
  if (median === undefined || median === segment.lo) {
    // Everything from the low bound up to the median shares one value: split just after it.
    const after = await client.query(
      `select min(${plan.segmentExpr})::text as m from ${from[side]} where ${predicate} and ${plan.segmentExpr} > $${params.length}::${plan.segmentType}`,
      [...params.slice(0, -1), median ?? segment.lo],
    );
    return after.rows[0]?.m ?? null;
  }
  return median;
}

/** Key → row hash of one side's segment: rows cross as a key and 8 bytes, not as whole rows. */
async function segmentHashes(client: pg.ClientBase, from: string, plan: Plan, segment: Segment): Promise<Map<string, string>> {
  const params: unknown[] = [];
  const predicate = rangePredicate(plan, segment, params);
  const keys = plan.keyColumns.map((c) => `${quoteIdent(c.name)}::text`).join(', ');
  const { rows } = await client.query({ text: `select ${keys}, hashtextextended(${plan.rowText}, 0)::text from ${from} where ${predicate}`, values: params, rowMode: 'array' });
  const out = new Map<string, string>();
  for (const row of rows as string[][]) out.set(JSON.stringify(row.slice(0, -1)), row.at(-1)!);
  return out;
}

/** Full rows of a segment; with `onlyKeys`, just the rows with those keys (JSON arrays of key texts). */
async function fetchSegment(client: pg.ClientBase, from: string, plan: Plan, segment: Segment, onlyKeys?: string[]): Promise<Map<string, { values: Values; count: number }>> {
  const params: unknown[] = [];
  let predicate = rangePredicate(plan, segment, params);
  if (onlyKeys) {
    const parsed = onlyKeys.map((k) => JSON.parse(k) as (string | null)[]);
    const arrays = plan.keyColumns.map((c, i) => {
      params.push(parsed.map((k) => k[i]));
      return `$${params.length}::text[]`;
    });
    const names = plan.keyColumns.map((c) => quoteIdent(c.name)).join(', ');
    const casts = plan.keyColumns.map((c, i) => `k.c${i}::${c.type}`).join(', ');
    predicate += ` and (${names}) in (select ${casts} from unnest(${arrays.join(', ')}) as k(${plan.keyColumns.map((_, i) => `c${i}`).join(', ')}))`;
  }
  const cols = plan.compared.map((c, i) => `${quoteIdent(c.name)}::text as c${i}`).join(', ');
  const order = plan.keyColumns.map((c) => (c.collatable ? `${quoteIdent(c.name)} collate "C"` : quoteIdent(c.name))).join(', ');
  const sql =
    plan.mode === 'key'
      ? `select ${cols}, 1 as n from ${from} where ${predicate} order by ${order}`
      : `select ${cols}, count(*)::int8 as n from ${from} where ${predicate} group by ${plan.compared.map((_, i) => i + 1).join(', ')} order by ${plan.compared.map((c) => `${quoteIdent(c.name)}::text collate "C"`).join(', ')}`;
  const { rows } = await client.query({ text: sql, values: params, rowMode: 'array' });
  const out = new Map<string, { values: Values; count: number }>();
  const keyIdx = plan.keyColumns.map((k) => plan.compared.findIndex((c) => c.name === k.name));
  for (const row of rows as (string | null)[][]) {
    const values: Values = {};
    plan.compared.forEach((c, i) => (values[c.name] = row[i] ?? null));
    const id = JSON.stringify(plan.mode === 'key' ? keyIdx.map((i) => row[i]) : row.slice(0, plan.compared.length));
    out.set(id, { values, count: Number(row[plan.compared.length]) });
  }
  return out;
}

async function compareSegment(options: RowDiffOptions, from: { branch: string; production: string }, plan: Plan, segment: Segment, summary: RowDiffSummary): Promise<void> {
  let onlyKeys: string[] | undefined;
  if (plan.mode === 'key') {
    // Keys and row hashes first; whole rows only for the keys that differ.
    const [bh, ph] = await Promise.all([segmentHashes(options.branch, from.branch, plan, segment), segmentHashes(options.production, from.production, plan, segment)]);
    const differing = [...bh].filter(([k, h]) => ph.get(k) !== h).map(([k]) => k);
    for (const k of ph.keys()) if (!bh.has(k)) differing.push(k);
    if (differing.length === 0) return;
    if (differing.length < Math.max(bh.size, ph.size) / 2) onlyKeys = differing;
  }
  const [branchRows, prodRows] = await Promise.all([
    fetchSegment(options.branch, from.branch, plan, segment, onlyKeys),
    fetchSegment(options.production, from.production, plan, segment, onlyKeys),
  ]);
  const keyOf = (v: Values): Values | null => (plan.mode === 'key' ? Object.fromEntries(plan.keyColumns.map((k) => [k.name, v[k.name] ?? null])) : null);
  const emit = async (d: RowDifference) => {
    summary[d.kind === 'missing' ? 'missing' : d.kind === 'changed' ? 'changed' : 'extra'] += d.count;
    await options.onDifference?.(d);
  };
  for (const [id, b] of branchRows) {
    const p = prodRows.get(id);
    if (plan.mode === 'multiset') {
      const diff = b.count - (p?.count ?? 0);
      if (diff > 0) await emit({ kind: 'missing', key: null, branch: b.values, production: null, changedColumns: [], count: diff });
      else if (diff < 0) await emit({ kind: 'extra', key: null, branch: null, production: p!.values, changedColumns: [], count: -diff });
      continue;
    }
    if (!p) {
      await emit({ kind: 'missing', key: keyOf(b.values), branch: b.values, production: null, changedColumns: [], count: 1 });
      continue;
    }
    const changed = plan.compared.filter((c) => b.values[c.name] !== p.values[c.name]).map((c) => c.name);
    if (changed.length) await emit({ kind: 'changed', key: keyOf(b.values), branch: b.values, production: p.values, changedColumns: changed, count: 1 });
  }
  for (const [id, p] of prodRows) {
    if (branchRows.has(id)) continue;
    await emit({ kind: 'extra', key: keyOf(p.values), branch: null, production: p.values, changedColumns: [], count: p.count });
  }
}

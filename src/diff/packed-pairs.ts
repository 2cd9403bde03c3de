import type pg from 'pg';
import type { TableInfo } from '../db/introspect.js';
import { arrayLiteral, quoteIdent } from '../db/sql.js';
import type { Plan } from './plan.js';
import type { KeyDifference } from './types.js';

/**
 * Settling a single integer or uuid key without COPY: each key range (or dirty eighth of one) comes back
 * as one text of `key:hash` pairs in key order, a row per range instead of a row per key.
 * Receiving and filing a COPY row per key cost the client more CPU than the server spent reading
 * the rows. The texts' common beginning and end are rows equal on both sides and are skipped
 * unparsed; the rest is merged in one ordered walk, without sets or sorting, so a range where a
 * tenth of the rows changed costs little more than one where a single row did.
 */

/** One side's text of `key:hash` pairs per sub-range, in key order (undefined when it has no rows), and its number of rows. */
export async function packedSide(client: pg.ClientBase, table: TableInfo, plan: Plan, subs: { lo: string; hi: string; inc: boolean }[]): Promise<{ texts: (string | undefined)[]; rows: number }> {
  const key = quoteIdent(plan.keyColumns[0]!.name);
  const { rows } = await client.query({
    text: `select r.i, x.v, x.n from unnest(${arrayLiteral(subs.map((r) => r.lo), plan.segmentType)}, ${arrayLiteral(subs.map((r) => r.hi), plan.segmentType)}, ${arrayLiteral(subs.map((r) => String(r.inc)), 'bool')}) with ordinality as r(lo, hi, inc, i)
      cross join lateral (select string_agg(${key}::text || ':' || (${plan.rowHash})::text, ' ' order by ${key}) as v, count(*) as n from ${table.qualified}
        where ${plan.where} and ${key} >= r.lo and ${key} <= r.hi and (r.inc or ${key} < r.hi)) x where x.v is not null`,
    rowMode: 'array',
  });
  const texts: (string | undefined)[] = [];
  let count = 0;
  for (const [i, v, n] of rows as [string, string, string][]) {
    texts[Number(i) - 1] = v;
    count += Number(n);
  }
  return { texts, rows: count };
}

/** uuids as Postgres prints them (lower-case hex, dashes at fixed places) sort as their bytes do. */
export const compareUuidTexts = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Integers printed in decimal (as Postgres prints them), compared by value without parsing. */
export function compareIntegerTexts(a: string, b: string): number {
  const negative = a.charCodeAt(0) === 45;
  if (negative !== (b.charCodeAt(0) === 45)) return negative ? -1 : 1;
  if (a.length !== b.length) return a.length < b.length !== negative ? -1 : 1;
  if (a === b) return 0;
  return a < b !== negative ? -1 : 1;
}

const keyOf = (pair: string) => pair.slice(0, pair.indexOf(':'));

/**
 * The differing keys of one segment, from its sub-ranges' texts on each side (in the same
 * sub-range order), appended to out. The order is the one the streamed merge (mergeSegment in
 * hash-stream.ts) gives the same rows: between two keys both sides hold, first the keys only in
 * production, then the keys only in the branch, then the common key if its hash differs.
 */
export function mergePackedSegment(b: readonly (string | undefined)[], p: readonly (string | undefined)[], out: KeyDifference[], compare = compareIntegerTexts): void {
  let extra: string[] = [];
  let missing: string[] = [];
  const flush = () => {
    for (const k of extra) out.push({ kind: 'extra', key: [k], rowHash: null, count: 1 });
    for (const k of missing) out.push({ kind: 'missing', key: [k], rowHash: null, count: 1 });
    if (extra.length) extra = [];
    if (missing.length) missing = [];
  };
  const parts = Math.max(b.length, p.length);
  for (let s = 0; s < parts; s++) {
    const bt = b[s] ?? '';
    const pt = p[s] ?? '';
    if (bt === pt) {
      if (bt) flush();
      continue;
    }
    // Common beginning, cut back to a pair boundary (a space both texts have at the same place).
    const n = Math.min(bt.length, pt.length);
    let i = 0;
    while (i < n && bt.charCodeAt(i) === pt.charCodeAt(i)) i++;
    const start = bt.lastIndexOf(' ', i - 1) + 1;
    // Common end, not overlapping the beginning, cut forward to a pair boundary.
    let j = 0;
    while (j < n - start && bt.charCodeAt(bt.length - 1 - j) === pt.charCodeAt(pt.length - 1 - j)) j++;
    const space = bt.indexOf(' ', bt.length - j);
    const [bEnd, pEnd] = space < 0 ? [bt.length, pt.length] : [space, space - bt.length + pt.length];
    if (start > 0) flush();
    walk(start < bEnd ? bt.slice(start, bEnd).split(' ') : [], start < pEnd ? pt.slice(start, pEnd).split(' ') : []);
    if (space >= 0) flush();
  }
  flush();

  function walk(bs: string[], ps: string[]): void {
    let i = 0;
    let j = 0;
    // A text out of key order would make the walk report equal rows as differing: fail instead.
    const last = { b: '', p: '' };
    const take = (side: 'b' | 'p', k: string) => {
      if (last[side] && compare(last[side], k) >= 0) throw new Error(`internal: packed pairs out of key order (${last[side]} before ${k})`);
      last[side] = k;
      return k;
    };
    while (i < bs.length || j < ps.length) {
      const x = bs[i];
      const y = ps[j];
      const c = x === undefined ? 1 : y === undefined ? -1 : x === y ? 0 : compare(keyOf(x), keyOf(y));
      if (c < 0) {
        missing.push(take('b', keyOf(x!)));
        i++;
      } else if (c > 0) {
        extra.push(take('p', keyOf(y!)));
        j++;
      } else {
        const kx = keyOf(x!);
        const ky = x === y ? kx : keyOf(y!);
        take('b', kx);
        take('p', ky);
        flush();
        if (x !== y) out.push({ kind: 'changed', key: [kx], rowHash: null, count: 1 });
        i++;
        j++;
      }
    }
  }
}

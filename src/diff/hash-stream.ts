import type pg from 'pg';
import { StringDecoder } from 'node:string_decoder';
import { to as copyTo } from 'pg-copy-streams';
import { currentDriver } from '../db/connect.js';
import type { TableInfo } from '../db/introspect.js';
import { arrayLiteral, quoteIdent } from '../db/sql.js';
import type { Plan } from './plan.js';
import type { KeyRange, Segmentation } from './segments.js';
import { compareIntegerTexts, compareUuidTexts, mergePackedSegment, packedSide } from './packed-pairs.js';
import type { KeyDifference } from './types.js';

/**
 * Settling dirty segments: both sides stream `(segment, key, 64-bit row hash)` with COPY … TO
 * STDOUT, a batch of segments per query, and the two streams are merged here segment by
 * segment. Only keys and hashes cross the wire; whole rows are fetched later for the keys that
 * differ. Segments are ranged through the key's index when possible (a nested loop over the
 * ranges, so each segment's rows arrive together), else picked out of one scan by bucket. A
 * single integer key skips COPY: a text of `key:hash` pairs per range (see packsPairs).
 */

/** A segment to settle: a key range (index mode) or an initial bucket (scan mode). */
export interface DirtySegment {
  bucket: number;
  range: KeyRange | null;
  /** After narrowing: the sub-buckets (bit i = key hash & 7 == i) whose checksums differ. */
  mask?: number;
  /** Whether its pairs may come back as one text per side (few rows: a skewed key can make one segment hold most of a table). */
  packed?: boolean;
}

const SUB_BITS = 3;
const SUBS = 1 << SUB_BITS;
const ALL_SUBS = (1 << SUBS) - 1;

/**
 * A key's sub-bucket within its segment, the same on both sides: for integer ranges the key's
 * eighth of the range (so a dirty eighth is streamed by an index range scan of its own rows), else
 * the key text's hash & 7 (rows of a dirty eighth are then picked out of the segment's rows).
 */
function subOf(plan: Plan, seg: Segmentation): string {
  if (seg.integerRanges) {
    const k = `${plan.segmentExpr}::int8`;
    return `((${k} - r.lo::int8) / ((r.hi::int8 - r.lo::int8) / ${SUBS} + 1))::int`;
  }
  const keyText = plan.keyColumns.length === 1 ? `${quoteIdent(plan.keyColumns[0]!.name)}::text` : `row(${plan.keyColumns.map((c) => quoteIdent(c.name)).join(', ')})::text`;
  return `(hashtext(${keyText}) & ${SUBS - 1})`;
}

/** The key sub-ranges (inclusive) of an integer range's eighths set in mask, as subOf numbers them. */
export function integerSubRanges(range: KeyRange, mask: number): { lo: string; hi: string }[] {
  const lo = BigInt(range.lo);
  // The step from the range's own hi, as subOf computes it in SQL; the last key from whether hi is in.
  const step = (BigInt(range.hi) - lo) / BigInt(SUBS) + 1n;
  const last = range.hiInclusive ? BigInt(range.hi) : BigInt(range.hi) - 1n;
  const out: { lo: string; hi: string }[] = [];
  for (let i = 0; i < SUBS; i++) {
    if (!((mask >> i) & 1)) continue;
    const from = lo + BigInt(i) * step;
    if (from > last) break;
    const to = from + step - 1n;
    out.push({ lo: from.toString(), hi: (to > last ? last : to).toString() });
  }
  return out;
}

function rangesSql(plan: Plan, batch: DirtySegment[], withMask: boolean): string {
  const type = plan.segmentType;
  const ranges = batch.map((s) => s.range!);
  const mask = withMask ? `, ${arrayLiteral(batch.map((s) => String(s.mask ?? ALL_SUBS)), 'int')}` : '';
  return `unnest(${arrayLiteral(ranges.map((r) => r.lo), type)}, ${arrayLiteral(ranges.map((r) => r.hi), type)}, ${arrayLiteral(ranges.map((r) => String(r.hiInclusive)), 'bool')}${mask})
        with ordinality as r(lo, hi, inc, ${withMask ? 'mask, ' : ''}i)`;
}

const inRange = (plan: Plan) => `${plan.segmentExpr} >= r.lo and ${plan.segmentExpr} <= r.hi and (r.inc or ${plan.segmentExpr} < r.hi)`;

/**
 * Before streaming, dirty key-range segments are narrowed in one query per side: count and hash
 * sum per eighth (subOf) of each segment. Only the eighths that differ are streamed, so about an
 * eighth of a scattered change's segment crosses the wire and is merged here.
 *
 * Each segment is one index range scan under a plain aggregate: eight filtered counts and sums,
 * the row hash computed once per row (offset 0 keeps the subquery), sent back as one text per
 * segment. Grouping by (segment, eighth) instead sorted every segment's full-width rows before
 * hashing them, and sent a row per eighth for the client to parse.
 */
export async function narrowBatch<S extends DirtySegment>(
  sides: { branch: { client: pg.ClientBase; table: TableInfo }; production: { client: pg.ClientBase; table: TableInfo } },
  plan: Plan,
  seg: Segmentation,
  batch: S[],
): Promise<S[]> {
  if (plan.mode !== 'key' || batch.length === 0 || !batch.every((s) => s.range)) return batch;
  const parts = Array.from({ length: SUBS }, (_, k) => `count(*) filter (where y.s = ${k}), coalesce(sum(y.h) filter (where y.s = ${k}), 0)`).join(', ');
  const sums = async (client: pg.ClientBase, table: TableInfo) => {
    const { rows } = await client.query({
      text: `select r.i, x.v from ${rangesSql(plan, batch, false)}
        cross join lateral (select concat_ws(' ', ${parts}) as v
          from (select ${subOf(plan, seg)} as s, ${plan.rowHash} as h from ${table.qualified} where ${plan.where} and ${inRange(plan)} offset 0) y) x`,
      rowMode: 'array',
    });
    const out: string[] = [];
    for (const [i, v] of rows as [string, string][]) out[Number(i) - 1] = v;
    return out;
  };
  const [b, p] = await Promise.all([sums(sides.branch.client, sides.branch.table), sums(sides.production.client, sides.production.table)]);
  const out: S[] = [];
  batch.forEach((s, i) => {
    const [bv, pv] = [b[i], p[i]];
    if (bv === undefined || pv === undefined) throw new Error(`internal: no narrowing sums for segment ${i + 1} of a batch of ${batch.length}`);
    if (bv === pv) return;
    // count and sum of eighth k are fields 2k and 2k + 1.
    const [bf, pf] = [bv.split(' '), pv.split(' ')];
    let mask = 0;
    for (let k = 0; k < SUBS; k++) if (bf[2 * k] !== pf[2 * k] || bf[2 * k + 1] !== pf[2 * k + 1]) mask |= 1 << k;
    if (mask) out.push({ ...s, mask });
  });
  return out;
}

/** One side's rows of one segment: key identity → hash (key mode) or row hash → copies (multiset). */
export type SideRows = { ids: string[]; values: Map<string, string>; keys: Map<string, string[]> };

function copyField(raw: string): string | null {
  if (raw === '\\N') return null;
  if (!raw.includes('\\')) return raw;
  return raw.replace(/\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))/g, (_, oct: string | undefined, hex: string | undefined, ch: string | undefined) => {
    if (oct) return String.fromCharCode(parseInt(oct, 8));
    if (hex) return String.fromCharCode(parseInt(hex, 16));
    return ({ b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' } as Record<string, string>)[ch!] ?? ch!;
  });
}

/**
 * Runs a query through COPY and hands each row's fields (text, decoded) to onRow. COPY sends a
 * message per row, so rows are handled in 'data' callbacks, not one awaited chunk at a time.
 */
async function copyRows(client: pg.ClientBase, select: string, onRow: (fields: (string | null)[]) => void, signal?: AbortSignal): Promise<void> {
  if (currentDriver().driver === 'ws') {
    // Neon's WebSocket driver has no COPY: one plain query per batch (a batch is bounded).
    const { rows } = await client.query({ text: select, rowMode: 'array' });
    for (const row of rows as unknown[][]) onRow(row.map((v) => (v === null || v === undefined ? null : String(v))));
    return;
  }
  const stream = client.query(copyTo(`copy (${select}) to stdout`));
  const decoder = new StringDecoder('utf8');
  let rest = '';
  const abort = () => stream.destroy(new Error('aborted'));
  signal?.addEventListener('abort', abort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => {
        try {
          const text = rest + decoder.write(chunk);
          let start = 0;
          for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
            onRow(text.slice(start, nl).split('\t').map(copyField));
            start = nl + 1;
          }
          rest = text.slice(start);
        } catch (err) {
          stream.destroy(err as Error);
        }
      });
      stream.on('error', reject);
      stream.on('end', resolve);
    });
  } finally {
    signal?.removeEventListener('abort', abort);
  }
  rest += decoder.end();
  if (rest) onRow(rest.split('\t').map(copyField));
}

const keyId = (key: string[]) => (key.length === 1 ? key[0]! : JSON.stringify(key));

function streamSql(table: TableInfo, plan: Plan, seg: Segmentation, batch: DirtySegment[]): string {
  const hash = plan.rowHash;
  // Aliased: an output column named like the key would make `order by <key>` sort by its text.
  const keyTexts = plan.keyColumns.map((c, i) => `${quoteIdent(c.name)}::text as k${i}`).join(', ');
  if (plan.mode === 'key' && batch.every((s) => s.range)) {
    const masked = batch.some((s) => s.mask !== undefined);
    const order = plan.keyColumns.map((c) => quoteIdent(c.name)).join(', ');
    if (masked && seg.integerRanges) {
      // Only the dirty eighths' rows are read: each is a range of its own, filed under its segment.
      const subs = batch.flatMap((s, i) => integerSubRanges(s.range!, s.mask ?? ALL_SUBS).map((r) => ({ ...r, i: i + 1 })));
      return `select r.i, x.* from unnest(${arrayLiteral(subs.map((r) => r.lo), plan.segmentType)}, ${arrayLiteral(subs.map((r) => r.hi), plan.segmentType)}, ${arrayLiteral(subs.map((r) => String(r.i)), 'int')}) as r(lo, hi, i)
      cross join lateral (select ${keyTexts}, ${hash}::text as h from ${table.qualified}
        where ${plan.where} and ${plan.segmentExpr} >= r.lo and ${plan.segmentExpr} <= r.hi order by ${order}) x`;
    }
    return `select r.i, x.* from ${rangesSql(plan, batch, masked)}
      cross join lateral (select ${keyTexts}, ${hash}::text as h from ${table.qualified}
        where ${plan.where} and ${inRange(plan)}${masked ? ` and (r.mask >> ${subOf(plan, seg)}) & 1 = 1` : ''} order by ${order}) x`;
  }
  const buckets = arrayLiteral(batch.map((s) => String(s.bucket)), 'int');
  if (plan.mode === 'key') {
    const order = plan.keyColumns.map((c) => (c.collatable ? `${quoteIdent(c.name)} collate "C"` : quoteIdent(c.name))).join(', ');
    return `select array_position(${buckets}, ${seg.bucketSql}), ${keyTexts}, ${hash}::text as h from ${table.qualified}
      where ${plan.where} and ${seg.bucketSql} = any(${buckets}) order by 1, ${order}`;
  }
  const bucket = seg.bucketSql.replaceAll(plan.segmentExpr, 'x.h');
  return `select array_position(${buckets}, b), h::text, count(*)::text from (select ${bucket} as b, x.h from (select ${hash} as h from ${table.qualified} where ${plan.where} offset 0) x) y
    where b = any(${buckets}) group by b, h order by 1, h`;
}

/** One side's rows of a batch, grouped by position in the batch. */
async function streamSide(client: pg.ClientBase, table: TableInfo, plan: Plan, seg: Segmentation, batch: DirtySegment[], signal?: AbortSignal): Promise<SideRows[]> {
  const out: SideRows[] = batch.map(() => ({ ids: [], values: new Map(), keys: new Map() }));
  const keyCount = plan.mode === 'key' ? plan.keyColumns.length : 1;
  await copyRows(
    client,
    streamSql(table, plan, seg, batch),
    (f) => {
      // Rows are filed by segment, so correctness does not depend on the order they arrive in.
      const i = Number(f[0]) - 1;
      if (!(i >= 0 && i < batch.length)) throw new Error(`internal: row for segment ${i + 1} of a batch of ${batch.length}`);
      const key = f.slice(1, 1 + keyCount) as string[];
      const id = keyId(key);
      const side = out[i]!;
      side.ids.push(id);
      side.values.set(id, f[1 + keyCount]!);
      if (plan.mode === 'key') side.keys.set(id, key);
    },
    signal,
  );
  return out;
}

/**
 * The differing keys of a batch, per segment in batch order. Within a segment: the branch's
 * key order, with keys only in production placed where production's order puts them.
 */
export async function settleBatch(
  sides: { branch: { client: pg.ClientBase; table: TableInfo }; production: { client: pg.ClientBase; table: TableInfo } },
  plan: Plan,
  seg: Segmentation,
  batch: DirtySegment[],
  signal?: AbortSignal,
  counts?: { branchRows: number; productionRows: number },
): Promise<KeyDifference[]> {
  const out: KeyDifference[] = [];
  if (packsPairs(plan, seg, batch)) {
    const integer = seg.integerRanges === true;
    const whole = (r: KeyRange) => {
      if (!integer || r.hiInclusive) return [{ lo: r.lo, hi: r.hi, inc: r.hiInclusive }];
      // Integer sub-ranges are read inclusive: a half-open range ends one below its bound, or is empty.
      return BigInt(r.hi) > BigInt(r.lo) ? [{ lo: r.lo, hi: (BigInt(r.hi) - 1n).toString(), inc: true }] : [];
    };
    const subs = batch.flatMap((s, i) => (s.mask === undefined ? whole(s.range!) : integerSubRanges(s.range!, s.mask).map((r) => ({ ...r, inc: true }))).map((r) => ({ ...r, segment: i })));
    const [b, p] = await Promise.all([packedSide(sides.branch.client, sides.branch.table, plan, subs), packedSide(sides.production.client, sides.production.table, plan, subs)]);
    if (counts) {
      counts.branchRows += b.rows;
      counts.productionRows += p.rows;
    }
    for (let k = 0; k < subs.length; ) {
      const first = k;
      while (k < subs.length && subs[k]!.segment === subs[first]!.segment) k++;
      mergePackedSegment(b.texts.slice(first, k), p.texts.slice(first, k), out, integer ? compareIntegerTexts : compareUuidTexts);
    }
    return out;
  }
  const [b, p] = await Promise.all([
    streamSide(sides.branch.client, sides.branch.table, plan, seg, batch, signal),
    streamSide(sides.production.client, sides.production.table, plan, seg, batch, signal),
  ]);
  if (counts) {
    for (const side of b) counts.branchRows += side.ids.length;
    for (const side of p) counts.productionRows += side.ids.length;
  }
  for (let s = 0; s < batch.length; s++) mergeSegment(plan, b[s]!, p[s]!, out);
  return out;
}

/**
 * A single integer key ranged by integer segments (whole or narrowed to eighths), or a single uuid
 * key in whole ranges (its eighths are picked by hash, not by range): settled from packed texts
 * (packed-pairs.ts), whose order pitr can check without asking the server.
 */
const packsPairs = (plan: Plan, seg: Segmentation, batch: DirtySegment[]) =>
  plan.mode === 'key' &&
  plan.keyColumns.length === 1 &&
  batch.every((s) => s.range && s.packed) &&
  (seg.integerRanges === true || (plan.segmentType === 'uuid' && batch.every((s) => s.mask === undefined)));

/**
 * One segment's differing keys from both sides' rows as streamed. Within a segment: the branch's
 * key order, with keys only in production placed where production's order puts them.
 */
export function mergeSegment(plan: Plan, b: SideRows, p: SideRows, out: KeyDifference[]): void {
  const keyed = plan.mode === 'key';
  const copies = (side: SideRows, id: string) => (keyed ? 1 : Number(side.values.get(id)));
  const done = new Set<string>();
  let i = 0;
  let j = 0;
  while (i < b.ids.length || j < p.ids.length) {
    const pid = p.ids[j];
    if (pid !== undefined && done.has(pid)) {
      j++;
      continue;
    }
    if (pid !== undefined && !b.values.has(pid)) {
      out.push({ kind: 'extra', key: keyed ? p.keys.get(pid)! : null, rowHash: keyed ? null : pid, count: copies(p, pid) });
      j++;
      continue;
    }
    const bid = b.ids[i++];
    if (bid === undefined) {
      j++;
      continue;
    }
    if (!p.values.has(bid)) {
      out.push({ kind: 'missing', key: keyed ? b.keys.get(bid)! : null, rowHash: keyed ? null : bid, count: copies(b, bid) });
      continue;
    }
    done.add(bid);
    const bv = b.values.get(bid)!;
    const pv = p.values.get(bid)!;
    if (bv === pv) continue;
    if (keyed) out.push({ kind: 'changed', key: b.keys.get(bid)!, rowHash: null, count: 1 });
    else {
      const d = Number(bv) - Number(pv);
      out.push({ kind: d > 0 ? 'missing' : 'extra', key: null, rowHash: bid, count: Math.abs(d) });
    }
  }
}

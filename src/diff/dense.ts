import type pg from 'pg';
import type { TableInfo } from '../db/introspect.js';
import { quoteIdent } from '../db/sql.js';
import type { Plan } from './plan.js';
import type { KeyRange, Segmentation } from './segments.js';

/**
 * Changes spread over most of a table (a bad `UPDATE … WHERE status = …` touching a tenth of the
 * rows): then nearly every segment differs, the first pass's checksums prune nothing, and
 * hashing every row once more to settle them doubles the work. A block sample of the branch,
 * looked up by key and hash in production, tells such tables apart before any full pass; they
 * are settled directly, every key range streamed once as packed `key:hash` texts (packed-pairs.ts).
 * Only the choice of method rides on the sample, never a result.
 */

const PROBE_PAGES = 32;
/** Too few sampled pages say nothing about the spread of the changes. */
const MIN_PAGES = 8;
/** Share of segments expected to differ above which the first pass is skipped. */
const DENSE_SEGMENTS = 0.4;

export interface DenseSample {
  /** Sampled branch keys (as text), for estimating how the rows spread over integer key ranges. */
  keys: string[];
  rows: number;
}

/**
 * Whether the plan can be settled without the first pass, from packed texts: a single integer key
 * ranged arithmetically, or a single uuid key in ranges cut at sampled quantiles.
 */
export const canSkipChecksums = (plan: Plan, seg: Segmentation) =>
  plan.mode === 'key' && plan.keyColumns.length === 1 && seg.range(0) !== null && (seg.integerRanges === true || plan.segmentType === 'uuid');

/**
 * A block sample of the branch's rows (key, page, hash), and which of them production holds with
 * the same hash. Dense when the changed share would leave few segments clean and the changes
 * are spread as widely as that share implies. Null when not dense, or when the table cannot be
 * sampled (partitioned) or the sample is too small to judge.
 */
export async function sampleDenseChanges(
  branch: { client: pg.ClientBase; table: TableInfo },
  production: { client: pg.ClientBase; table: TableInfo },
  plan: Plan,
  seg: Segmentation,
): Promise<DenseSample | null> {
  if (branch.table.kind === 'partitioned') return null;
  const key = quoteIdent(plan.keyColumns[0]!.name);
  const percent = Math.min(100, (PROBE_PAGES * 100) / Math.max(1, seg.pages.branch));
  const { rows } = await branch.client.query({
    text: `select (ctid::text::point)[0]::int8::text, ${key}::text, (${plan.rowHash})::text from ${branch.table.qualified} tablesample system (${percent}) repeatable (7) where ${plan.where}`,
    rowMode: 'array',
  });
  const sample = rows as [string, string, string][];
  const pages = new Set(sample.map((r) => r[0]));
  if (pages.size < MIN_PAGES) return null;
  const same = await production.client.query({
    text: `select pitr_keys.k0::text from unnest($1::${plan.segmentType}[], $2::int8[]) as pitr_keys(k0, h)
            where exists (select from ${production.table.qualified} where ${key} = pitr_keys.k0 and ${plan.where} and (${plan.rowHash}) = pitr_keys.h)`,
    values: [sample.map((r) => r[1]), sample.map((r) => r[2])],
    rowMode: 'array',
  });
  const unchanged = new Set((same.rows as [string][]).map((r) => r[0]));
  const changed = sample.filter((r) => !unchanged.has(r[1]));
  // Scattered changes at this share would leave this many segments, and pages, without one.
  const share = changed.length / sample.length;
  const dirtySegments = 1 - (1 - share) ** (seg.estimatedRows / seg.count);
  const dirtyPages = 1 - (1 - share) ** (sample.length / pages.size);
  // Changes bunched in a few key ranges (or heap pages) show on fewer pages than that: the first pass prunes them.
  const spread = new Set(changed.map((r) => r[0])).size / pages.size;
  if (dirtySegments <= DENSE_SEGMENTS || spread < dirtyPages / 2) return null;
  return { keys: sample.map((r) => r[1]), rows: sample.length };
}

/** Key ranges are judged for crowding in this many groups: finer, a block sample is too patchy. */
const GROUPS = 64;

/**
 * Every key range of the segmentation, with the rows each is expected to hold (both sides, as
 * the first pass's counts would be): an even share, except in groups of ranges where the sample
 * finds several times an even share of the rows. A skewed key's crowded ranges are then not taken
 * for light ones, which matters because a range's rows bound the size of its packed text.
 */
export function everyRange(seg: Segmentation, sample: DenseSample): { bucket: number; range: KeyRange; rows: number }[] {
  const first = seg.range(0);
  if (!first) return [];
  const even = (2 * seg.estimatedRows) / seg.count;
  // Ranges cut at a sample's quantiles (keys that are not integers) hold even shares already.
  if (!seg.integerRanges) return Array.from({ length: seg.count }, (_, b) => ({ bucket: b, range: seg.range(b)!, rows: Math.ceil(even) }));
  const min = BigInt(first.lo);
  const step = BigInt(first.hi) - min + 1n;
  const groups = Math.min(GROUPS, seg.count);
  const groupOf = (bucket: number) => Math.floor((bucket * groups) / seg.count);
  const sampled = new Array<number>(groups).fill(0);
  for (const k of sample.keys) sampled[groupOf(Math.min(seg.count - 1, Number((BigInt(k) - min) / step)))]!++;
  const bucketsIn = new Array<number>(groups).fill(0);
  for (let b = 0; b < seg.count; b++) bucketsIn[groupOf(b)]!++;
  const perBucket = sampled.map((n, g) => {
    const share = n / Math.max(1, sample.rows);
    const crowded = share > (4 * bucketsIn[g]!) / seg.count;
    return crowded ? Math.max(even, (share * 2 * seg.estimatedRows) / bucketsIn[g]!) : even;
  });
  return Array.from({ length: seg.count }, (_, b) => ({ bucket: b, range: seg.range(b)!, rows: Math.ceil(perBucket[groupOf(b)]!) }));
}

import type pg from 'pg';
import type { TableInfo } from '../db/introspect.js';
import { serverFacts } from '../db/server-facts.js';
import { checkWhere, whereRejected } from '../db/sql.js';
import { bucketChecksums, EMPTY, rangeChecksum, sameChecksum, splitRange, type Checksum } from './checksums.js';
import { fetchDifferences } from './fetch.js';
import { narrowBatch, settleBatch, type DirtySegment } from './hash-stream.js';
import { canSkipChecksums, everyRange, sampleDenseChanges, type DenseSample } from './dense.js';
import { defaultJobs, inOrder, openJobs } from './jobs.js';
import { planRowDiff, useFastRowHash, useKeyCollation, type Plan } from './plan.js';
import { segmentTable, type KeyRange, type Segmentation } from './segments.js';
import type { DiffKeysOptions, KeyDifference, RowDifference, RowDiffSummary } from './types.js';

/**
 * The row diff, computed inside Postgres (design §4):
 *  1. segments from the data (segments.ts), then one scan per side, split over the jobs: count
 *     and 64-bit hash sum per segment, both sides at once;
 *  2. each differing segment is either bisected through the key's index (few changes in a big
 *     segment) or settled by streaming (key, row hash) pairs from both sides and merging them,
 *     whichever the cost model (row cost measured by step 1, round trip measured) says is cheaper;
 *  3. whole rows are fetched for the differing keys only.
 * When a block sample shows changes spread over most of the table (dense.ts), step 1 would prune
 * nothing: every segment is settled directly, each key range streamed once.
 * Batches of segments run on the jobs in parallel and are emitted in segment order, so the
 * output is the same for any number of jobs. Memory is bounded by the batch size.
 */

const BATCH_ROWS = 50_000;
const BATCH_SEGMENTS = 4_000;
const DEFAULT_SEGMENT_ROWS = 64;
const SMALL_TABLE_ROWS = 100_000;
const PACKED_ROWS = 100_000;

/** One job: a connection to each side, on the shared snapshot. */
interface Sides {
  branch: { client: pg.ClientBase; table: TableInfo };
  production: { client: pg.ClientBase; table: TableInfo };
}

interface Prepared {
  plan: Plan;
  summary: RowDiffSummary;
  /** Leaves to settle, in key order, batched. */
  batches: DirtySegment[][];
  seg: Segmentation;
  workers: Sides[];
  close(): Promise<void>;
  /** Rows were not counted by a first pass: settling counts them. */
  countRows: boolean;
}

const now = () => performance.now() / 1000;

/** A segment (or bisected part of one) to settle, with the rows both sides hold in it (or in its dirty eighths, once narrowed). */
type Leaf = DirtySegment & { rows: number };

async function prepare(options: DiffKeysOptions, started: number): Promise<Prepared> {
  const tables = { branch: options.branchTable, production: options.productionTable };
  let plan = planRowDiff(options.branchTable, options.productionTable, options.where, options.columns);
  if (options.where !== undefined) {
    await Promise.all([checkWhere(options.branch, options.branchTable.qualified, options.where), checkWhere(options.production, options.productionTable.qualified, options.where)]);
  }
  plan = await useKeyCollation(plan, options.branch, options.production, tables);
  plan = await useFastRowHash(plan, options.branch, options.production);
  const segmentRows = Math.max(1, options.segmentRows ?? DEFAULT_SEGMENT_ROWS);
  // A connection's round trip, measured by the first question it was asked (server-facts.ts).
  const rtt = Math.max(...(await Promise.all([serverFacts(options.branch), serverFacts(options.production)])).map((f) => f.roundTrip));
  const seg = await segmentTable(plan, { client: options.branch, table: tables.branch }, { client: options.production, table: tables.production }, segmentRows);

  // By default small tables stay on one connection: opening and syncing more costs more than it saves.
  const wanted = options.jobs ?? (options.connect && seg.estimatedRows >= SMALL_TABLE_ROWS ? await defaultJobs(options.branch, options.production) : 1);
  // The sample's round trips overlap the job connections' (over a 20 ms link each costs as much as hashing thousands of rows).
  const [opened, sampled] = await Promise.allSettled([
    Promise.all([openJobs(options.branch, options.connect?.branch, wanted), openJobs(options.production, options.connect?.production, wanted)]),
    denseSample(options, plan, seg, tables),
  ]);
  if (sampled.status === 'rejected') {
    if (opened.status === 'fulfilled') await Promise.all(opened.value.map((j) => j.close()));
    throw sampled.reason;
  }
  if (opened.status === 'rejected') throw opened.reason;
  const [bJobs, pJobs] = opened.value;
  const sample = sampled.value;
  const jobs = Math.min(bJobs.clients.length, pJobs.clients.length);
  const close = async () => void (await Promise.all([bJobs.close(), pJobs.close()]));
  const workers: Sides[] = Array.from({ length: jobs }, (_, i) => ({
    branch: { client: bJobs.clients[i]!, table: tables.branch },
    production: { client: pJobs.clients[i]!, table: tables.production },
  }));
  try {
    const summary = emptySummary(plan, jobs);
    let settled: Leaf[];
    if (sample) {
      settled = everyRange(seg, sample);
      summary.segments.initial = summary.segments.fetched = settled.length;
      options.onProgress?.({ phase: 'diff', message: `${plan.table}: changes on most sampled pages, every segment settled in one pass (${jobs} job${jobs > 1 ? 's' : ''} per side)` });
    } else {
      options.onProgress?.({ phase: 'diff', message: `${plan.table}: checksums of ${seg.count} segments (${jobs} job${jobs > 1 ? 's' : ''} per side)` });
      settled = await firstPass({ options, plan, seg, tables, rtt, segmentRows, workers, summary });
    }
    const batches = batchLeaves(plan, settled, options);
    summary.seconds = now() - started;
    return { plan, summary, batches, seg, workers, close, countRows: sample !== null };
  } catch (err) {
    await close();
    throw err;
  }
}

function emptySummary(plan: Plan, jobs: number): RowDiffSummary {
  return {
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
    jobs,
    seconds: 0,
  };
}

/** Dense changes (dense.ts) skip the first pass, unless a test forces or forbids it. */
async function denseSample(options: DiffKeysOptions, plan: Plan, seg: Segmentation, tables: { branch: TableInfo; production: TableInfo }): Promise<DenseSample | null> {
  if (options.skipChecksums === false || options.strategy === 'bisect' || !canSkipChecksums(plan, seg)) return null;
  if (options.skipChecksums) return { keys: [], rows: 0 };
  if (seg.estimatedRows < SMALL_TABLE_ROWS) return null;
  return sampleDenseChanges({ client: options.branch, table: tables.branch }, { client: options.production, table: tables.production }, plan, seg);
}

interface FirstPass {
  options: DiffKeysOptions;
  plan: Plan;
  seg: Segmentation;
  tables: { branch: TableInfo; production: TableInfo };
  rtt: number;
  segmentRows: number;
  workers: Sides[];
  summary: RowDiffSummary;
}

/**
 * Count and hash sum per segment on both sides; the differing segments, bisected or narrowed
 * where the cost model says it pays, are the leaves to settle. Fills the summary's row counts.
 */
async function firstPass({ options, plan, seg, tables, rtt, segmentRows, workers, summary }: FirstPass): Promise<Leaf[]> {
  const passStart = now();
  const [bSums, pSums] = await Promise.all([
    bucketChecksums(workers.map((w) => w.branch.client), tables.branch, plan, seg, seg.pages.branch),
    bucketChecksums(workers.map((w) => w.production.client), tables.production, plan, seg, seg.pages.production),
  ]);
  const passSeconds = now() - passStart;
  const buckets = [...new Set([...bSums.keys(), ...pSums.keys()])].sort((x, y) => x - y);
  summary.segments.initial = buckets.length;
  const dirty: { bucket: number; b: Checksum; p: Checksum }[] = [];
  for (const bucket of buckets) {
    const b = bSums.get(bucket) ?? EMPTY;
    const p = pSums.get(bucket) ?? EMPTY;
    summary.branchRows += b.n;
    summary.productionRows += p.n;
    if (!sameChecksum(b, p)) dirty.push({ bucket, b, p });
  }

  options.onProgress?.({ phase: 'diff', message: `${plan.table}: ${dirty.length} of ${buckets.length} segments differ` });
  // Cost model: seconds per row of one connection's hashing scan (measured just now), and a round trip.
  const biggest = Math.max(summary.branchRows, summary.productionRows, 1);
  const rowCost = (passSeconds * workers.length) / biggest;
  const streamCost = (n: number) => 2 * n * rowCost;
  const fraction = Math.min(0.999, dirty.length / Math.max(1, buckets.length));
  const lambda = -Math.log(1 - fraction);
  const average = biggest / Math.max(1, buckets.length);
  const expected = (n: number, b: Checksum, p: Checksum) => {
    const l = (lambda * n) / average;
    return Math.max(Math.abs(b.n - p.n), 1, l > 1e-9 ? l / (1 - Math.exp(-l)) : 1);
  };
  const bisectCost = (n: number, d: number, depth = 0): number => {
    const stream = streamCost(n);
    if (n < 2 || depth > 40) return stream;
    const half = (n / 2) * rowCost + rtt;
    const deeper = d <= 1 ? bisectCost(n / 2, 1, depth + 1) : 2 * bisectCost(n / 2, d / 2, depth + 1);
    return Math.min(stream, half + deeper);
  };
  const shouldBisect = (n: number, b: Checksum, p: Checksum) => {
    if (!plan.indexRanges || options.strategy === 'stream') return false;
    if (options.strategy === 'bisect') return n > segmentRows;
    const stream = streamCost(n);
    return bisectCost(n, expected(n, b, p)) < stream * 0.9;
  };

  const leaves: Leaf[] = [];
  const settle = async (range: KeyRange, b: Checksum, p: Checksum, bucket: number): Promise<void> => {
    const n = Math.max(b.n, p.n);
    if (!shouldBisect(n, b, p)) return void leaves.push({ bucket, range, rows: b.n + p.n });
    const larger = b.n >= p.n ? options.branch : options.production;
    const halves = await splitRange(larger, b.n >= p.n ? tables.branch : tables.production, plan, range, n);
    if (!halves) return void leaves.push({ bucket, range, rows: b.n + p.n });
    const [bl, pl] = await Promise.all([rangeChecksum(options.branch, tables.branch, plan, halves[0]), rangeChecksum(options.production, tables.production, plan, halves[0])]);
    summary.segments.checked++;
    // Counts and hash sums add up, so the right half is the rest.
    const br = { n: b.n - bl.n, h: b.h - bl.h };
    const pr = { n: p.n - pl.n, h: p.h - pl.h };
    if (!sameChecksum(bl, pl)) await settle(halves[0], bl, pl, bucket);
    if (!sameChecksum(br, pr)) await settle(halves[1], br, pr, bucket);
  };
  for (const d of dirty) {
    options.signal?.throwIfAborted();
    const range = seg.range(d.bucket);
    if (range) await settle(range, d.b, d.p, d.bucket);
    else leaves.push({ bucket: d.bucket, range: null, rows: d.b.n + d.p.n });
  }
  summary.segments.fetched = leaves.length;

  // Changes per dirty segment ~ lambda / fraction; an eighth of it stays clean with probability exp(-that / 8).
  // Narrowing reads each dirty segment once more at about three times a first-pass row's cost, so it
  // pays only when most eighths stay clean: with a tenth of the rows changed (about 40% clean) it
  // cost 7 s where settling whole neighbouring segments as one range cost 5 s.
  const perDirty = lambda / Math.max(fraction, 1e-9);
  const narrow = Math.exp(-perDirty / 8) > 0.5;
  return narrow ? narrowLeaves(workers, plan, seg, leaves, options) : leaves;

}

/** Leaves in batches of at most batchRows rows; neighbouring whole segments merged into one range. */
function batchLeaves(plan: Plan, settled: Leaf[], options: DiffKeysOptions): DirtySegment[][] {
  const batches: DirtySegment[][] = [];
  let current: DirtySegment[] = [];
  let rows = 0;
  let lastRows = 0;
  const packedRows = options.packedRows ?? PACKED_ROWS;
  for (const leaf of settled) {
    if (current.length && (rows + leaf.rows > (options.batchRows ?? BATCH_ROWS) || current.length >= BATCH_SEGMENTS)) {
      batches.push(current);
      current = [];
      rows = 0;
    }
    rows += leaf.rows;
    // Neighbouring whole segments are settled as one range: where changes are dense, each
    // segment's own range scan cost more than its rows (measured: 4 µs a row against 1.3).
    const last = current[current.length - 1];
    if (last && adjoins(plan, last, leaf) && lastRows + leaf.rows <= packedRows) {
      last.range = { lo: last.range!.lo, hi: leaf.range!.hi, hiInclusive: leaf.range!.hiInclusive };
      lastRows += leaf.rows;
      continue;
    }
    current.push({ bucket: leaf.bucket, range: leaf.range, packed: leaf.rows <= packedRows, ...(leaf.mask !== undefined && { mask: leaf.mask }) });
    lastRows = leaf.rows;
  }
  if (current.length) batches.push(current);
  return batches;
}

/**
 * Narrowing (when it pays: not when most eighths of a dirty segment differ anyway), for all the
 * leaves at once before any is settled: a few big queries per side (one per job, at most
 * BATCH_SEGMENTS segments each), count and hash sum per eighth of each segment (narrowBatch).
 * Batch by batch it was a query per side for every ~330 segments, with a settling stream and
 * a fetch between them. Afterwards only the rows of the dirty eighths count towards a batch, so
 * there are about eight times fewer settling batches.
 */
async function narrowLeaves(workers: Sides[], plan: Plan, seg: Segmentation, leaves: Leaf[], options: DiffKeysOptions): Promise<Leaf[]> {
  if (plan.mode !== 'key' || leaves.length === 0 || !leaves.every((l) => l.range)) return leaves;
  options.onProgress?.({ phase: 'diff', message: `${plan.table}: narrowing ${leaves.length} differing segments to their differing eighths` });
  const size = Math.min(BATCH_SEGMENTS, Math.ceil(leaves.length / workers.length));
  const chunks: Leaf[][] = [];
  for (let i = 0; i < leaves.length; i += size) chunks.push(leaves.slice(i, i + size));
  const out: Leaf[][] = chunks.map(() => []);
  let next = 0;
  await Promise.all(
    workers.slice(0, chunks.length).map(async (w) => {
      while (next < chunks.length) {
        options.signal?.throwIfAborted();
        const k = next++;
        out[k] = (await narrowBatch(w, plan, seg, chunks[k]!)).map((l) => ({ ...l, rows: Math.ceil((l.rows * popcount(l.mask ?? 0xff)) / 8) }));
      }
    }),
  );
  return out.flat();
}

/**
 * Whether leaf's range starts where the (unnarrowed) segment before it ends: integer ranges are
 * inclusive and the next starts one higher, other ranges are half-open and share the bound.
 */
function adjoins(plan: Plan, last: DirtySegment, leaf: Leaf): boolean {
  const [a, b] = [last.range, leaf.range];
  if (!a || !b || last.mask !== undefined || leaf.mask !== undefined || last.packed !== true) return false;
  if (plan.integerSegments) return a.hiInclusive && BigInt(a.hi) + 1n === BigInt(b.lo);
  return !a.hiInclusive && a.hi === b.lo;
}

const popcount = (mask: number) => {
  let n = 0;
  for (let m = mask; m; m &= m - 1) n++;
  return n;
};

async function run<T extends KeyDifference | RowDifference>(
  options: DiffKeysOptions,
  settleOne: (p: Prepared, batch: DirtySegment[], worker: Sides) => Promise<T[]>,
  onBatch: (items: T[], summary: RowDiffSummary) => Promise<void>,
): Promise<RowDiffSummary> {
  const started = now();
  let prepared: Prepared | undefined;
  try {
    prepared = await prepare(options, started);
    const p = prepared;
    let done = 0;
    for await (const items of inOrder(p.batches, p.workers.length, (batch, w) => settleOne(p, batch, p.workers[w]!))) {
      options.signal?.throwIfAborted();
      done++;
      await onBatch(items, p.summary);
      options.onProgress?.({ phase: 'diff', message: `${p.plan.table}: ${done}/${p.batches.length} batches of differing segments settled`, fraction: done / p.batches.length });
    }
    p.summary.seconds = now() - started;
    return p.summary;
  } catch (err) {
    throw options.where === undefined ? err : whereRejected(err);
  } finally {
    await prepared?.close();
  }
}

const count = (summary: RowDiffSummary, d: { kind: KeyDifference['kind']; count: number }) => (summary[d.kind] += d.count);

/**
 * The differing keys of a table, batch by batch in segment order, without fetching rows: what
 * recovery plans from. Memory stays flat: one batch (≤ 50k rows of keys and hashes) per job.
 * Resolves to the summary (counts complete) when every batch has been handed over.
 */
export async function diffKeys(options: DiffKeysOptions, onKeys: (keys: KeyDifference[]) => void | Promise<void>): Promise<RowDiffSummary> {
  return run<KeyDifference>(
    options,
    async (p, batch, w) => settleBatch(w, p.plan, p.seg, batch, options.signal, p.countRows ? p.summary : undefined),
    async (items, summary) => {
      for (const d of items) count(summary, d);
      if (items.length) await onKeys(items);
    },
  );
}

export async function diffRowsWith(options: DiffKeysOptions & { onDifference?: (d: RowDifference) => void | Promise<void> }): Promise<RowDiffSummary> {
  return run<RowDifference>(
    options,
    async (p, batch, w) => fetchDifferences(w, p.plan, await settleBatch(w, p.plan, p.seg, batch, options.signal, p.countRows ? p.summary : undefined)),
    async (items, summary) => {
      for (const d of items) {
        count(summary, d);
        await options.onDifference?.(d);
      }
    },
  );
}

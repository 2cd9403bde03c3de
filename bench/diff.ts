/**
 * bench/diff: the row-diff engine (src/diff/rows.ts, `diffRows`) against the naive full
 * comparison, in-process, on a throw-away PostgreSQL cluster.
 *
 *   npm run bench:diff [-- --rows 1000000,5000000]     (or BENCH_ROWS=...; default 1000000,3000000)
 *
 * For each N, a table orders(id bigint primary key, customer_id int, status text,
 * total numeric(12,2), note text, created_at timestamptz) with N rows (even ids 2..2N, so rows
 * can be inserted between them) is loaded into database `branch`, vacuumed and analyzed; per
 * scenario `production` is a fresh `create database … template branch` copy, then changed:
 *
 *   identical  no change
 *   random     0.1% of N rows changed, spread at random: 1/3 deleted, 1/3 updated, 1/3 inserted
 *   clustered  the same count in one key range (every row of a window of 0.1% of N touched)
 *
 * then analyzed and checkpointed, and both tables are read once (warm cache, hint bits set)
 * before anything is timed. Each scenario is diffed two ways, both inside the diff session
 * (`beginDiffSession`: REPEATABLE READ READ ONLY, normalized text settings) on one connection
 * per side:
 *
 *   pitr   `diffRows` with its defaults (leaf 2000 rows), wall clock around the call
 *   naive  what a person writes: `COPY (select … order by id) TO STDOUT` on both sides at once
 *          (pg-copy-streams), the two key-ordered streams merged in JS line by line (a Map of
 *          one side would hold the whole table in memory)
 *
 * Both results are checked against the changes made. Per run: seconds, rows/s ((branch rows +
 * production rows) / s), segments, and the growth of this process's RSS (after − before, and
 * the peak from a 50 ms sampler; a GC runs before each measurement). pitr's queries are timed
 * by kind (histogram, initial checksums, half checksums, median split, leaf fetch; the rest is
 * JS and round trips), and for each N a few single-side scans show what the initial checksum
 * pass costs over a plain scan. Autovacuum is off so that nothing runs behind the timings.
 * Prints the tables and one JSON line. One heavy Postgres job: run it alone.
 */
import { StringDecoder } from 'node:string_decoder';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { startCluster, type TestCluster } from '../test/support/cluster.js';
import { findTable, introspect, type TableInfo } from '../src/db/introspect.js';
import { beginDiffSession, diffRows, endDiffSession, type RowDiffSummary } from '../src/diff/rows.js';
import { cleanupOnSignal, fmt, round, pad } from './support.js';
import { mulberry32 } from '../test/support/random.js';

const DEFAULT_ROWS = [1_000_000, 3_000_000];
const CHANGE_FRACTION = 0.001;
const SAMPLE_MS = 50;
const COLUMNS = 'id, customer_id, status, total, note, created_at';
const ROW_TEXT = `row(${COLUMNS})::text`;

function rowsSetting(): number[] {
  const argv = process.argv.slice(2);
  const i = argv.findIndex((a) => a === '--rows' || a.startsWith('--rows='));
  const text = i < 0 ? process.env.BENCH_ROWS : argv[i]!.includes('=') ? argv[i]!.split('=')[1] : argv[i + 1];
  if (text === undefined || text === '') return DEFAULT_ROWS;
  return text.split(',').map((part) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$/.exec(part);
    const n = m ? Math.round(Number(m[1]) * (m[2]?.toLowerCase() === 'm' ? 1e6 : m[2]?.toLowerCase() === 'k' ? 1e3 : 1)) : NaN;
    if (!Number.isInteger(n) || n < 3000) throw new Error(`--rows / BENCH_ROWS must be a comma-separated list of row counts ≥ 3000 (1000000 or 1M), not "${text}"`);
    return n;
  });
}

// --- helpers ------------------------------------------------------------------------------

const gc: (() => void) | undefined = (() => {
  try {
    v8.setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
})();
const MB = 1024 * 1024;
const rss = () => process.memoryUsage.rss();
const human = (n: number) => (n >= 1e6 && n % 1e5 === 0 ? `${n / 1e6}M` : n >= 1e3 && n % 100 === 0 ? `${n / 1e3}k` : String(n));

const prng = mulberry32;

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

interface Measured<T> {
  result: T;
  seconds: number;
  rssBeforeMB: number;
  rssGrowthMB: number;
  peakRssGrowthMB: number;
}

/** Wall clock and RSS growth of fn: after − before, and the peak seen by a 50 ms sampler. */
async function measure<T>(fn: () => Promise<T>): Promise<Measured<T>> {
  gc?.();
  const before = rss();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rss())), SAMPLE_MS);
  const started = performance.now();
  let result: T;
  try {
    result = await fn();
  } finally {
    clearInterval(sampler);
  }
  const seconds = (performance.now() - started) / 1000;
  const after = rss();
  peak = Math.max(peak, after);
  return { result, seconds, rssBeforeMB: before / MB, rssGrowthMB: (after - before) / MB, peakRssGrowthMB: (peak - before) / MB };
}

// --- data ---------------------------------------------------------------------------------

/** Row g of the table: id 2g (odd ids are free for inserts); `extra` marks inserted rows. */
const rowExpr = (g: string, extra = false) => `2 * ${g}${extra ? ' - 1' : ''},
  ((${g} * 7919) % 100000)::int,
  (array['new', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + ${g} % 5],
  ((${g} * 37) % 1000000) / 100.0,
  case when ${g} % 10 = 0 then null else '${extra ? 'inserted' : 'note'} ' || md5(${g}::text) end,
  timestamptz '2024-01-01 00:00:00+00' + ${g} * interval '17 seconds'`;

async function loadBranch(cluster: TestCluster, n: number): Promise<number> {
  const started = performance.now();
  await loadOrders(cluster.urlFor('branch'), n);
  return (performance.now() - started) / 1000;
}

async function loadOrders(url: string, n: number): Promise<void> {
  const c = await connect(url);
  try {
    await c.query(`create table orders (id bigint not null, customer_id int, status text, total numeric(12,2), note text, created_at timestamptz)`);
    await c.query(`insert into orders select ${rowExpr('g')} from generate_series(1::int8, ${n}::int8) g`);
    await c.query('alter table orders add primary key (id)');
    await c.query('vacuum (analyze) orders');
  } finally {
    await c.end();
  }
}

/** production as a copy of branch: a file copy of the database, else the same load again. */
async function copyToProduction(cluster: TestCluster, n: number): Promise<string> {
  await cluster.query('drop database if exists production');
  for (const [how, sql] of [
    ['template (file_copy)', 'create database production template branch strategy file_copy'],
    ['template', 'create database production template branch'],
  ] as const) {
    try {
      await cluster.query(sql);
      return how;
    } catch (err) {
      console.error(`${sql}: ${(err as Error).message}`);
      await cluster.query('drop database if exists production').catch(() => undefined);
    }
  }
  await cluster.query('create database production');
  await loadOrders(cluster.urlFor('production'), n);
  return 'loaded again';
}

type Scenario = 'identical' | 'random' | 'clustered';
const SCENARIOS: Scenario[] = ['identical', 'random', 'clustered'];

interface Changes {
  deleted: number[];
  updated: number[];
  /** g of the inserted rows (id 2g − 1). */
  inserted: number[];
  /** Key span the changes cover. */
  span: [number, number] | null;
}

function plannedChanges(scenario: Scenario, n: number, seed: number): Changes {
  const none: Changes = { deleted: [], updated: [], inserted: [], span: null };
  if (scenario === 'identical') return none;
  const k = Math.max(3, Math.round(n * CHANGE_FRACTION));
  const third = Math.floor(k / 3);
  const r = prng(seed);
  if (scenario === 'random') {
    const picked = new Set<number>();
    while (picked.size < 2 * third) picked.add(1 + Math.floor(r() * n));
    const inserted = new Set<number>();
    while (inserted.size < k - 2 * third) inserted.add(1 + Math.floor(r() * n));
    const list = [...picked];
    const all = [...list, ...inserted];
    return { deleted: list.slice(0, third), updated: list.slice(third), inserted: [...inserted], span: [2 * Math.min(...all) - 1, 2 * Math.max(...all)] };
  }
  // clustered: a window of k consecutive rows, every one touched (delete, update, insert before).
  const start = 1 + Math.floor(r() * (n - k));
  const out: Changes = { ...none, deleted: [], updated: [], inserted: [] };
  for (let j = 0; j < k; j++) (j % 3 === 0 ? out.deleted : j % 3 === 1 ? out.updated : out.inserted).push(start + j);
  out.span = [2 * start - 1, 2 * (start + k - 1)];
  return out;
}

async function applyChanges(c: pg.Client, changes: Changes): Promise<void> {
  const ids = (gs: number[], odd = false) => gs.map((g) => String(2 * g - (odd ? 1 : 0)));
  await c.query('begin');
  await c.query('delete from orders where id = any($1::int8[])', [ids(changes.deleted)]);
  await c.query(`update orders set status = 'refunded', total = total + 0.01 where id = any($1::int8[])`, [ids(changes.updated)]);
  await c.query(`insert into orders select ${rowExpr('g', true)} from unnest($1::int8[]) g`, [changes.inserted.map(String)]);
  await c.query('commit');
}

// --- pitr, with its queries timed by kind --------------------------------------------------

type Kind = 'histogram' | 'initial checksums' | 'half checksums' | 'median split' | 'split after' | 'leaf fetch' | 'other';
const KINDS: Kind[] = ['histogram', 'initial checksums', 'half checksums', 'median split', 'split after', 'leaf fetch', 'other'];

function kindOf(sql: string): Kind {
  if (sql.includes('pg_stats')) return 'histogram';
  if (sql.includes(' union all ') || /select 0 as i, count/.test(sql)) return 'half checksums';
  if (sql.includes('width_bucket(') || sql.includes('group by 1')) return 'initial checksums';
  if (/ offset \$\d+ limit 1/.test(sql)) return 'median split';
  if (sql.includes('select min(')) return 'split after';
  if (sql.includes(' as n from ')) return 'leaf fetch';
  return 'other';
}

interface QueryRecord {
  side: 'branch' | 'production';
  kind: Kind;
  start: number;
  end: number;
  rows: number;
  result: pg.QueryResult | null;
}

/** Times every promise-returning query of a client until the returned function is called. */
function instrument(client: pg.Client, side: 'branch' | 'production', log: QueryRecord[]): () => void {
  type AnyQuery = (...args: unknown[]) => unknown;
  const target = client as unknown as Record<string, unknown> & { query: AnyQuery };
  const original = target.query;
  target.query = (...args: unknown[]) => {
    const first = args[0];
    const sql = typeof first === 'string' ? first : typeof (first as { text?: unknown })?.text === 'string' ? (first as { text: string }).text : '';
    const start = performance.now();
    const out = original.apply(client, args);
    if (!(out instanceof Promise)) return out;
    return out.then((result: pg.QueryResult) => {
      const kind = kindOf(sql);
      log.push({ side, kind, start, end: performance.now(), rows: result?.rowCount ?? result?.rows?.length ?? 0, result: kind === 'initial checksums' ? result : null });
      return result;
    });
  };
  return () => void delete (target as Record<string, unknown>).query;
}

/** Length of the union of intervals (time with at least one query of the set in flight). */
function covered(intervals: { start: number; end: number }[]): number {
  const sorted = [...intervals].sort((a, b) => a.start - b.start);
  let total = 0;
  let curStart = -Infinity;
  let curEnd = -Infinity;
  for (const { start, end } of sorted) {
    if (start > curEnd) {
      if (curEnd > curStart) total += curEnd - curStart;
      curStart = start;
      curEnd = end;
    } else curEnd = Math.max(curEnd, end);
  }
  if (curEnd > curStart) total += curEnd - curStart;
  return total;
}

interface Phase {
  kind: Kind;
  /** Wall time with a query of this kind in flight on either side. */
  seconds: number;
  queries: { branch: number; production: number };
  busySeconds: { branch: number; production: number };
  rowsReturned: number;
}

interface PitrAnalysis {
  phases: Phase[];
  /** Wall time with no query in flight: JS work and client-side round-trip overhead. */
  idleSeconds: number;
  /** Rows (both sides) in the initial segments whose checksums differed. */
  rowsInDirtyInitialSegments: number;
  leafFetchRowsPerSecond: number;
}

function analyze(log: QueryRecord[], wallSeconds: number): PitrAnalysis {
  const phases: Phase[] = [];
  for (const kind of KINDS) {
    const of = log.filter((q) => q.kind === kind);
    if (!of.length) continue;
    const side = (s: 'branch' | 'production') => of.filter((q) => q.side === s);
    const busy = (s: 'branch' | 'production') => side(s).reduce((t, q) => t + q.end - q.start, 0) / 1000;
    phases.push({
      kind,
      seconds: covered(of) / 1000,
      queries: { branch: side('branch').length, production: side('production').length },
      busySeconds: { branch: busy('branch'), production: busy('production') },
      rowsReturned: of.reduce((t, q) => t + q.rows, 0),
    });
  }
  // Which initial segments differed, from the two initial checksum results.
  const initial = (s: 'branch' | 'production') =>
    new Map((log.find((q) => q.side === s && q.kind === 'initial checksums')?.result?.rows ?? []).map((r) => [String(r.b), { n: Number(r.n), h: String(r.h) }]));
  const [b, p] = [initial('branch'), initial('production')];
  let dirtyRows = 0;
  for (const key of new Set([...b.keys(), ...p.keys()])) {
    const x = b.get(key);
    const y = p.get(key);
    if (x?.n !== y?.n || x?.h !== y?.h) dirtyRows += (x?.n ?? 0) + (y?.n ?? 0);
  }
  const leaf = phases.find((ph) => ph.kind === 'leaf fetch');
  return {
    phases,
    idleSeconds: Math.max(0, wallSeconds - covered(log) / 1000),
    rowsInDirtyInitialSegments: dirtyRows,
    leafFetchRowsPerSecond: leaf && leaf.seconds > 0 ? leaf.rowsReturned / leaf.seconds : NaN,
  };
}

async function runPitr(branch: pg.Client, production: pg.Client, tables: { branch: TableInfo; production: TableInfo }) {
  const log: QueryRecord[] = [];
  let differences = 0;
  await Promise.all([beginDiffSession(branch), beginDiffSession(production)]);
  const restore = [instrument(branch, 'branch', log), instrument(production, 'production', log)];
  try {
    const m = await measure(() =>
      diffRows({ branch, production, branchTable: tables.branch, productionTable: tables.production, onDifference: () => void differences++ }),
    );
    return { ...m, differences, analysis: analyze(log, m.seconds) };
  } finally {
    for (const r of restore) r();
    await Promise.all([endDiffSession(branch), endDiffSession(production)]);
  }
}

// --- naive: two COPY streams merged by key ---------------------------------------------------

/** Lines of `COPY (sql) TO STDOUT` (text format), in the batches they arrive in. */
async function* copyLines(client: pg.Client, sql: string): AsyncGenerator<string[]> {
  const stream = client.query(copyTo(`copy (${sql}) to stdout`));
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const lines = (rest + decoder.write(chunk)).split('\n');
    rest = lines.pop()!;
    if (lines.length) yield lines;
  }
  rest += decoder.end();
  if (rest) yield [rest];
}

class LineCursor {
  private batch: string[] = [];
  private i = 0;
  rows = 0;
  constructor(private readonly source: AsyncIterator<string[]>) {}
  /** False at the end of the stream. */
  async fill(): Promise<boolean> {
    while (this.i >= this.batch.length) {
      const next = await this.source.next();
      if (next.done) return false;
      this.batch = next.value;
      this.i = 0;
    }
    return true;
  }
  get line(): string {
    return this.batch[this.i]!;
  }
  /** True while the current batch has a line left. */
  advance(): boolean {
    this.i++;
    this.rows++;
    return this.i < this.batch.length;
  }
}

interface NaiveResult {
  branchRows: number;
  productionRows: number;
  missing: number;
  changed: number;
  extra: number;
}

async function naiveDiff(branch: pg.Client, production: pg.Client): Promise<NaiveResult> {
  const sql = `select ${COLUMNS} from orders order by id`;
  const b = new LineCursor(copyLines(branch, sql));
  const p = new LineCursor(copyLines(production, sql));
  const out: NaiveResult = { branchRows: 0, productionRows: 0, missing: 0, changed: 0, extra: 0 };
  // ids < 2^53 here, so Number keys are exact; the line is the whole row in COPY's text format.
  const key = (line: string) => Number(line.slice(0, line.indexOf('\t')));
  let [hasB, hasP] = await Promise.all([b.fill(), p.fill()]);
  while (hasB || hasP) {
    let moreB = true;
    let moreP = true;
    if (hasB && hasP) {
      const lb = b.line;
      const lp = p.line;
      const kb = key(lb);
      const kp = key(lp);
      if (kb === kp) {
        if (lb !== lp) out.changed++;
        moreB = b.advance();
        moreP = p.advance();
      } else if (kb < kp) {
        out.missing++;
        moreB = b.advance();
      } else {
        out.extra++;
        moreP = p.advance();
      }
    } else if (hasB) {
      out.missing++;
      moreB = b.advance();
    } else {
      out.extra++;
      moreP = p.advance();
    }
    if (hasB && !moreB) hasB = await b.fill();
    if (hasP && !moreP) hasP = await p.fill();
  }
  out.branchRows = b.rows;
  out.productionRows = p.rows;
  return out;
}

async function runNaive(branch: pg.Client, production: pg.Client) {
  await Promise.all([beginDiffSession(branch), beginDiffSession(production)]);
  try {
    return await measure(() => naiveDiff(branch, production));
  } finally {
    await Promise.all([endDiffSession(branch), endDiffSession(production)]);
  }
}

// --- single-side scans: what the initial checksum pass costs over reading the table ----------

async function scanCosts(client: pg.Client): Promise<Record<string, number>> {
  const queries: [string, string][] = [
    ['count(*)', 'select count(*) from orders'],
    ['count + sum(hashtextextended(row::text))', `select count(*), sum(hashtextextended(${ROW_TEXT}, 0)) from orders`],
    ['pitr initial query (101 buckets)', `select width_bucket(id, (select histogram_bounds::text::int8[] from pg_stats where tablename = 'orders' and attname = 'id')) as b, count(*), sum(hashtextextended(${ROW_TEXT}, 0)) from orders group by 1`],
    ['row::text only (length)', `select sum(length(${ROW_TEXT})) from orders`],
    ['count + sum(hash_record_extended(row))', `select count(*), sum(hash_record_extended(row(${COLUMNS}), 0)) from orders`],
    ['count(*), 1 worker/query (no parallel)', 'set local max_parallel_workers_per_gather = 0; select count(*) from orders'],
    ['pitr initial query, no parallel', `set local max_parallel_workers_per_gather = 0; select width_bucket(id, (select histogram_bounds::text::int8[] from pg_stats where tablename = 'orders' and attname = 'id')) as b, count(*), sum(hashtextextended(${ROW_TEXT}, 0)) from orders group by 1`],
  ];
  const out: Record<string, number> = {};
  for (const [label, sql] of queries) {
    await beginDiffSession(client);
    try {
      const started = performance.now();
      await client.query(sql);
      out[label] = (performance.now() - started) / 1000;
    } catch (err) {
      console.error(`scan "${label}": ${(err as Error).message}`);
      out[label] = NaN;
    } finally {
      await endDiffSession(client);
    }
  }
  return out;
}

// --- main -----------------------------------------------------------------------------------

interface Result {
  scenario: Scenario;
  n: number;
  changes: { deleted: number; updated: number; inserted: number; span: [number, number] | null };
  pitr: {
    seconds: number;
    rowsPerSecond: number;
    summary: Pick<RowDiffSummary, 'branchRows' | 'productionRows' | 'missing' | 'changed' | 'extra' | 'segments' | 'seconds'>;
    rssGrowthMB: number;
    peakRssGrowthMB: number;
    analysis: PitrAnalysis;
  };
  naive: { seconds: number; rowsPerSecond: number; result: NaiveResult; rssGrowthMB: number; peakRssGrowthMB: number };
  ratio: number;
}

const ROWS = rowsSetting();
let cluster: TestCluster | undefined;
let cleanedUp: Promise<void> | undefined;
const open = new Set<pg.Client>();
function cleanup(): Promise<void> {
  cleanedUp ??= (async () => {
    for (const c of open) await c.end().catch(() => undefined);
    await cluster?.destroy().catch((err: unknown) => console.error(`could not destroy the cluster: ${(err as Error).message}`));
  })();
  return cleanedUp;
}
cleanupOnSignal(cleanup);

const results: Result[] = [];
const setup: Record<string, { loadSeconds: number; copy: string; copySeconds: number[]; tableMB: number }> = {};
const scans: Record<string, Record<string, number>> = {};
const benchStarted = performance.now();
try {
  console.log(`bench:diff — rows ${ROWS.map(human).join(', ')}; scenarios ${SCENARIOS.join(', ')}; ${CHANGE_FRACTION * 100}% changed; gc ${gc ? 'on' : 'unavailable'}`);
  cluster = await startCluster({ settings: { autovacuum: 'off' } });
  const [version] = await cluster.query<{ v: string }>('select version() as v');
  console.log(`${version!.v}\n`);

  for (const n of ROWS) {
    await cluster.query('drop database if exists production');
    await cluster.query('drop database if exists branch');
    await cluster.query('create database branch');
    const loadSeconds = await loadBranch(cluster, n);
    const entry = (setup[String(n)] = { loadSeconds, copy: '', copySeconds: [] as number[], tableMB: 0 });
    console.log(`N=${human(n)}: branch loaded in ${fmt(loadSeconds, 1)} s`);

    for (const [si, scenario] of SCENARIOS.entries()) {
      const copyStarted = performance.now();
      entry.copy = await copyToProduction(cluster, n);
      entry.copySeconds.push((performance.now() - copyStarted) / 1000);
      const changes = plannedChanges(scenario, n, 1000 * si + n);
      const branch = await connect(cluster.urlFor('branch'));
      open.add(branch);
      const production = await connect(cluster.urlFor('production'));
      open.add(production);
      try {
        await applyChanges(production, changes);
        await production.query('analyze orders');
        await cluster.query('checkpoint');
        // Warm both tables (page cache, hint bits) outside the timings.
        await Promise.all([branch.query('select count(*) from orders'), production.query('select count(*) from orders')]);
        if (!entry.tableMB) entry.tableMB = Number((await branch.query(`select pg_total_relation_size('orders') as b`)).rows[0].b) / MB;

        const tables = {
          branch: findTable(await introspect(branch), { schema: null, name: 'orders' })!,
          production: findTable(await introspect(production), { schema: null, name: 'orders' })!,
        };
        const pitr = await runPitr(branch, production, tables);
        const naive = await runNaive(branch, production);

        const expected = { missing: changes.deleted.length, changed: changes.updated.length, extra: changes.inserted.length };
        const s = pitr.result;
        const got = (r: { missing: number; changed: number; extra: number }) => ({ missing: r.missing, changed: r.changed, extra: r.extra });
        if (JSON.stringify(got(s)) !== JSON.stringify(expected) || pitr.differences !== s.missing + s.changed + s.extra) {
          throw new Error(`pitr found ${JSON.stringify(got(s))} (${pitr.differences} reported), expected ${JSON.stringify(expected)} (${scenario}, N=${n})`);
        }
        if (JSON.stringify(got(naive.result)) !== JSON.stringify(expected)) throw new Error(`naive found ${JSON.stringify(got(naive.result))}, expected ${JSON.stringify(expected)} (${scenario}, N=${n})`);
        if (s.branchRows !== naive.result.branchRows || s.productionRows !== naive.result.productionRows) {
          throw new Error(`row counts differ: pitr ${s.branchRows}/${s.productionRows}, naive ${naive.result.branchRows}/${naive.result.productionRows}`);
        }
        const rows = s.branchRows + s.productionRows;
        const result: Result = {
          scenario,
          n,
          changes: { deleted: changes.deleted.length, updated: changes.updated.length, inserted: changes.inserted.length, span: changes.span },
          pitr: {
            seconds: pitr.seconds,
            rowsPerSecond: rows / pitr.seconds,
            summary: { branchRows: s.branchRows, productionRows: s.productionRows, missing: s.missing, changed: s.changed, extra: s.extra, segments: s.segments, seconds: s.seconds },
            rssGrowthMB: pitr.rssGrowthMB,
            peakRssGrowthMB: pitr.peakRssGrowthMB,
            analysis: pitr.analysis,
          },
          naive: { seconds: naive.seconds, rowsPerSecond: rows / naive.seconds, result: naive.result, rssGrowthMB: naive.rssGrowthMB, peakRssGrowthMB: naive.peakRssGrowthMB },
          ratio: naive.seconds / pitr.seconds,
        };
        results.push(result);
        console.log(
          `  ${scenario.padEnd(9)} pitr ${fmt(pitr.seconds)} s (segments ${s.segments.initial}/${s.segments.checked}/${s.segments.fetched}, peak +${fmt(pitr.peakRssGrowthMB, 1)} MB)   naive ${fmt(naive.seconds)} s (peak +${fmt(naive.peakRssGrowthMB, 1)} MB)   naive/pitr ${fmt(result.ratio)}`,
        );

        if (scenario === 'identical') scans[String(n)] = await scanCosts(branch);
      } finally {
        for (const c of [branch, production]) {
          open.delete(c);
          await c.end().catch(() => undefined);
        }
      }
    }
  }

  // --- report -------------------------------------------------------------------------------
  console.log('\n' + pad([
    ['scenario', 'N', 'pitr s', 'naive s', 'naive/pitr', 'pitr rows/s', 'naive rows/s', 'segments init/checked/fetched', 'pitr peak ΔRSS MB', 'naive peak ΔRSS MB', 'pitr ΔRSS MB', 'naive ΔRSS MB'],
    ...results.map((r) => [
      r.scenario,
      human(r.n),
      fmt(r.pitr.seconds),
      fmt(r.naive.seconds),
      fmt(r.ratio),
      Math.round(r.pitr.rowsPerSecond).toLocaleString('en-US'),
      Math.round(r.naive.rowsPerSecond).toLocaleString('en-US'),
      `${r.pitr.summary.segments.initial}/${r.pitr.summary.segments.checked}/${r.pitr.summary.segments.fetched}`,
      fmt(r.pitr.peakRssGrowthMB, 1),
      fmt(r.naive.peakRssGrowthMB, 1),
      fmt(r.pitr.rssGrowthMB, 1),
      fmt(r.naive.rssGrowthMB, 1),
    ]),
  ]));

  console.log('\nwhere pitr spends its time (s; wall time with a query of the kind in flight on either side, queries branch+production; idle = JS + round trips;');
  console.log(' last column: the initial pass plus fetching every row of the differing initial segments at the leaf fetch rate, i.e. without bisection)');
  const shown = KINDS.filter((k) => results.some((r) => r.pitr.analysis.phases.some((p) => p.kind === k)));
  console.log(pad([
    ['scenario', 'N', 'pitr s', ...shown, 'idle', 'dirty initial rows', 'leaf fetch rows/s', 'initial + dirty rows at leaf rate s (est.)'],
    ...results.map((r) => [
      r.scenario,
      human(r.n),
      fmt(r.pitr.seconds),
      ...shown.map((k) => {
        const ph = r.pitr.analysis.phases.find((p) => p.kind === k);
        return ph ? `${fmt(ph.seconds)} (${ph.queries.branch}+${ph.queries.production})` : '-';
      }),
      fmt(r.pitr.analysis.idleSeconds),
      r.pitr.analysis.rowsInDirtyInitialSegments.toLocaleString('en-US'),
      Number.isFinite(r.pitr.analysis.leafFetchRowsPerSecond) ? Math.round(r.pitr.analysis.leafFetchRowsPerSecond).toLocaleString('en-US') : '-',
      Number.isFinite(r.pitr.analysis.leafFetchRowsPerSecond)
        ? fmt((r.pitr.analysis.phases.find((p) => p.kind === 'initial checksums')?.seconds ?? 0) + r.pitr.analysis.rowsInDirtyInitialSegments / r.pitr.analysis.leafFetchRowsPerSecond)
        : '-',
    ]),
  ]));

  const scanLabels = [...new Set(Object.values(scans).flatMap((s) => Object.keys(s)))];
  console.log('\none side alone, whole table, warm (s)');
  console.log(pad([['query', ...Object.keys(scans).map((n) => `N=${human(Number(n))}`)], ...scanLabels.map((l) => [l, ...Object.values(scans).map((s) => fmt(s[l] ?? NaN, 3))])]));
  console.log(`\nsetup: ${Object.entries(setup).map(([n, s]) => `N=${human(Number(n))}: load ${fmt(s.loadSeconds, 1)} s, table+index ${fmt(s.tableMB, 0)} MB, production by ${s.copy} in ${s.copySeconds.map((x) => fmt(x, 1)).join('/')} s`).join('; ')}`);
  console.log(`total ${fmt((performance.now() - benchStarted) / 1000, 1)} s`);

  console.log(
    '\n' +
      JSON.stringify({
        bench: 'diff',
        rows: ROWS,
        changeFraction: CHANGE_FRACTION,
        results: results.map((r) => ({
          scenario: r.scenario,
          n: r.n,
          changes: r.changes,
          pitrSeconds: round(r.pitr.seconds),
          naiveSeconds: round(r.naive.seconds),
          ratioNaiveOverPitr: round(r.ratio),
          pitrRowsPerSecond: Math.round(r.pitr.rowsPerSecond),
          naiveRowsPerSecond: Math.round(r.naive.rowsPerSecond),
          segments: r.pitr.summary.segments,
          found: { missing: r.pitr.summary.missing, changed: r.pitr.summary.changed, extra: r.pitr.summary.extra },
          pitrPeakRssGrowthMB: round(r.pitr.peakRssGrowthMB, 1),
          naivePeakRssGrowthMB: round(r.naive.peakRssGrowthMB, 1),
          pitrRssGrowthMB: round(r.pitr.rssGrowthMB, 1),
          naiveRssGrowthMB: round(r.naive.rssGrowthMB, 1),
          pitrPhases: Object.fromEntries(r.pitr.analysis.phases.map((p) => [p.kind, { seconds: round(p.seconds), queries: p.queries, busySeconds: { branch: round(p.busySeconds.branch), production: round(p.busySeconds.production) }, rows: p.rowsReturned }])),
          pitrIdleSeconds: round(r.pitr.analysis.idleSeconds),
          rowsInDirtyInitialSegments: r.pitr.analysis.rowsInDirtyInitialSegments,
        })),
        scanSeconds: Object.fromEntries(Object.entries(scans).map(([n, s]) => [n, Object.fromEntries(Object.entries(s).map(([k, v]) => [k, round(v)]))])),
        setup,
        totalSeconds: round((performance.now() - benchStarted) / 1000, 1),
      }),
  );
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}

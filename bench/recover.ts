/**
 * bench/recover: `pitr recover orders` (planRecovery + applyRecovery, in-process) putting back
 * 1M deleted rows, against a raw `COPY … FROM STDIN` of the same rows into the same table.
 *
 *   npm run bench:recover [-- --rows 1.2M --deleted 1M --rounds 2]
 *   (or BENCH_ROWS / BENCH_DELETED / BENCH_ROUNDS; defaults 1200000, min(1000000, 5/6 of rows), 2)
 *
 * Two throw-away PostgreSQL clusters (separate servers, as a branch and production are; fsync
 * off, autovacuum off so nothing runs behind the timings):
 *
 *   branch      database `branch`: orders(id bigint primary key, customer_id int not null,
 *               status text not null, total numeric(12,2), note text, created_at timestamptz),
 *               indexes on customer_id and created_at, N rows (ids 1..N), vacuumed and analyzed
 *   production  database `production`: the same table and rows, then `delete … where id <= D`,
 *               VACUUM ANALYZE, CHECKPOINT
 *
 * Each round measures, in this order, on the same production state:
 *
 *   pitr  applyRecovery({ tables: ['orders'], mode: 'missing' }) with no saved plan, as
 *         `pitr recover orders --yes` runs it (plan made inside the apply transaction); with
 *         --two-phase, planRecovery then applyRecovery of the saved plan (the path a typed
 *         confirmation takes), each timed; rows/s = D / (plan + apply) and D / apply
 *   raw   what a person does by hand, with no safety at all: `COPY (select * from orders where
 *         id <= D) TO STDOUT` on the branch piped into `COPY orders FROM STDIN` on production, in
 *         one transaction, committed (connections included, as pitr's are)
 *
 * After each: production must hold all N rows and the D rows must equal the branch's (checksum
 * of the row text); then it is reset (delete the D rows, VACUUM ANALYZE, CHECKPOINT; not timed).
 * Medians over the rounds; the ratio raw / pitr is pitr's "% of raw COPY speed" (goal ≥ 60%).
 *
 * pitr's time is broken down by phase from its own queries: pg.Client.prototype.query is wrapped
 * and every production query is labelled from its SQL; the time from one production query's
 * submission to the next is charged to the first (so the files written and fsynced after a COPY TO
 * STDOUT count with it), split into "in query" and "client" (files, fsync, JS).
 * Prints the tables and one JSON line. One heavy Postgres job: run it alone.
 */
import type { EventEmitter } from 'node:events';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { startCluster, type TestCluster } from '../test/support/cluster.js';
import { applyRecovery, planRecovery, type RecoverRequest, type RecoveryPlan, type RecoveryResult } from '../src/recover/engine.js';
import { RunStore } from '../src/recover/runs.js';
import { cleanupOnSignal, option, fmt, round, median, pad } from './support.js';

// --- settings ------------------------------------------------------------------------------


function count(text: string, what: string, min: number): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$/.exec(text);
  const unit = m?.[2]?.toLowerCase();
  const n = m ? Math.round(Number(m[1]) * (unit === 'm' ? 1e6 : unit === 'k' ? 1e3 : 1)) : NaN;
  if (!Number.isInteger(n) || n < min) throw new Error(`${what} must be a whole number ≥ ${min} (1200000, 1.2M or 800k), not "${text}"`);
  return n;
}

const ROWS = count(option('rows', 'BENCH_ROWS') ?? '1200000', '--rows / BENCH_ROWS', 2);
const DELETED = count(option('deleted', 'BENCH_DELETED') ?? String(Math.min(1_000_000, Math.round((ROWS * 5) / 6))), '--deleted / BENCH_DELETED', 1);
const ROUNDS = count(option('rounds', 'BENCH_ROUNDS') ?? '2', '--rounds / BENCH_ROUNDS', 1);
/** `pitr recover --yes` plans inside the apply transaction; --two-phase measures plan, then apply (the confirmed-on-a-TTY path). */
const TWO_PHASE = process.argv.includes('--two-phase') || process.env.BENCH_TWO_PHASE === '1';
const GOAL = 0.6;
if (DELETED >= ROWS) throw new Error(`--deleted (${DELETED}) must be below --rows (${ROWS})`);

// --- helpers ------------------------------------------------------------------------------

const MB = 1024 * 1024;
const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');
const human = (n: number) => (n >= 1e6 && n % 1e5 === 0 ? `${n / 1e6}M` : n >= 1e3 && n % 100 === 0 ? `${n / 1e3}k` : String(n));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await connect(url);
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

// --- data ---------------------------------------------------------------------------------

const ROW = `g,
  ((g * 7919) % 100000)::int,
  (array['new', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + g % 5],
  ((g * 37) % 1000000) / 100.0,
  case when g % 10 = 0 then null else 'note ' || md5(g::text) end,
  timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds'`;

async function load(cluster: TestCluster, db: string, deleteRecovered: boolean): Promise<void> {
  await cluster.query(`create database ${db}`);
  await withClient(cluster.urlFor(db), async (c) => {
    await c.query(`create table orders (id bigint not null, customer_id int not null, status text not null, total numeric(12,2), note text, created_at timestamptz)`);
    await c.query(`insert into orders select ${ROW} from generate_series(1::int8, ${ROWS}::int8) g`);
    await c.query('alter table orders add primary key (id)');
    await c.query('create index orders_customer_id_idx on orders (customer_id)');
    await c.query('create index orders_created_at_idx on orders (created_at)');
    if (deleteRecovered) await c.query(`delete from orders where id <= ${DELETED}`);
    await c.query('vacuum (analyze) orders');
    await c.query('checkpoint');
  });
}

interface Checksum {
  recovered: number;
  hash: string;
  total: number;
}

/** The D rows (id ≤ D) as count + sum of row-text hashes, and the table's row count; reads the whole table (warms it too). */
function checksum(url: string): Promise<Checksum> {
  return withClient(url, async (c) => {
    await c.query(`set timezone = 'UTC'; set extra_float_digits = 3`);
    const { rows } = await c.query(
      `select count(*) filter (where id <= ${DELETED})::int8 as recovered,
              coalesce(sum(hashtextextended(o::text, 0)) filter (where id <= ${DELETED}), 0)::text as hash,
              count(*)::int8 as total
         from orders o`,
    );
    return { recovered: Number(rows[0].recovered), hash: String(rows[0].hash), total: Number(rows[0].total) };
  });
}

/** Back to the deleted state: not timed. */
async function reset(url: string): Promise<number> {
  const started = performance.now();
  await withClient(url, async (c) => {
    const r = await c.query(`delete from orders where id <= ${DELETED}`);
    if (r.rowCount !== DELETED) throw new Error(`reset deleted ${r.rowCount} rows, expected ${DELETED}`);
    await c.query('vacuum (analyze) orders');
    await c.query('checkpoint');
  });
  return (performance.now() - started) / 1000;
}

const lsnBytes = (lsn: string) => {
  const [hi, lo] = lsn.split('/');
  return Number((BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`));
};

interface ServerStats {
  wal: number;
  tempBytes: number;
}

async function serverStats(url: string): Promise<ServerStats> {
  return withClient(url, async (c) => {
    const { rows } = await c.query(
      `select pg_current_wal_lsn()::text as lsn, (select temp_bytes from pg_stat_database where datname = current_database())::int8 as temp`,
    );
    return { wal: lsnBytes(rows[0].lsn), tempBytes: Number(rows[0].temp) };
  });
}

/** WAL written (exact) and temp-file bytes (backends report at exit, so wait a moment) since `before`. */
async function serverDelta(url: string, before: ServerStats): Promise<{ walMB: number; tempMB: number }> {
  await sleep(1200);
  const after = await serverStats(url);
  return { walMB: (after.wal - before.wal) / MB, tempMB: (after.tempBytes - before.tempBytes) / MB };
}

// --- pitr's queries, timed by phase -----------------------------------------------------------

interface QueryRecord {
  side: 'branch' | 'production';
  label: string;
  sql: string;
  submit: number;
  done: number | null;
}

let recording: { branchPort: number; productionPort: number; log: QueryRecord[] } | null = null;

const LABELS: [RegExp, string][] = [
  [/^commit\b/i, 'commit'],
  [/^rollback\b/i, 'rollback'],
  [/^create temp table pitr_src_/, 'staging COPY'],
  [/^analyze pitr_src_/, 'staging COPY'],
  [/^create temp table pitr_keys_|^copy pitr_keys_/, 'staging keys (COPY)'],
  [/^copy "[^"]+"\."[^"]+" \(.*\) from stdin/s, 'COPY branch → table (missing rows)'],
  [/row_number\(\) over/, 'plan compute (anti-join)'],
  [/where xmin = pg_current_xact_id/, 'verify written rows (hash sums, both servers)'],
  [/server_version_num|savepoint pitr_hash_probe|hash_record_extended\(row\([^)]*\), 0\) from \(select \* from pitr_src_\d+ limit 1/, 'staging check (hash sums, both servers)'],
  [/^select count\(\*\)::text as n, coalesce\(sum\(/, 'staging check (hash sums, both servers)'],
  [/^insert into .* join pitr_plan_\d+ p on .* p\.action = 'insert'$/s, 'insert'],
  [/pg_trigger/, 'insert'],
  [/^copy pitr_src_/, 'staging COPY'],
  [/^create index on pitr_src_/, 'staging index + analyze'],
  [/^create temp table pitr_plan_\d+ on commit drop as select .* where false$/, 'plan load (file → temp table, index)'],
  [/^copy pitr_plan_/, 'plan load (file → temp table, index)'],
  [/^create index on pitr_plan_/, 'plan load (file → temp table, index)'],
  [/^create temp table pitr_plan_/, 'plan compute (anti-join)'],
  [/^analyze pitr_plan_/, 'plan compute (anti-join)'],
  [/from pitr_plan_\d+ group by action|unnest\(cols\)/, 'plan counts'],
  [/^copy \(select \* from pitr_plan_/, 'plan save (file + fsync)'],
  [/p\.action in \('update', 'delete'\)/, 'undo save: before (file + fsync)'],
  [/^create temp table pitr_applied_/, 'insert'],
  [/^with ins as/, 'insert'],
  [/^with upd as/, 'update'],
  [/^with del as/, 'delete'],
  [/^create index on pitr_applied_/, 'applied index + analyze'],
  [/^copy \(select \* from pitr_applied_/, 'applied save (file + fsync)'],
  [/^copy \(select .* join pitr_applied_/, 'after save (file + fsync)'],
  [/row_to_json\(k\)/, 'conflict check'],
  [/row_to_json\(s\)/, 'verify'],
  [/from pitr_applied_\d+ group by action/, 'applied counts'],
  [/pg_get_serial_sequence|setval\(/, 'sequences'],
  [/txid_current\(\)/, 'txid + run state'],
  [/^begin\b|^set constraints|set_config\(|pg_catalog|\bpg_(class|namespace|attribute|constraint|index|type|enum|inherits|attrdef)\b/, 'prepare (begin, introspect)'],
];

function labelOf(side: QueryRecord['side'], sql: string): string {
  if (side === 'branch') return /^copy \(/.test(sql) ? 'branch: staging COPY out' : 'branch: session';
  return LABELS.find(([re]) => re.test(sql))?.[1] ?? 'other';
}

{
  // Every pg.Client (pitr's own connect() makes plain pg.Clients) goes through this while recording.
  type AnyQuery = (this: pg.Client, ...args: unknown[]) => unknown;
  const proto = pg.Client.prototype as unknown as { query: AnyQuery };
  const original = proto.query;
  proto.query = function (this: pg.Client, ...args: unknown[]) {
    const r = recording;
    const submit = performance.now();
    const out = original.apply(this, args);
    if (!r) return out;
    const port = (this as unknown as { port?: number }).port;
    const side = port === r.productionPort ? 'production' : port === r.branchPort ? 'branch' : null;
    if (!side) return out;
    const first = args[0];
    const text = typeof first === 'string' ? first : typeof (first as { text?: unknown })?.text === 'string' ? (first as { text: string }).text : '';
    const sql = text.replace(/\s+/g, ' ').trim();
    const rec: QueryRecord = { side, label: labelOf(side, sql), sql, submit, done: null };
    r.log.push(rec);
    const mark = () => void (rec.done ??= performance.now());
    if (out instanceof Promise) out.then(mark, mark);
    else if (out && typeof (out as EventEmitter).once === 'function') {
      // pg-copy-streams: a COPY TO stream ends, a COPY FROM stream finishes once the server confirmed it.
      for (const ev of ['end', 'finish', 'error', 'close']) (out as EventEmitter).once(ev, mark);
    }
    return out;
  };
}

interface PhaseTime {
  /** Submission of this phase's queries → submission of the next production query. */
  wall: number;
  /** Of which a query of the phase was in flight. */
  query: number;
  queries: number;
}

/** Production-side timeline of [start, end) charged to the labels of pitr's queries. */
function timeline(log: QueryRecord[], start: number, end: number): Record<string, PhaseTime> {
  const prod = log.filter((q) => q.side === 'production' && q.submit >= start && q.submit < end).sort((a, b) => a.submit - b.submit);
  const out: Record<string, PhaseTime> = {};
  const add = (label: string, wall: number, query: number, n: number) => {
    const t = (out[label] ??= { wall: 0, query: 0, queries: 0 });
    t.wall += wall / 1000;
    t.query += query / 1000;
    t.queries += n;
  };
  add('connect', (prod[0]?.submit ?? end) - start, 0, 0);
  prod.forEach((q, i) => {
    const last = i === prod.length - 1;
    const next = last ? end : prod[i + 1]!.submit;
    const done = Math.min(q.done ?? next, next);
    if (last) {
      add(q.label, done - q.submit, done - q.submit, 1);
      add('close (run state, disconnect)', end - done, 0, 0);
    } else add(q.label, next - q.submit, done - q.submit, 1);
  });
  return out;
}

// --- the two ways -------------------------------------------------------------------------

interface PitrRun {
  planSeconds: number;
  applySeconds: number;
  totalSeconds: number;
  plan: RecoveryPlan;
  result: RecoveryResult;
  phases: { plan: Record<string, PhaseTime>; apply: Record<string, PhaseTime> };
  branchCopyOutSeconds: number[];
  runFilesMB: Record<string, number>;
  unclassified: string[];
}

interface RawRun {
  seconds: number;
  copySeconds: number;
  commitSeconds: number;
  copied: number;
}

let branchCluster: TestCluster | undefined;
let productionCluster: TestCluster | undefined;
let workDir: string | undefined;

async function runPitr(branchUrl: string, productionUrl: string): Promise<PitrRun> {
  const store = new RunStore(workDir!);
  const run = await store.create('recover');
  const req: RecoverRequest = { branchUrl, productionUrl, tables: ['orders'], mode: 'missing', cascade: false, deleteExtra: false };
  const log: QueryRecord[] = [];
  recording = { branchPort: branchCluster!.port, productionPort: productionCluster!.port, log };
  let t0 = 0;
  let t1 = 0;
  let t2 = 0;
  let plan: RecoveryPlan;
  let result: RecoveryResult;
  try {
    t0 = performance.now();
    if (TWO_PHASE) {
      plan = await planRecovery(req, store, run);
      t1 = performance.now();
      result = await applyRecovery(req, plan, store, run);
    } else {
      t1 = t0;
      result = await applyRecovery(req, null, store, run);
      plan = result.plan;
    }
    t2 = performance.now();
  } finally {
    recording = null;
  }
  const dataDir = join(store.dir(run.id), 'data');
  const runFilesMB: Record<string, number> = {};
  for (const f of await readdir(dataDir)) runFilesMB[f] = (await stat(join(dataDir, f))).size / MB;
  await rm(store.dir(run.id), { recursive: true, force: true });
  if (plan.totals.insert !== DELETED) throw new Error(`pitr planned ${plan.totals.insert} inserts, expected ${DELETED}`);
  if (result.totals.inserted !== DELETED || result.totals.conflicts !== 0 || !result.verified) {
    throw new Error(`pitr inserted ${result.totals.inserted} (expected ${DELETED}), ${result.totals.conflicts} conflicts, verified ${result.verified}`);
  }
  const branchCopies = log.filter((q) => q.label === 'branch: staging COPY out');
  return {
    planSeconds: (t1 - t0) / 1000,
    applySeconds: (t2 - t1) / 1000,
    totalSeconds: (t2 - t0) / 1000,
    plan,
    result,
    phases: { plan: timeline(log, t0, t1), apply: timeline(log, t1, t2) },
    branchCopyOutSeconds: branchCopies.map((q) => ((q.done ?? q.submit) - q.submit) / 1000),
    runFilesMB,
    unclassified: [...new Set(log.filter((q) => q.label === 'other').map((q) => q.sql.slice(0, 120)))],
  };
}

async function runRaw(branchUrl: string, productionUrl: string): Promise<RawRun> {
  const t0 = performance.now();
  const [source, target] = await Promise.all([connect(branchUrl), connect(productionUrl)]);
  let copied = 0;
  let tCopy = 0;
  let tCommit = 0;
  try {
    await target.query('begin');
    const out = source.query(copyTo(`copy (select * from orders where id <= ${DELETED}) to stdout`));
    const into = target.query(copyFrom('copy orders from stdin'));
    await pipeline(out, into);
    copied = Number(into.rowCount ?? 0);
    tCopy = performance.now();
    await target.query('commit');
    tCommit = performance.now();
  } catch (err) {
    await target.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    await Promise.all([source.end().catch(() => undefined), target.end().catch(() => undefined)]);
  }
  const t1 = performance.now();
  if (copied !== DELETED) throw new Error(`raw COPY copied ${copied} rows, expected ${DELETED}`);
  return { seconds: (t1 - t0) / 1000, copySeconds: (tCopy - t0) / 1000, commitSeconds: (tCommit - tCopy) / 1000, copied };
}

// --- main ---------------------------------------------------------------------------------

let cleanedUp: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleanedUp ??= (async () => {
    for (const c of [branchCluster, productionCluster]) {
      await c?.destroy().catch((err: unknown) => console.error(`could not destroy a cluster: ${(err as Error).message}`));
    }
    if (workDir) await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
  })();
  return cleanedUp;
}
cleanupOnSignal(cleanup);

interface Round {
  round: number;
  pitr: PitrRun & { walMB: number; tempMB: number };
  raw: RawRun & { walMB: number; tempMB: number };
}

const benchStarted = performance.now();
try {
  console.log(`bench:recover — ${human(ROWS)} rows in the branch, ${human(DELETED)} deleted in production and recovered; ${ROUNDS} round(s) of pitr then raw COPY`);
  const settings = { settings: { autovacuum: 'off' } };
  const started = await Promise.allSettled([startCluster(settings), startCluster(settings)]);
  if (started[0].status === 'fulfilled') branchCluster = started[0].value;
  if (started[1].status === 'fulfilled') productionCluster = started[1].value;
  for (const s of started) if (s.status === 'rejected') throw s.reason;
  const branch = branchCluster!;
  const production = productionCluster!;
  workDir = await mkdtemp(join(tmpdir(), 'pitr-bench-recover-'));
  const branchUrl = branch.urlFor('branch');
  const productionUrl = production.urlFor('production');

  const [version] = await production.query<{ v: string }>('select version() as v');
  const conf = await production.query<{ name: string; setting: string; unit: string | null }>(
    `select name, setting, unit from pg_settings where name in ('shared_buffers', 'temp_buffers', 'work_mem', 'maintenance_work_mem', 'max_wal_size', 'fsync', 'synchronous_commit', 'full_page_writes', 'wal_level') order by name`,
  );
  const serverSettings = Object.fromEntries(conf.map((r) => [r.name, `${r.setting}${r.unit ? ` ${r.unit}` : ''}`]));
  console.log(`${version!.v}`);
  console.log(`two clusters (branch :${branch.port}, production :${production.port}); ${Object.entries(serverSettings).map(([k, v]) => `${k}=${v}`).join(', ')}; autovacuum off`);

  const loadStarted = performance.now();
  await Promise.all([load(branch, 'branch', false), load(production, 'production', true)]);
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const sizes = await withClient(branchUrl, async (c) => (await c.query(`select pg_relation_size('orders')::int8 as heap, pg_total_relation_size('orders')::int8 as total`)).rows[0]);
  const expected = await checksum(branchUrl);
  const initial = await checksum(productionUrl);
  if (expected.recovered !== DELETED || expected.total !== ROWS) throw new Error(`branch holds ${expected.total} rows (${expected.recovered} ≤ ${DELETED}), expected ${ROWS}`);
  if (initial.recovered !== 0 || initial.total !== ROWS - DELETED) throw new Error(`production holds ${initial.total} rows (${initial.recovered} ≤ ${DELETED}), expected ${ROWS - DELETED}`);
  console.log(
    `loaded both in ${fmt(loadSeconds, 1)} s; branch orders: heap ${fmt(Number(sizes.heap) / MB, 0)} MB, with indexes ${fmt(Number(sizes.total) / MB, 0)} MB; production: ${int(ROWS - DELETED)} rows left\n`,
  );

  const check = async (what: string) => {
    const got = await checksum(productionUrl);
    if (got.total !== ROWS || got.recovered !== DELETED || got.hash !== expected.hash) {
      throw new Error(`${what}: production holds ${got.total} rows (${got.recovered} recovered), checksum ${got.hash === expected.hash ? 'equal' : 'differs'}`);
    }
  };

  const rounds: Round[] = [];
  const resetSeconds: number[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    let before = await serverStats(productionUrl);
    const pitr = await runPitr(branchUrl, productionUrl);
    const pitrDelta = await serverDelta(productionUrl, before);
    await check(`round ${r} pitr`);
    console.log(
      `round ${r} pitr: plan ${fmt(pitr.planSeconds)} s + apply ${fmt(pitr.applySeconds)} s = ${fmt(pitr.totalSeconds)} s → ${int(DELETED / pitr.totalSeconds)} rows/s (apply alone ${int(DELETED / pitr.applySeconds)} rows/s); WAL ${fmt(pitrDelta.walMB, 0)} MB; checked`,
    );
    if (pitr.unclassified.length) console.log(`  unclassified production queries: ${pitr.unclassified.join(' | ')}`);
    resetSeconds.push(await reset(productionUrl));

    before = await serverStats(productionUrl);
    const raw = await runRaw(branchUrl, productionUrl);
    const rawDelta = await serverDelta(productionUrl, before);
    await check(`round ${r} raw`);
    console.log(`round ${r} raw:  COPY ${fmt(raw.copySeconds)} s + commit ${fmt(raw.commitSeconds)} s = ${fmt(raw.seconds)} s → ${int(DELETED / raw.seconds)} rows/s; WAL ${fmt(rawDelta.walMB, 0)} MB; checked`);
    if (r < ROUNDS) resetSeconds.push(await reset(productionUrl));
    rounds.push({ round: r, pitr: { ...pitr, ...pitrDelta }, raw: { ...raw, ...rawDelta } });
  }

  // --- report -----------------------------------------------------------------------------
  const m = {
    plan: median(rounds.map((x) => x.pitr.planSeconds)),
    apply: median(rounds.map((x) => x.pitr.applySeconds)),
    pitr: median(rounds.map((x) => x.pitr.totalSeconds)),
    raw: median(rounds.map((x) => x.raw.seconds)),
    pitrWal: median(rounds.map((x) => x.pitr.walMB)),
    rawWal: median(rounds.map((x) => x.raw.walMB)),
    pitrTemp: median(rounds.map((x) => x.pitr.tempMB)),
    rawTemp: median(rounds.map((x) => x.raw.tempMB)),
  };
  const percent = (m.raw / m.pitr) * 100;
  const percentApply = (m.raw / m.apply) * 100;
  const goal = percent >= GOAL * 100 ? 'met' : 'missed';

  console.log('\n' + pad([
    ['round', 'way', 'plan s', 'apply s', 'total s', 'rows/s', 'apply rows/s', 'WAL MB', 'temp files MB'],
    ...rounds.flatMap((x) => [
      [String(x.round), 'pitr', fmt(x.pitr.planSeconds), fmt(x.pitr.applySeconds), fmt(x.pitr.totalSeconds), int(DELETED / x.pitr.totalSeconds), int(DELETED / x.pitr.applySeconds), fmt(x.pitr.walMB, 0), fmt(x.pitr.tempMB, 0)],
      [String(x.round), 'raw COPY', '-', '-', fmt(x.raw.seconds), int(DELETED / x.raw.seconds), '-', fmt(x.raw.walMB, 0), fmt(x.raw.tempMB, 0)],
    ]),
    ['median', 'pitr', fmt(m.plan), fmt(m.apply), fmt(m.pitr), int(DELETED / m.pitr), int(DELETED / m.apply), fmt(m.pitrWal, 0), fmt(m.pitrTemp, 0)],
    ['median', 'raw COPY', '-', '-', fmt(m.raw), int(DELETED / m.raw), '-', fmt(m.rawWal, 0), fmt(m.rawTemp, 0)],
  ]));

  const phaseTable = (which: 'plan' | 'apply', total: number) => {
    const labels = [...new Set(rounds.flatMap((x) => Object.keys(x.pitr.phases[which])))];
    const med = (label: string, k: keyof PhaseTime) => median(rounds.map((x) => x.pitr.phases[which][label]?.[k] ?? 0));
    const rows = labels.map((l) => ({ label: l, wall: med(l, 'wall'), query: med(l, 'query'), queries: med(l, 'queries') }));
    console.log(`\npitr ${which} by phase (medians; s from a query's submission to the next production query's; "client" = files, fsync, JS, round trips)`);
    console.log(pad([
      ['phase', 'wall s', 'in query s', 'client s', '% of ' + which, 'queries'],
      ...rows.map((p) => [p.label, fmt(p.wall), fmt(p.query), fmt(p.wall - p.query), fmt((p.wall / total) * 100, 1), String(p.queries)]),
      ['sum', fmt(rows.reduce((a, p) => a + p.wall, 0)), fmt(rows.reduce((a, p) => a + p.query, 0)), '', '', ''],
    ]));
    return Object.fromEntries(rows.map((p) => [p.label, { wallSeconds: round(p.wall), querySeconds: round(p.query), queries: p.queries }]));
  };
  const planPhases = phaseTable('plan', m.plan);
  const applyPhases = phaseTable('apply', m.apply);
  const files = [...new Set(rounds.flatMap((x) => Object.keys(x.pitr.runFilesMB)))].sort();
  const filesMB = Object.fromEntries(files.map((f) => [f, round(median(rounds.map((x) => x.pitr.runFilesMB[f] ?? 0)), 1)]));
  console.log(`\nrun files written and fsynced: ${files.map((f) => `${f} ${fmt(filesMB[f]!, 1)} MB`).join(', ')}`);
  console.log(`branch-side staging COPY out (s, per round): ${rounds.map((x) => x.pitr.branchCopyOutSeconds.map((s) => fmt(s)).join('+')).join(', ')}`);

  console.log(
    `\npitr: ${fmt(m.pitr)} s (plan ${fmt(m.plan)} + apply ${fmt(m.apply)}) = ${int(DELETED / m.pitr)} rows/s; raw COPY: ${fmt(m.raw)} s = ${int(DELETED / m.raw)} rows/s`,
  );
  console.log(`pitr runs at ${fmt(percent, 1)}% of raw COPY speed (apply alone ${fmt(percentApply, 1)}%); goal ≥ ${GOAL * 100}%: ${goal}` + (goal === 'missed' ? ` (needs plan + apply ≤ ${fmt(m.raw / GOAL)} s)` : ''));
  const totalSeconds = (performance.now() - benchStarted) / 1000;
  console.log(`setup ${fmt(loadSeconds, 1)} s, resets ${resetSeconds.map((s) => fmt(s, 1)).join('/')} s, total ${fmt(totalSeconds, 1)} s`);

  console.log(
    '\n' +
      JSON.stringify({
        bench: 'recover',
        rows: ROWS,
        deleted: DELETED,
        rounds: ROUNDS,
        clusters: 2,
        server: { version: version!.v, settings: serverSettings },
        pitr: {
          planSeconds: round(m.plan),
          applySeconds: round(m.apply),
          totalSeconds: round(m.pitr),
          rowsPerSecond: Math.round(DELETED / m.pitr),
          applyRowsPerSecond: Math.round(DELETED / m.apply),
          walMB: round(m.pitrWal, 1),
          tempFilesMB: round(m.pitrTemp, 1),
          runFilesMB: filesMB,
          phases: { plan: planPhases, apply: applyPhases },
        },
        raw: { seconds: round(m.raw), rowsPerSecond: Math.round(DELETED / m.raw), walMB: round(m.rawWal, 1), tempFilesMB: round(m.rawTemp, 1) },
        percentOfRawCopy: round(percent, 1),
        percentOfRawCopyApplyOnly: round(percentApply, 1),
        goalPercent: GOAL * 100,
        goal,
        perRound: rounds.map((x) => ({
          round: x.round,
          pitr: { plan: round(x.pitr.planSeconds), apply: round(x.pitr.applySeconds), total: round(x.pitr.totalSeconds), walMB: round(x.pitr.walMB, 1) },
          raw: { total: round(x.raw.seconds), copy: round(x.raw.copySeconds), commit: round(x.raw.commitSeconds), walMB: round(x.raw.walMB, 1) },
        })),
        setupSeconds: round(loadSeconds, 1),
        totalSeconds: round(totalSeconds, 1),
      }),
  );
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}

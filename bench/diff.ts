/**
 * bench/diff: the row diff (`diffRows`, in-process, default jobs) against the hashing floor and
 * the naive full comparison, on a throw-away cluster, optionally over a throttled network link.
 *
 *   npm run bench:diff -- [--rows 1M,10M] [--link 20ms,100] [--jobs N] [--rounds 2] [--stats both|never|analyzed]
 *                          [--scenarios identical,scattered,clustered] [--changed 0.1] [--explain <file>]
 *
 * For each N, `orders(id bigint primary key, customer_id int, status text, total numeric(12,2),
 * note text, created_at timestamptz)` (even ids, so rows can be inserted between them) is loaded
 * into database `branch` and vacuumed but never analyzed; per scenario `production` is a
 * template copy of it, then changed: identical; 0.1% of rows changed at random places (1/3
 * deleted, 1/3 updated, 1/3 inserted); the same number clustered in one key range. Every
 * scenario runs twice: never analyzed (no pg_stats, as a freshly restored branch), then analyzed.
 *
 *   floor  `select sum(hashtextextended(t::text, 0)) from orders t` on both sides at once: the
 *          least any exact hashing diff must do (one scan of each side); measured in the same run
 *   pitr   `diffRows` with a connector per side (so --jobs works), wall clock around the call
 *   naive  COPY both tables ordered by id, merged line by line in JS (a child process)
 *
 * With --link, every connection (all three) goes through a throttling TCP proxy per database
 * (bench/link-proxy.ts, a child process): rtt/2 each way and the bandwidth per direction. Results are checked
 * against the changes made. Prints a table and one JSON line. Heavy: run under
 * `flock /tmp/pitr-heavy.lock`.
 */
import { copyFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import pg from 'pg';
import { startCluster, type TestCluster } from '../test/support/cluster.js';
import { findTable, introspect } from '../src/db/introspect.js';
import { beginDiffSession, diffRows, endDiffSession, type RowDiffSummary } from '../src/diff/rows.js';
import { mulberry32 } from '../test/support/random.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseLink, type Link } from './link-proxy.js';
import type { NaiveResult } from './naive-diff.js';
import { cleanupOnSignal, fmt, option, pad, round, roundsSetting, traceQueries } from './support.js';

// PITR_T=1: the slowest statements of each pitr round on stderr (where the time goes).
const trace = traceQueries();

// --changed <percent>: the share of rows the scattered and clustered scenarios change (default 0.1).
const CHANGE_FRACTION = Number(option('changed', 'BENCH_CHANGED') ?? '0.1') / 100;
if (!(CHANGE_FRACTION > 0 && CHANGE_FRACTION < 1)) throw new Error('--changed takes a percentage between 0 and 100');
const COLUMNS = 'id, customer_id, status, total, note, created_at';

function rowsSetting(): number[] {
  const text = option('rows', 'BENCH_ROWS') ?? '1M';
  return text.split(',').map((part) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$/.exec(part);
    const n = m ? Math.round(Number(m[1]) * (m[2]?.toLowerCase() === 'm' ? 1e6 : m[2]?.toLowerCase() === 'k' ? 1e3 : 1)) : NaN;
    if (!Number.isInteger(n) || n < 3000) throw new Error(`--rows must be a comma-separated list of row counts ≥ 3000 (1000000 or 1M), not "${text}"`);
    return n;
  });
}

const gc: (() => void) | undefined = (() => {
  try {
    v8.setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
})();
const MB = 1024 * 1024;
const human = (n: number) => (n >= 1e6 && n % 1e5 === 0 ? `${n / 1e6}M` : n >= 1e3 ? `${Math.round(n / 1e3)}k` : String(n));

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Wall clock and peak RSS (whole process, 20 ms sampler) of fn. */
async function measure<T>(fn: () => Promise<T>): Promise<{ result: T; seconds: number; peakRssMB: number }> {
  gc?.();
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  const started = performance.now();
  try {
    const result = await fn();
    return { result, seconds: (performance.now() - started) / 1000, peakRssMB: Math.max(peak, process.memoryUsage.rss()) / MB };
  } finally {
    clearInterval(sampler);
  }
}

const rowExpr = (g: string, extra = false) => `2 * ${g}${extra ? ' - 1' : ''},
  ((${g} * 7919) % 100000)::int,
  (array['new', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + ${g} % 5],
  ((${g} * 37) % 1000000) / 100.0,
  case when ${g} % 10 = 0 then null else '${extra ? 'inserted' : 'note'} ' || md5(${g}::text) end,
  timestamptz '2024-01-01 00:00:00+00' + ${g} * interval '17 seconds'`;

type Scenario = 'identical' | 'scattered' | 'clustered';
const SCENARIOS: Scenario[] = ['identical', 'scattered', 'clustered'];
interface Changes {
  deleted: number[];
  updated: number[];
  inserted: number[];
}

function plannedChanges(scenario: Scenario, n: number, seed: number): Changes {
  const out: Changes = { deleted: [], updated: [], inserted: [] };
  if (scenario === 'identical') return out;
  const k = Math.max(3, Math.round(n * CHANGE_FRACTION));
  const r = mulberry32(seed);
  if (scenario === 'scattered') {
    const picked = new Set<number>();
    while (picked.size < k) picked.add(1 + Math.floor(r() * n));
    [...picked].forEach((g, i) => (i % 3 === 0 ? out.deleted : i % 3 === 1 ? out.updated : out.inserted).push(g));
    return out;
  }
  const start = 1 + Math.floor(r() * (n - k));
  for (let j = 0; j < k; j++) (j % 3 === 0 ? out.deleted : j % 3 === 1 ? out.updated : out.inserted).push(start + j);
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

interface Result {
  stats: 'never analyzed' | 'analyzed';
  scenario: Scenario;
  n: number;
  floor: number;
  pitr: number;
  naive: number;
  segments: RowDiffSummary['segments'];
  jobs: number;
  pitrPeakRssMB: number;
  naivePeakRssMB: number;
  found: { missing: number; changed: number; extra: number };
}

const ROWS = rowsSetting();
const linkText = option('link', 'BENCH_LINK');
const LINK: Link | null = linkText ? parseLink(linkText) : null;
const jobsText = option('jobs', 'BENCH_JOBS');
const JOBS = jobsText === undefined ? undefined : Number(jobsText);
const ROUNDS = roundsSetting(2);
const statsText = option('stats', 'BENCH_STATS') ?? 'both';
if (!['both', 'never', 'analyzed'].includes(statsText)) throw new Error(`--stats must be both, never or analyzed, not "${statsText}"`);
const STATS = (['never analyzed', 'analyzed'] as const).filter((s) => statsText === 'both' || s.startsWith(statsText));
const scenarioText = option('scenarios', 'BENCH_SCENARIOS');
// --explain <file>: the plans of statements over 300 ms (auto_explain, analyzed) are copied to <file>.
const EXPLAIN = option('explain', 'BENCH_EXPLAIN');
const RUN_SCENARIOS = scenarioText ? scenarioText.split(',').map((x) => x.trim()) : SCENARIOS;
for (const x of RUN_SCENARIOS) if (!SCENARIOS.includes(x as Scenario)) throw new Error(`--scenarios takes ${SCENARIOS.join(',')}, not "${x}"`);

/** A bench helper script in its own process (tsx), resolved with its first line of JSON output. */
function child<T>(script: string, args: string[]): { process: ChildProcess; first: Promise<T> } {
  const cp = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(script, import.meta.url)), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = new Promise<T>((resolve, reject) => {
    createInterface({ input: cp.stdout! }).once('line', (line) => resolve(JSON.parse(line) as T));
    cp.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  first.catch(() => undefined);
  return { process: cp, first };
}

let cluster: TestCluster | undefined;
const proxies: ChildProcess[] = [];
const cleanup = async () => {
  for (const p of proxies) p.kill('SIGTERM');
  await cluster?.destroy().catch(() => undefined);
};
cleanupOnSignal(cleanup);

const results: Result[] = [];
const benchStarted = performance.now();
try {
  const explain: Record<string, string> = EXPLAIN ? { session_preload_libraries: 'auto_explain', 'auto_explain.log_min_duration': '300ms', 'auto_explain.log_analyze': 'on' } : {};
  cluster = await startCluster({ settings: { autovacuum: 'off', shared_buffers: '512MB', max_wal_size: '4GB', checkpoint_timeout: '30min', ...explain } });
  const c = cluster;
  // One link per database, as a user reaches two Neon branches over two connections' worth of network.
  const viaLink = async (db: string): Promise<string> => {
    const url = new URL(c.urlFor(db));
    if (!LINK) return url.toString();
    // The proxy runs in its own process: its buffers and CPU must not count as pitr's.
    const proxy = child<{ port: number }>('./link-proxy.ts', [url.port || '5432', `${LINK.rttMs}ms,${LINK.mbit}`]);
    proxies.push(proxy.process);
    url.port = String((await proxy.first).port);
    return url.toString();
  };
  console.log(`bench diff: rows ${ROWS.map(human).join(', ')}, link ${LINK ? `${LINK.rttMs} ms rtt, ${LINK.mbit} Mbit/s each way` : 'loopback'}, jobs ${JOBS ?? 'default'}, rounds ${ROUNDS}`);
  for (const n of ROWS) {
    await c.query('drop database if exists production');
    await c.query('drop database if exists branch');
    await c.query('create database branch');
    const loadStarted = performance.now();
    const load = await connect(c.urlFor('branch'));
    await load.query(`create table orders (id bigint not null, customer_id int, status text, total numeric(12,2), note text, created_at timestamptz)`);
    await load.query(`insert into orders select ${rowExpr('g')} from generate_series(1::int8, ${n}::int8) g`);
    await load.query('alter table orders add primary key (id)');
    await load.query('vacuum orders');
    await load.end();
    console.log(`N=${human(n)}: loaded in ${fmt((performance.now() - loadStarted) / 1000, 1)} s`);
    for (const stats of STATS) {
      for (const [si, scenario] of SCENARIOS.entries()) {
        if (!RUN_SCENARIOS.includes(scenario)) continue;
        await c.query('drop database if exists production');
        await c.query('create database production template branch strategy file_copy');
        const changes = plannedChanges(scenario, n, 1000 + si);
        const setup = await connect(c.urlFor('production'));
        await applyChanges(setup, changes);
        if (stats === 'analyzed') await setup.query('analyze orders');
        await setup.end();
        const analyzedBranch = await connect(c.urlFor('branch'));
        if (stats === 'analyzed') await analyzedBranch.query('analyze orders');
        await analyzedBranch.end();
        await c.query('checkpoint');
        const [bUrl, pUrl] = [await viaLink('branch'), await viaLink('production')];
        const branch = await connect(bUrl);
        const production = await connect(pUrl);
        try {
          const statRows = await production.query(`select count(*)::int as n from pg_stats where tablename = 'orders'`);
          if ((statRows.rows[0].n > 0) !== (stats === 'analyzed')) throw new Error(`pg_stats has ${statRows.rows[0].n} rows, expected the table ${stats}`);
          // Warm: both tables read once (hint bits set, pages cached) before anything is timed.
          await Promise.all([branch.query('select count(*) from orders'), production.query('select count(*) from orders')]);
          const [bs, ps] = [await introspect(branch), await introspect(production)];
          const tables = { branch: findTable(bs, { schema: 'public', name: 'orders' })!, production: findTable(ps, { schema: 'public', name: 'orders' })! };
          const inSession = async <T>(fn: () => Promise<T>) => {
            await Promise.all([beginDiffSession(branch), beginDiffSession(production)]);
            try {
              return await fn();
            } finally {
              await Promise.all([endDiffSession(branch), endDiffSession(production)]);
            }
          };
          let floor = Infinity;
          let pitr = Infinity;
          let pitrRun: Awaited<ReturnType<typeof measure<RowDiffSummary>>> | undefined;
          for (let r = 0; r < ROUNDS; r++) {
            const f = await inSession(() => measure(() => Promise.all([branch, production].map((cl) => cl.query('select sum(hashtextextended(t::text, 0)) from public.orders t')))));
            floor = Math.min(floor, f.seconds);
            let differences = 0;
            trace.reset();
            const m = await inSession(() =>
              measure(() =>
                diffRows({ branch, production, branchTable: tables.branch, productionTable: tables.production, connect: { branch: () => connect(bUrl), production: () => connect(pUrl) }, ...(JOBS !== undefined && { jobs: JOBS }), onDifference: () => void differences++ }),
              ),
            );
            trace.report(`pitr ${scenario}, ${stats}, ${fmt(m.seconds)} s`);
            if (differences !== m.result.missing + m.result.changed + m.result.extra) throw new Error('pitr reported a different number of differences than it counted');
            if (m.seconds < pitr) [pitr, pitrRun] = [m.seconds, m];
          }
          // In its own process too, so pitr's peak RSS in the next scenario is pitr's alone.
          const naive = await child<{ result: NaiveResult; seconds: number; peakRssMB: number }>('./naive-diff.ts', [bUrl, pUrl, `select ${COLUMNS} from public.orders order by id`]).first;
          const expected = { missing: changes.deleted.length, changed: changes.updated.length, extra: changes.inserted.length };
          const s = pitrRun!.result;
          const got = { missing: s.missing, changed: s.changed, extra: s.extra };
          if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`pitr found ${JSON.stringify(got)}, expected ${JSON.stringify(expected)} (${scenario}, ${stats})`);
          const ng = { missing: naive.result.missing, changed: naive.result.changed, extra: naive.result.extra };
          if (JSON.stringify(ng) !== JSON.stringify(expected)) throw new Error(`naive found ${JSON.stringify(ng)}, expected ${JSON.stringify(expected)}`);
          const result: Result = { stats, scenario, n, floor, pitr, naive: naive.seconds, segments: s.segments, jobs: s.jobs, pitrPeakRssMB: pitrRun!.peakRssMB, naivePeakRssMB: naive.peakRssMB, found: got };
          results.push(result);
          console.log(`  ${stats.padEnd(14)} ${scenario.padEnd(9)} floor ${fmt(floor)} s   pitr ${fmt(pitr)} s (${fmt(pitr / floor)}× floor, segments ${s.segments.initial}/${s.segments.checked}/${s.segments.fetched}, jobs ${s.jobs}, peak RSS ${fmt(pitrRun!.peakRssMB, 0)} MB)   naive ${fmt(naive.seconds)} s (${fmt(naive.seconds / pitr)}× pitr)`);
        } finally {
          await Promise.all([branch.end().catch(() => undefined), production.end().catch(() => undefined)]);
          for (const p of proxies.splice(0)) p.kill('SIGTERM');
        }
      }
    }
  }
  console.log(`\n${LINK ? `link ${LINK.rttMs} ms, ${LINK.mbit} Mbit/s` : 'loopback'}; seconds (best of ${ROUNDS} for floor and pitr; naive once); segments initial/checked/fetched`);
  console.log(
    pad([
      ['N', 'statistics', 'scenario', 'floor s', 'pitr s', 'pitr/floor', 'naive s', 'naive/pitr', 'segments', 'jobs', 'pitr peak RSS MB', 'naive peak RSS MB'],
      ...results.map((r) => [human(r.n), r.stats, r.scenario, fmt(r.floor), fmt(r.pitr), fmt(r.pitr / r.floor), fmt(r.naive), fmt(r.naive / r.pitr), `${r.segments.initial}/${r.segments.checked}/${r.segments.fetched}`, String(r.jobs), fmt(r.pitrPeakRssMB, 0), fmt(r.naivePeakRssMB, 0)]),
    ]),
  );
  console.log(`total ${fmt((performance.now() - benchStarted) / 1000, 1)} s`);
  console.log(JSON.stringify({ bench: 'diff', link: LINK, jobs: JOBS ?? null, rounds: ROUNDS, results: results.map((r) => ({ ...r, floor: round(r.floor), pitr: round(r.pitr), naive: round(r.naive), pitrPeakRssMB: round(r.pitrPeakRssMB, 0), naivePeakRssMB: round(r.naivePeakRssMB, 0) })) }));
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  if (EXPLAIN && cluster) await copyFile(cluster.logFile, EXPLAIN).catch(() => undefined);
  await cleanup();
}

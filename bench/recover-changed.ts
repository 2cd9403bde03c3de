/**
 * bench/recover-changed: repairing corrupted rows. A bad UPDATE changed a share of a table's
 * rows, spread over the whole key space; `pitr recover orders --mode changed` (in-process, as
 * `--yes` runs it) against two hand-done ways, measured in the same run on the same state:
 *
 *   informed  knowing which rows: COPY exactly those rows from the branch into a temp table in
 *             production, UPDATE … FROM it, commit
 *   naive     not knowing: COPY the whole table into a temp table, UPDATE … FROM … WHERE
 *             (o.*) IS DISTINCT FROM (s.*), commit
 *
 *   npx tsx bench/recover-changed.ts [--rows 1M] [--keys bigint,uuid] [--changed 10,0.1] [--rounds 1] [--explain <file>]
 *
 * Two throw-away clusters (a branch and production are separate servers), autovacuum off;
 * production is VACUUM ANALYZEd and checkpointed before each measured run (not timed). After
 * every run production must equal the branch (count and hash sum of every row). Heavy: run alone.
 */
import { performance } from 'node:perf_hooks';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { startCluster, type TestCluster } from '../test/support/cluster.js';
import { applyRecovery } from '../src/recover/engine.js';
import { RunStore } from '../src/recover/runs.js';
import { findTable, introspect } from '../src/db/introspect.js';
import { beginDiffSession, diffKeys, endDiffSession } from '../src/diff/rows.js';
import { cleanupOnSignal, fmt, median, option, pad, traceQueries, withClient } from './support.js';

const trace = traceQueries();

const ROWS = Math.round(Number((option('rows', 'BENCH_ROWS') ?? '1000000').replace(/[mM]$/, 'e6').replace(/[kK]$/, 'e3')));
const KEYS = (option('keys', 'BENCH_KEYS') ?? 'bigint,uuid').split(',') as ('bigint' | 'uuid')[];
const CHANGED = (option('changed', 'BENCH_CHANGED') ?? '10,0.1').split(',').map(Number);
const ROUNDS = Number(option('rounds', 'BENCH_ROUNDS') ?? '1');
// --explain <file>: production's plans of statements over 300 ms (auto_explain, analyzed) are copied to <file>.
const EXPLAIN = option('explain', 'BENCH_EXPLAIN');

const columns = `customer_id int not null, status text not null, total numeric(12,2), note text, created_at timestamptz`;
const values = `((g * 7919) % 100000)::int, (array['new', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + g % 5], ((g * 37) % 1000000) / 100.0,
                case when g % 10 = 0 then null else 'note ' || md5(g::text) end, timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds'`;

async function load(url: string, key: 'bigint' | 'uuid'): Promise<void> {
  await withClient(url, async (c) => {
    const id = key === 'uuid' ? `md5(g::text)::uuid` : 'g';
    await c.query(`create table orders (id ${key} not null, ${columns})`);
    await c.query(`insert into orders select ${id}, ${values} from generate_series(1::int8, ${ROWS}::int8) g`);
    await c.query('alter table orders add primary key (id)');
    await c.query('create index on orders (customer_id)');
    await c.query('create index on orders (created_at)');
    await c.query('vacuum (analyze) orders');
  });
}

/** The corrupted rows: a share spread evenly over the key space (per mille of a hash). */
const victims = (percent: number) => `abs(hashtext(id::text)) % 100000 < ${Math.round(percent * 1000)}`;

async function corrupt(url: string, percent: number): Promise<number> {
  return withClient(url, async (c) => {
    const r = await c.query(`update orders set status = 'corrupted', total = total + 1 where ${victims(percent)}`);
    await c.query('vacuum (analyze) orders');
    await c.query('checkpoint');
    return r.rowCount ?? 0;
  });
}

async function checksum(url: string): Promise<string> {
  return withClient(url, async (c) => {
    await c.query(`set timezone = 'UTC'; set extra_float_digits = 3`);
    return (await c.query(`select count(*) || ':' || sum(hashtextextended(o::text, 0)) as h from orders o`)).rows[0].h as string;
  });
}

async function copyInto(branchUrl: string, productionClient: pg.Client, select: string, table: string): Promise<void> {
  await withClient(branchUrl, async (b) => {
    await pipeline(b.query(copyTo(`copy (${select}) to stdout`)), productionClient.query(copyFrom(`copy ${table} from stdin`)));
  });
}

async function handDone(branchUrl: string, productionUrl: string, informed: boolean, percent: number): Promise<number> {
  const started = performance.now();
  await withClient(productionUrl, async (c) => {
    await c.query('begin');
    await c.query(`create temp table src (like orders) on commit drop`);
    await copyInto(branchUrl, c, `select * from orders${informed ? ` where ${victims(percent)}` : ''}`, 'src');
    await c.query('analyze src');
    const set = `customer_id = s.customer_id, status = s.status, total = s.total, note = s.note, created_at = s.created_at`;
    await c.query(`update orders o set ${set} from src s where o.id = s.id${informed ? '' : ' and (o.*) is distinct from (s.*)'}`);
    await c.query('commit');
  });
  return (performance.now() - started) / 1000;
}

async function viaPitr(branchUrl: string, productionUrl: string, work: string): Promise<number> {
  const store = new RunStore(work);
  const run = await store.create('recover');
  trace.reset();
  const started = performance.now();
  await applyRecovery({ branchUrl, productionUrl, tables: ['orders'], mode: 'changed', cascade: false, deleteExtra: false }, null, store, run);
  const seconds = (performance.now() - started) / 1000;
  trace.report(`pitr ${seconds.toFixed(2)} s`);
  return seconds;
}

/** The diff alone (`pitr diff orders` without fetching rows): the 0.1% goal is measured against it. */
async function diffOnly(branchUrl: string, productionUrl: string): Promise<number> {
  const started = performance.now();
  await withClient(branchUrl, (b) =>
    withClient(productionUrl, async (p) => {
      await Promise.all([beginDiffSession(b), beginDiffSession(p)]);
      const [bs, ps] = await Promise.all([introspect(b), introspect(p)]);
      const wanted = { schema: 'public', name: 'orders' };
      await diffKeys(
        {
          branch: b,
          production: p,
          branchTable: findTable(bs, wanted)!,
          productionTable: findTable(ps, wanted)!,
          connect: {
            branch: async () => {
              const c = new pg.Client({ connectionString: branchUrl });
              await c.connect();
              return c;
            },
            production: async () => {
              const c = new pg.Client({ connectionString: productionUrl });
              await c.connect();
              return c;
            },
          },
        },
        () => undefined,
      );
      await Promise.all([endDiffSession(b), endDiffSession(p)]);
    }),
  );
  return (performance.now() - started) / 1000;
}

const clusters: TestCluster[] = [];
let work = '';
cleanupOnSignal(async () => {
  await Promise.all(clusters.map((c) => c.destroy()));
  if (work) await rm(work, { recursive: true, force: true });
});

try {
  work = await mkdtemp(join(tmpdir(), 'pitr-bench-changed-'));
  const settings = { settings: { autovacuum: 'off' } };
  const explain = { 'session_preload_libraries': 'auto_explain', 'auto_explain.log_min_duration': '300ms', 'auto_explain.log_analyze': 'on' };
  clusters.push(await startCluster(settings), await startCluster(EXPLAIN ? { settings: { ...settings.settings, ...explain } } : settings));
  const [branch, production] = clusters as [TestCluster, TestCluster];
  const results: string[][] = [['key', 'changed', 'rows', 'pitr s', 'informed s', 'naive s', 'diff s', 'pitr / informed speed', 'naive / pitr time', 'pitr / (diff + informed)']];
  const json: unknown[] = [];
  for (const key of KEYS) {
    const db = `orders_${key}`;
    await Promise.all([branch.query(`create database ${db}`), production.query(`create database ${db}`)]);
    const [branchUrl, productionUrl] = [branch.urlFor(db), production.urlFor(db)];
    await Promise.all([load(branchUrl, key), load(productionUrl, key)]);
    const clean = await checksum(branchUrl);
    for (const percent of CHANGED) {
      const times = { pitr: [] as number[], informed: [] as number[], naive: [] as number[], diff: [] as number[] };
      let rows = 0;
      for (let round = 0; round < ROUNDS; round++) {
        for (const way of ['pitr', 'informed', 'naive'] as const) {
          rows = await corrupt(productionUrl, percent);
          const t = way === 'pitr' ? await viaPitr(branchUrl, productionUrl, work) : await handDone(branchUrl, productionUrl, way === 'informed', percent);
          if ((await checksum(productionUrl)) !== clean) throw new Error(`${way} left production different from the branch (${key}, ${percent}%)`);
          times[way].push(t);
          if (way === 'pitr') {
            // The same corrupted state, diffed alone (read only), before the repair below restores it.
            await corrupt(productionUrl, percent);
            times.diff.push(await diffOnly(branchUrl, productionUrl));
          }
        }
      }
      const [p, i, nv, d] = [median(times.pitr), median(times.informed), median(times.naive), median(times.diff)];
      results.push([key, `${percent}%`, rows.toLocaleString('en-US'), fmt(p), fmt(i), fmt(nv), fmt(d), `${((i / p) * 100).toFixed(0)}%`, `${fmt(nv / p)}×`, `${fmt(p / (d + i))}×`]);
      json.push({ key, percent, rows, pitrSeconds: p, informedSeconds: i, naiveSeconds: nv, diffSeconds: d });
    }
  }
  process.stdout.write(`\nrecover --mode changed, ${ROWS.toLocaleString('en-US')} rows, PK + 2 indexes, medians of ${ROUNDS} round(s), load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}\n`);
  process.stdout.write(`goals: pitr / informed speed ≥ 60% and naive / pitr ≥ 2× at 10%; pitr / (diff + informed) ≤ 1.5× at 0.1%\n${pad(results)}\n`);
  process.stdout.write(JSON.stringify({ bench: 'recover-changed', rows: ROWS, results: json }) + '\n');
} finally {
  if (EXPLAIN && clusters[1]) await copyFile(clusters[1].logFile, EXPLAIN).catch(() => undefined);
  await Promise.all(clusters.map((c) => c.destroy()));
  await rm(work, { recursive: true, force: true });
}

/**
 * bench/when: how long `pitr when` takes to pin an incident, against one restore by hand.
 * A throw-away cluster with --rows rows, a workload of small writes for --seconds with a bad
 * DELETE in the middle; then (1) one branch restored at the middle (`pitr --at`, the baseline a
 * person does by hand per guess), (2) `pitr when --count` at 1 s precision, (3) `--timeline`,
 * (4) `when --count --timeline` (exact transaction). Heavy: run under flock /tmp/pitr-heavy.lock.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { makeTempRoot, localEnv, startCluster } from '../test/support/cluster.js';
import { findPostgresBinaries } from '../src/system/postgres-binaries.js';
import { startServer, stopServer } from '../src/system/postgres-server.js';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CLI, runPitr } from '../test/support/cli.js';
import { cleanupOnSignal, fmt, option, pad } from './support.js';

const rows = Number(option('rows', 'BENCH_ROWS') ?? 1_000_000);
const seconds = Number(option('seconds', 'BENCH_SECONDS') ?? 3600);
// --skip-count: leave out the time-only bisection (the slowest run) to keep the lock short at scale.
const skipCount = process.argv.includes('--skip-count');
// --trace: the exact run once more without --json, its progress lines printed with the seconds since its start (where the time goes).
const trace = process.argv.includes('--trace');
// The rows the bad DELETE removes. Not just grp = 7: the workload keeps inserting into every group,
// so over an hour that count ends far above where it started and never "drops" from its start.
const AFFECTED = "grp = 7 and note = 'initial'";
// --keep <dir>: after the workload, keep the stopped cluster, its archive and backups and write
// <dir>/meta.json; --reuse <dir>: measure on that kept workload again (an hour of WAL is made once).
const keepDir = option('keep', 'BENCH_KEEP');
const reuseDir = option('reuse', 'BENCH_REUSE');

interface Workload {
  url: string;
  archiveDir: string;
  dataDir: string;
  logFile: string;
  root: string;
  work: string;
  middle: number;
  badXid: string;
  badAt: string;
  rows: number;
  seconds: number;
}

async function reuse(dir: string): Promise<{ w: Workload; cleanup: () => Promise<void> }> {
  const w = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as Workload;
  const bin = await findPostgresBinaries();
  await startServer(bin, w.dataDir, w.logFile, 60, true);
  return { w, cleanup: () => stopServer(bin, w.dataDir, 'fast') };
}

async function main(): Promise<void> {
  if (reuseDir) {
    const { w, cleanup } = await reuse(reuseDir);
    cleanupOnSignal(cleanup);
    try {
      await measure(w);
    } finally {
      await cleanup();
    }
    return;
  }
  const prod = await startCluster({ archive: true, settings: { track_commit_timestamp: 'on', archive_timeout: 60 } });
  const work = await makeTempRoot('pitr-bench-when-');
  let kept = false;
  const cleanup = async () => {
    if (kept) return void (await prod.stop());
    await prod.destroy();
    await rm(work, { recursive: true, force: true });
  };
  cleanupOnSignal(cleanup);
  try {
    const env = localEnv(prod, work);
    await prod.query(`create table items(id bigint primary key, grp int not null, note text not null);
      insert into items select g, g % 100, 'initial' from generate_series(1, ${rows}) g; analyze items`);
    const b = await runPitr(['backup', '--json'], env, { timeoutMs: 3_600_000 });
    if (b.code !== 0) throw new Error(b.stderr);
    const client = new pg.Client({ connectionString: prod.url });
    await client.connect();
    const end = Date.now() + seconds * 1000;
    const middle = Date.now() + (seconds * 1000) / 2;
    let next = rows + 1;
    let badXid = '';
    let badAt = '';
    while (Date.now() < end) {
      if (!badXid && Date.now() >= middle) {
        await client.query('begin');
        badXid = (await client.query(`select txid_current()::text as x`)).rows[0].x;
        await client.query(`delete from items where grp = 7 and note = 'initial'`);
        await client.query('commit');
        badAt = (await client.query(`select pg_xact_commit_timestamp($1::xid)::text as t`, [badXid])).rows[0].t;
        continue;
      }
      await client.query(`insert into items select g, g % 100, 'legit' from generate_series(${next}, ${next + 9}) g`);
      await client.query(`update items set note = 'touched' where id = ${1 + (next % rows)} and grp <> 7`);
      next += 10;
      await new Promise((r) => setTimeout(r, 5));
    }
    await client.end();
    const w: Workload = { url: prod.url, archiveDir: prod.archiveDir, dataDir: prod.dataDir, logFile: prod.logFile, root: prod.root, work, middle, badXid, badAt, rows, seconds };
    if (keepDir) {
      await writeFile(join(keepDir, 'meta.json'), JSON.stringify(w, null, 2));
      kept = true;
    }
    await measure(w);
  } finally {
    await cleanup();
  }
}

async function measure({ url, archiveDir, work, middle, badXid, badAt, rows, seconds }: Workload): Promise<void> {
  {
    const env = localEnv({ url, archiveDir }, work);
    const timed = async (args: string[], extra: Record<string, string> = {}) => {
      // Every run starts with the previous one's writes on disk: a restore leaves a data directory's worth of dirty pages behind.
      spawnSync('sync');
      const t = Date.now();
      const r = await runPitr(args, { ...env, ...extra }, { timeoutMs: 7_200_000 });
      if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
      return { s: (Date.now() - t) / 1000, json: r.json };
    };
    const branch = await timed(['--at', new Date(middle).toISOString(), '--json']);
    await runPitr(['branches', 'delete', branch.json.id], env);
    const count = skipCount ? { s: NaN, json: { probes: [], restores: NaN, lastGood: 'skipped', firstBad: '' } } : await timed(['when', '--count', 'items', '--where', AFFECTED, '--json']);
    const timeline = await timed(['when', '--timeline', '--tables', 'items', '--min-rows', '100', '--json']);
    // The same timeline through pg_waldump's text (the reader pitr used before it read WAL itself): the baseline of the native reader.
    const waldump = await timed(['when', '--timeline', '--tables', 'items', '--min-rows', '100', '--json'], { PITR_WAL_READER: 'waldump' });
    if (JSON.stringify(waldump.json.transactions) !== JSON.stringify(timeline.json.transactions)) throw new Error('the native and pg_waldump timelines differ');
    const exact = await timed(['when', '--count', 'items', '--where', AFFECTED, '--timeline', '--json']);
    const ok = exact.json.culprit?.xid === badXid;
    console.log(`rows ${rows}, workload ${seconds} s, bad xid ${badXid} at ${badAt}`);
    console.log(
      pad([
        ['run', 'seconds', '× one restore', 'probes', 'restores', 'answer'],
        ['one restore (pitr --at middle)', fmt(branch.s), '1.00', '-', '1', '-'],
        ['when --count --where grp=7 (1 s)', fmt(count.s), fmt(count.s / branch.s), String(count.json.probes.length), String(count.json.restores), `${count.json.lastGood} .. ${count.json.firstBad}`],
        ['when --timeline', fmt(timeline.s), fmt(timeline.s / branch.s), '-', '0', `${timeline.json.transactions.length} tx ≥ 100 rows`],
        ['  the same through pg_waldump', fmt(waldump.s), fmt(waldump.s / branch.s), '-', '0', `native reader ${fmt(waldump.s / timeline.s)}× faster`],
        ['when --count --timeline (exact)', fmt(exact.s), fmt(exact.s / branch.s), String(exact.json.probes.length), String(exact.json.restores), `${exact.json.at} ${ok ? '(correct)' : '(WRONG)'}`],
        ['  of which forward replays', '', '', '', String(exact.json.forwardReplays), ''],
      ]),
    );
    if (trace) spawnSync('sync');
    if (trace) await traced(['when', '--count', 'items', '--where', AFFECTED, '--timeline'], env);
    console.log(JSON.stringify({ rows, seconds, restore: branch.s, whenCount: count.s, timeline: timeline.s, timelineWaldump: waldump.s, exact: exact.s, exactCorrect: ok, goalMet: exact.s <= 3 * branch.s }));
  }
}

/** Runs pitr with its progress on stderr (not a TTY: one line per phase change) and prints each line with its time. */
async function traced(args: string[], env: Record<string, string>): Promise<void> {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines = createInterface({ input: child.stderr });
  lines.on('line', (line) => console.log(`${((Date.now() - started) / 1000).toFixed(2).padStart(7)} s  ${line}`));
  await new Promise((resolve) => child.on('close', resolve));
  console.log(`${((Date.now() - started) / 1000).toFixed(2).padStart(7)} s  (exit)`);
}

await main();

/**
 * bench/branch-local: time-to-queryable of `pitr --at` against the same restore done by hand.
 *
 *   npm run bench:branch-local [-- --rounds N]      (or BENCH_ROUNDS=N; default 3)
 *
 * One throw-away PostgreSQL cluster with WAL archiving plays production (~1M rows). After one
 * `pitr backup` and some writes around a target instant T1, each round restores T1 twice:
 *
 *   manual  what an expert scripts by hand: `cp -a` the backup's data dir, recovery.signal, the
 *           recovery settings appended to postgresql.auto.conf, `pg_ctl -w start`, then poll
 *           `select pg_is_in_recovery()` every 50 ms until false. Timed from the start of the
 *           copy to promoted.
 *   pitr    `node dist/cli/main.js --at T1 --json` as a child process, timed end to end (wall
 *           clock: Node start-up, pitr's WAL switch on production and its exit included).
 *
 * Both restore the same backup with the same archive and settings, so the ratio pitr/manual is
 * the overhead pitr adds (goal: ≤ 1.2×). Both results are checked to hold the rows the delete
 * after T1 removed from production. One heavy Postgres job: run it alone.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { makeTempRoot, startCluster, switchAndArchiveWal, type TestCluster } from '../test/support/cluster.js';
import { CLI, runPitr, type CliRun } from '../test/support/cli.js';
import { freeLoopbackPort } from '../src/system/ports.js';
import { ensureServerDir, run } from '../src/system/process.js';
import { logReason, serverPid, stopServer, writeServerFile } from '../src/system/postgres-server.js';
import { cleanupOnSignal, roundsSetting, median, pad, withClient } from './support.js';

const GOAL = 1.2;
const USERS = 200_000;
const ORDERS = 800_000;
const POLL_MS = 50;
const RESTORE_TIMEOUT_MS = 10 * 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number | undefined) => (ms === undefined || Number.isNaN(ms) ? '-' : (ms / 1000).toFixed(3));
const quoteConf = (v: string) => `'${v.replace(/'/g, "''")}'`;


interface Counts {
  users: number;
  orders: number;
}
const countsAt = (url: string) =>
  withClient(url, async (c) => (await c.query<Counts>('select (select count(*) from users)::int as users, (select count(*) from orders)::int as orders')).rows[0]!);

/**
 * Server log timestamps (default log_line_prefix '%m [%p] ', log_timezone from initdb) as epoch
 * ms, for the phase breakdown. Only UTC logs are read; anything else leaves the phases blank.
 */
function logTime(log: string, message: RegExp, last = false): number | undefined {
  const lines = log.split('\n').filter((l) => message.test(l));
  const line = last ? lines.at(-1) : lines[0];
  const m = line && /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) (?:UTC|GMT)\b/.exec(line);
  return m ? Date.parse(`${m[1]}T${m[2]}Z`) : undefined;
}

/** When the server process started and when it finished recovery and took read-write connections. */
function serverPhases(log: string) {
  return {
    serverStart: logTime(log, /LOG: {2}starting PostgreSQL/),
    serverPromoted: logTime(log, /database system is ready to accept connections/, true),
  };
}

/** Milliseconds from a to b when both are known. */
const span = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : b - a);

interface ManualRound {
  ms: number;
  copyMs: number;
  phases: Record<string, number | undefined>;
}

interface PitrRound {
  wallMs: number;
  reportedMs: number;
  phases: Record<string, number | undefined>;
}

const ROUNDS = roundsSetting();

let prod: TestCluster | undefined;
let root: string | undefined;
let env: Record<string, string> = {};
/** Manual instances (data dirs) and pitr branches (ids) alive right now, for cleanup. */
const liveManual = new Set<string>();
const liveBranches = new Set<string>();

let cleanedUp: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleanedUp ??= (async () => {
    for (const dataDir of liveManual) if (prod) await stopServer(prod.bin, dataDir, 'immediate').catch(() => undefined);
    for (const id of liveBranches) await runPitr(['branches', 'delete', id], env).catch(() => undefined);
    // Belt and braces: any recovery instance still running below the work dir is stopped.
    if (root && prod) {
      const branchesDir = join(root, 'pitr', 'branches');
      for (const id of await readdir(branchesDir).catch(() => [] as string[])) {
        await stopServer(prod.bin, join(branchesDir, id, 'data'), 'immediate').catch(() => undefined);
      }
    }
    await prod?.destroy().catch((err: unknown) => console.error(`could not destroy the cluster: ${(err as Error).message}`));
    if (root) await rm(root, { recursive: true, force: true });
  })();
  return cleanedUp;
}
cleanupOnSignal(cleanup);

/**
 * Outside every timed section: flush the previous round's dirty pages (a 150 MB copy that the
 * kernel would otherwise write back during the next measurement), so each restore starts from
 * the same state: a warm page cache, no writeback backlog.
 */
async function settle(): Promise<void> {
  await run('sync', []);
}

/** The restore by hand, as an expert scripts it. */
async function manualRestore(round: number, backupDataDir: string, archiveDir: string, target: string, expected: Counts): Promise<ManualRound> {
  const dir = join(root!, `manual-${round}`);
  await ensureServerDir(dir, 0o755);
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const port = await freeLoopbackPort();
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  await settle();

  const t0 = Date.now();
  liveManual.add(dataDir);
  const cp = await run('cp', ['-a', backupDataDir, dataDir], { asServerUser: true });
  if (cp.code !== 0) throw new Error(`manual: cp -a failed: ${cp.stderr.trim()}`);
  const tCopied = Date.now();
  await writeServerFile(join(dataDir, 'recovery.signal'), '');
  await writeServerFile(
    join(dataDir, 'postgresql.auto.conf'),
    [
      '',
      '# manual restore (bench)',
      `port = ${port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = ''`,
      `archive_mode = off`,
      `restore_command = ${quoteConf(`cp '${archiveDir}/%f' "%p"`)}`,
      `recovery_target_time = ${quoteConf(target)}`,
      `recovery_target_action = 'promote'`,
      '',
    ].join('\n'),
    true,
  );
  const start = await run(prodBin('pg_ctl'), ['-D', dataDir, '-l', logFile, '-w', '-t', '600', 'start'], {
    asServerUser: true,
    // The postmaster inherits pg_ctl's stdio: hand it none of our pipes or we wait for it to exit.
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  if (start.code !== 0) throw new Error(`manual: pg_ctl start failed: ${logReason(await readFile(logFile, 'utf8').catch(() => ''))}`);
  await waitUntilPromoted(url, dataDir, logFile, t0 + RESTORE_TIMEOUT_MS);
  const tDone = Date.now();

  // Untimed: the result must be the state at T1, like pitr's.
  const got = await countsAt(url);
  if (got.users !== expected.users || got.orders !== expected.orders) {
    throw new Error(`manual restore holds ${JSON.stringify(got)}, expected the state at T1 ${JSON.stringify(expected)}`);
  }
  const { serverStart, serverPromoted } = serverPhases(await readFile(logFile, 'utf8'));
  await stopServer(prod!.bin, dataDir, 'immediate');
  liveManual.delete(dataDir);
  await rm(dir, { recursive: true, force: true });
  return {
    ms: tDone - t0,
    copyMs: tCopied - t0,
    phases: {
      before: 0,
      copy: span(t0, serverStart),
      recovery: span(serverStart, serverPromoted),
      noticed: span(serverPromoted, tDone),
      after: 0,
    },
  };
}

async function waitUntilPromoted(url: string, dataDir: string, logFile: string, deadline: number): Promise<void> {
  let client: pg.Client | undefined;
  try {
    for (;;) {
      if (!client) {
        const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
        c.on('error', () => undefined);
        client = await c.connect().then(
          () => c,
          async () => {
            await c.end().catch(() => undefined);
            return undefined;
          },
        );
      }
      const state = await client?.query<{ r: boolean }>('select pg_is_in_recovery() as r').catch(() => undefined);
      if (state && !state.rows[0]!.r) return;
      if (!state) {
        await client?.end().catch(() => undefined);
        client = undefined;
        if (!(await serverPid(dataDir))) throw new Error(`manual: the server died: ${logReason(await readFile(logFile, 'utf8').catch(() => ''))}`);
      }
      if (Date.now() > deadline) throw new Error('manual: recovery did not finish in time');
      await sleep(POLL_MS);
    }
  } finally {
    await client?.end().catch(() => undefined);
  }
}

const prodBin = (program: string) => prod!.bin.path(program);

/** Epoch ms of pitr's own log lines (stderr, pino JSON at debug level) by message. */
function pitrLogTimes(stderr: string): Record<string, number> {
  const times: Record<string, number> = {};
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { msg?: string; time?: string };
      if (entry.msg && entry.time) times[entry.msg] ??= Date.parse(entry.time);
    } catch {
      /* not a log line */
    }
  }
  return times;
}

/** `pitr --at T1` through the built CLI, as a user runs it. */
async function pitrRestore(target: string, expected: Counts): Promise<PitrRound> {
  await settle();
  const t0 = Date.now();
  const r: CliRun = await runPitr(['--at', target, '--json'], env, { timeoutMs: RESTORE_TIMEOUT_MS });
  const tEnd = Date.now();
  if (r.code !== 0 || !r.json?.id) throw new Error(`pitr --at exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  liveBranches.add(r.json.id);

  const got = await countsAt(r.json.connectionUrl);
  if (got.users !== expected.users || got.orders !== expected.orders) {
    throw new Error(`pitr branch holds ${JSON.stringify(got)}, expected the state at T1 ${JSON.stringify(expected)}`);
  }
  const log = pitrLogTimes(r.stderr);
  const server = serverPhases(await readFile(join(env.PITR_WORK_DIR!, 'branches', r.json.id, 'server.log'), 'utf8').catch(() => ''));
  const del = await runPitr(['branches', 'delete', r.json.id], env);
  if (del.code !== 0) throw new Error(`pitr branches delete failed: ${del.stderr.trim()}`);
  liveBranches.delete(r.json.id);

  // pitr logs this once the copy is done: the copy itself overlaps connecting and the WAL switch.
  const copyStart = log['restoring base backup'];
  return {
    wallMs: tEnd - t0,
    reportedMs: Number(r.json.secondsToQueryable) * 1000,
    phases: {
      before: span(t0, copyStart),
      startup: span(t0, log['production']),
      walSwitch: span(log['production'], log['WAL switch']),
      pickBackup: span(log['WAL switch'], copyStart),
      copy: span(copyStart, server.serverStart),
      recovery: span(server.serverStart, server.serverPromoted),
      noticed: span(server.serverPromoted, log['recovery branch promoted']),
      after: span(log['recovery branch promoted'], tEnd),
    },
  };
}

async function timeNodeStartup(): Promise<number> {
  const t0 = Date.now();
  await run(process.execPath, [CLI, '--version']);
  return Date.now() - t0;
}

try {
  console.log(`bench/branch-local: ${ROUNDS} round(s), PostgreSQL cluster with WAL archiving, ${USERS + ORDERS} rows\n`);
  prod = await startCluster({ archive: true });
  root = await makeTempRoot('pitr-bench-');
  env = {
    DATABASE_URL: prod.url,
    PITR_BACKUP_DIR: join(root, 'backups'),
    PITR_WAL_ARCHIVE: prod.archiveDir,
    PITR_WORK_DIR: join(root, 'pitr'),
    // Debug lines (a handful, synchronous writes to stderr) time pitr's phases; they cost nothing measurable.
    PITR_LOG_LEVEL: 'debug',
  };

  // 1. Production: ~1M rows with a foreign key and an index.
  let t = Date.now();
  await prod.query(`
    create table users(id int primary key, name text not null, email text not null, created_at timestamptz not null);
    create table orders(id bigint primary key, user_id int not null references users on delete cascade,
                        total numeric(10,2) not null, status text not null, created_at timestamptz not null);
    insert into users select g, 'user ' || g, 'user' || g || '@example.com', now() - g * interval '1 minute'
      from generate_series(1, ${USERS}) g;
    insert into orders select g, 1 + g % ${USERS}, (g % 1000) / 10.0 + 1, (array['new','paid','shipped'])[1 + g % 3], now() - g * interval '1 second'
      from generate_series(1, ${ORDERS}) g;
    create index orders_user_id_idx on orders(user_id);
    analyze;`);
  const [size] = await prod.query<{ size: string; bytes: string }>(`select pg_size_pretty(pg_database_size(current_database())) as size, pg_database_size(current_database())::text as bytes`);
  console.log(`loaded ${USERS} users + ${ORDERS} orders in ${secs(Date.now() - t)} s; database size ${size!.size}`);

  // 2. Base backup, writes, T1, the "accident" and later writes, all of it archived.
  t = Date.now();
  const backup = await runPitr(['backup', '--json'], env, { timeoutMs: RESTORE_TIMEOUT_MS });
  if (backup.code !== 0) throw new Error(`pitr backup failed: ${backup.stderr.trim()}`);
  const backupDataDir = join(backup.json.dir, 'data');
  console.log(`pitr backup ${backup.json.id} in ${secs(Date.now() - t)} s`);

  await prod.query(`update orders set status = 'refunded' where id % 16 = 0`); // 50k rows
  await prod.query(`insert into users select g, 'user ' || g, 'user' || g || '@example.com', now() from generate_series(${USERS + 1}, ${USERS + 10_000}) g`);
  const [mark] = await prod.query<{ now: string }>('select now()::text as now');
  const t1 = mark!.now;
  const expected = await countsAt(prod.url);
  await prod.query('delete from users where id <= 2000'); // cascades to their orders
  await prod.query(`insert into users select g, 'late ' || g, 'late' || g || '@example.com', now() from generate_series(${USERS + 10_001}, ${USERS + 15_000}) g`);
  await prod.query(`update users set name = name || ' (edited)' where id between 100000 and 110000`);
  // The archive the manual restore gets is the one pitr would get: its own WAL switch included.
  await switchAndArchiveWal(prod);
  const after = await countsAt(prod.url);
  const rows = expected.users + expected.orders;
  console.log(`T1 = ${t1}: ${expected.users} users, ${expected.orders} orders (production now: ${after.users} users, ${after.orders} orders)\n`);

  // 3. Rounds. The two ways alternate (and swap order every other round) instead of running all
  // manual restores and then all pitr ones: anything that drifts during the run (page cache,
  // background writeback, production's checkpoints, the archive growing by one segment per
  // pitr run) then falls on both sides alike instead of biasing the ratio.
  const manual: ManualRound[] = [];
  const pitr: PitrRound[] = [];
  /** Every run in execution order, for the per-run breakdown. */
  const runs: { label: string; totalMs: number; phases: Record<string, number | undefined> }[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const manualFirst = round % 2 === 1;
    for (const which of manualFirst ? ['manual', 'pitr'] : ['pitr', 'manual']) {
      if (which === 'manual') {
        const m = await manualRestore(round, backupDataDir, prod.archiveDir, t1, expected);
        manual.push(m);
        runs.push({ label: `${round} manual`, totalMs: m.ms, phases: { ...m.phases, cp: m.copyMs } });
        console.log(`round ${round}: manual ${secs(m.ms)} s`);
      } else {
        const p = await pitrRestore(t1, expected);
        pitr.push(p);
        runs.push({ label: `${round} pitr`, totalMs: p.wallMs, phases: { ...p.phases, unreported: p.wallMs - p.reportedMs } });
        console.log(`round ${round}: pitr   ${secs(p.wallMs)} s wall, ${secs(p.reportedMs)} s reported`);
      }
    }
  }
  const nodeStartupMs = median([await timeNodeStartup(), await timeNodeStartup(), await timeNodeStartup()]);

  // 4. Report.
  const manualMedian = median(manual.map((m) => m.ms));
  const pitrMedian = median(pitr.map((p) => p.wallMs));
  const reportedMedian = median(pitr.map((p) => p.reportedMs));
  const ratio = pitrMedian / manualMedian;
  const met = ratio <= GOAL;
  console.log('\n' + pad([
    ['round', 'manual s', 'pitr wall s', 'pitr reported s', 'pitr/manual'],
    ...manual.map((m, i) => [String(i + 1), secs(m.ms), secs(pitr[i]!.wallMs), secs(pitr[i]!.reportedMs), (pitr[i]!.wallMs / m.ms).toFixed(2) + '×']),
    ['median', secs(manualMedian), secs(pitrMedian), secs(reportedMedian), ratio.toFixed(2) + '×'],
  ]));
  console.log(`\nrows restored/s (pitr median): ${Math.round(rows / (pitrMedian / 1000)).toLocaleString('en-US')} (${rows} rows, ${size!.size})`);
  console.log(`ratio pitr/manual (median): ${ratio.toFixed(2)}×   goal ≤ ${GOAL}×: ${met ? 'met' : 'missed'}`);

  // Where the time goes (medians, seconds): the same server-side recovery on both sides, so the
  // difference is what pitr does around it.
  const med = (list: { phases: Record<string, number | undefined> }[], key: string) => {
    const xs = list.map((x) => x.phases[key]).filter((v): v is number => v !== undefined);
    return xs.length ? median(xs) : undefined;
  };
  console.log('\n' + pad([
    ['phase (median s)', 'manual', 'pitr'],
    ['until the copy is done (manual: 0, its copy is below): start-up, connect, WAL switch ∥ copy', secs(med(manual, 'before')), secs(med(pitr, 'before'))],
    ['  Node start-up + config + connect to production', '-', secs(med(pitr, 'startup'))],
    ['  pg_switch_wal + wait for the archiver', '-', secs(med(pitr, 'walSwitch'))],
    ['  rest of the copy (it started before the connect)', '-', secs(med(pitr, 'pickBackup'))],
    ['manual: copy + config until postmaster starts; pitr: after the copy until it starts', secs(med(manual, 'copy')), secs(med(pitr, 'copy'))],
    ['  of which cp -a alone', secs(median(manual.map((m) => m.copyMs))), '-'],
    ['server: start → recovery done, promoted', secs(med(manual, 'recovery')), secs(med(pitr, 'recovery'))],
    ['promotion noticed by the poller', secs(med(manual, 'noticed')), secs(med(pitr, 'noticed'))],
    ['after promotion: record, output, exit', secs(med(manual, 'after')), secs(med(pitr, 'after'))],
  ]));
  console.log(`(node dist/cli/main.js --version alone: ${secs(nodeStartupMs)} s)`);

  // The same per run, to tell noise (one slow run) from a cost every run pays. "not in reported"
  // is the part of pitr's wall clock its own secondsToQueryable leaves out.
  const cols = ['startup', 'walSwitch', 'pickBackup', 'copy', 'cp', 'recovery', 'noticed', 'after', 'unreported'] as const;
  console.log('\n' + pad([
    ['run (s)', 'total', 'start+connect', 'WAL switch', 'copy rest', '→postmaster', 'cp -a', 'recovery', 'noticed', 'after', 'not in reported'],
    ...runs.map((r) => [r.label, secs(r.totalMs), ...cols.map((c) => secs(r.phases[c]))]),
  ]));

  console.log(
    '\n' +
      JSON.stringify({
        bench: 'branch-local',
        rounds: ROUNDS,
        rows,
        dbBytes: Number(size!.bytes),
        manualSeconds: manual.map((m) => m.ms / 1000),
        pitrWallSeconds: pitr.map((p) => p.wallMs / 1000),
        pitrReportedSeconds: pitr.map((p) => p.reportedMs / 1000),
        manualMedianSeconds: manualMedian / 1000,
        pitrMedianSeconds: pitrMedian / 1000,
        pitrReportedMedianSeconds: reportedMedian / 1000,
        rowsPerSecond: Math.round(rows / (pitrMedian / 1000)),
        ratio: Math.round(ratio * 1000) / 1000,
        phaseMedianSeconds: Object.fromEntries(
          (['manual', 'pitr'] as const).map((side) => {
            const list = side === 'manual' ? manual : pitr;
            const keys = [...new Set(list.flatMap((x) => Object.keys(x.phases)))];
            return [side, Object.fromEntries(keys.map((k) => [k, (med(list, k) ?? NaN) / 1000]))];
          }),
        ),
        goal: GOAL,
        met,
      }),
  );
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}

/**
 * bench/export: `pitr export` (runExport, in-process, to a directory) against a plain
 * `pg_dump -Fc > file` of the same database, with the same pg_dump binary and its default
 * compression, measured in the same run.
 *
 *   npm run bench:export [-- --size-mb 400 --rounds 2]
 *   (or BENCH_SIZE_MB / BENCH_ROUNDS; defaults 400 and 2)
 *
 * One throw-away PostgreSQL cluster (fsync off, autovacuum off) with database `bench` of about
 * --size-mb MB (pg_database_size, reported as measured):
 *
 *   orders  (id bigint primary key, customer_id int, status text, total numeric(12,2), note text,
 *            created_at timestamptz), indexes on customer_id and created_at   (~75% of the size)
 *   events  (id bigint primary key, kind text, payload jsonb)                 (~25%)
 *
 * vacuumed, analyzed and checkpointed, then read once (pg_dump, untimed) so both sides start warm.
 * Each round runs, alternating which goes first:
 *
 *   plain  `pg_dump --format=custom --no-password > file` (stdout redirected to a file, as the
 *          issue defines the baseline; no fsync), connection in PG* environment variables
 *   pitr   runExport(): REPEATABLE READ + pg_export_snapshot, `pg_dump -Fc --snapshot`, exact
 *          row counts of every table in that snapshot in parallel, SHA-256 of the plaintext,
 *          AES-256-GCM in 1 MiB chunks, SHA-256 of the ciphertext, a `.partial` file fsynced and
 *          renamed, then the HMACed manifest (everything `pitr export --to <dir>` does, minus
 *          Node start-up)
 *
 * Wall clock, start to finish. MB/s (MiB) of dump bytes (pg_dump's output) and of database size;
 * medians over the rounds; the ratio plain seconds / pitr seconds is pitr's throughput as a share
 * of plain pg_dump's (goal ≥ 80%). This process's RSS is sampled every 20 ms during each pitr
 * export (peak − before) to show memory stays flat regardless of dump size. After the rounds, one
 * `verifyExport` (authenticate + decrypt every chunk, hashes, pg_restore --list; no restore) is
 * timed too. Prints a table, the medians and one JSON line. Run it alone: it is a heavy
 * Postgres job (and 2 cores are little for pg_dump's compression, the server's COPY and pitr).
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, rm, stat } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { libpqEnvironment } from '../src/db/libpq-env.js';
import { runExport, verifyExport } from '../src/export/index.js';
import { findClientProgram } from '../src/system/client-programs.js';
import { ExportBenchScratch, loadOrdersAndEvents } from './export-data.js';
import { roundsSetting, option, fmt, round, median, pad, withClient } from './support.js';

// --- settings ------------------------------------------------------------------------------


const SIZE_MB = Number(option('size-mb', 'BENCH_SIZE_MB') ?? '400');
if (!Number.isFinite(SIZE_MB) || SIZE_MB < 10) throw new Error(`--size-mb / BENCH_SIZE_MB must be a number ≥ 10, not "${option('size-mb', 'BENCH_SIZE_MB')}"`);
const ROUNDS = roundsSetting(2);
const GOAL = 0.8;
const MB = 1024 * 1024;



// --- data ---------------------------------------------------------------------------------

// --- the two ways ---------------------------------------------------------------------------

interface Run {
  seconds: number;
  dumpBytes: number;
}

async function plainDump(pgDumpPath: string, url: string, file: string): Promise<Run> {
  const fh = await open(file, 'w');
  const started = performance.now();
  try {
    const child = spawn(pgDumpPath, ['--format=custom', '--no-password'], { env: libpqEnvironment(url), stdio: ['ignore', fh.fd, 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    if (code !== 0) throw new Error(`pg_dump failed: ${stderr.trim()}`);
  } finally {
    await fh.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return { seconds, dumpBytes: (await stat(file)).size };
}

interface PitrRun extends Run {
  encryptedBytes: number;
  rssBeforeMB: number;
  rssPeakMB: number;
}

async function pitrExport(url: string, dir: string, name: string, key: Buffer): Promise<PitrRun> {
  const rssBefore = process.memoryUsage.rss();
  let peak = rssBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  const started = performance.now();
  try {
    const r = await runExport({ sourceUrl: url, sourceLabel: 'bench', target: null, location: dir, name, masterKey: key });
    const seconds = (performance.now() - started) / 1000;
    peak = Math.max(peak, process.memoryUsage.rss());
    return { seconds, dumpBytes: r.bytes, encryptedBytes: r.encryptedBytes, rssBeforeMB: rssBefore / MB, rssPeakMB: peak / MB };
  } finally {
    clearInterval(sampler);
  }
}

// --- main ------------------------------------------------------------------------------------

const t0 = performance.now();
const key = randomBytes(32);
const scratch = new ExportBenchScratch();

try {
  console.log(`bench/export: database of ~${SIZE_MB} MB, ${ROUNDS} round(s), goal: pitr ≥ ${GOAL * 100}% of plain pg_dump -Fc throughput`);
  const { cluster, out } = await scratch.start({ autovacuum: 'off', shared_buffers: '256MB' }, 'pitr-bench-export-');
  const loadStarted = performance.now();
  const dbBytes = await loadOrdersAndEvents(cluster, SIZE_MB);
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const url = cluster.urlFor('bench');
  const facts = await withClient(url, async (c) => (await c.query(`select current_setting('server_version_num')::int as n, (select count(*) from orders)::int8 as o, (select count(*) from events)::int8 as e`)).rows[0]);
  const pgDump = await findClientProgram('pg_dump', Math.floor(facts.n / 10000));
  console.log(`loaded ${fmt(dbBytes / MB, 0)} MB (${Number(facts.o).toLocaleString('en-US')} orders, ${Number(facts.e).toLocaleString('en-US')} events) in ${fmt(loadSeconds, 1)} s; ${pgDump.version} at ${pgDump.path}; ${(await import('node:os')).cpus().length} CPUs`);

  // Warm-up: one untimed plain dump reads every table into the page cache.
  const warm = await plainDump(pgDump.path, url, join(out, 'warm.dump'));
  await rm(join(out, 'warm.dump'));
  console.log(`warm-up pg_dump: ${fmt(warm.seconds)} s, ${fmt(warm.dumpBytes / MB, 1)} MB\n`);

  const plain: Run[] = [];
  const pitr: PitrRun[] = [];
  const rows: string[][] = [['round', 'way', 's', 'dump MB', 'MB/s dump', 'MB/s db', 'RSS peak−before MB']];
  for (let r = 1; r <= ROUNDS; r++) {
    const order = r % 2 === 1 ? (['plain', 'pitr'] as const) : (['pitr', 'plain'] as const);
    for (const way of order) {
      if (way === 'plain') {
        const file = join(out, `plain-${r}.dump`);
        const p = await plainDump(pgDump.path, url, file);
        await rm(file);
        plain.push(p);
        rows.push([String(r), 'plain', fmt(p.seconds), fmt(p.dumpBytes / MB, 1), fmt(p.dumpBytes / MB / p.seconds, 1), fmt(dbBytes / MB / p.seconds, 1), '']);
      } else {
        const p = await pitrExport(url, out, `round-${r}`, key);
        pitr.push(p);
        rows.push([String(r), 'pitr', fmt(p.seconds), fmt(p.dumpBytes / MB, 1), fmt(p.dumpBytes / MB / p.seconds, 1), fmt(dbBytes / MB / p.seconds, 1), `${fmt(p.rssPeakMB - p.rssBeforeMB, 1)} (${fmt(p.rssBeforeMB, 0)}→${fmt(p.rssPeakMB, 0)})`]);
      }
      console.log(rows.at(-1)!.join('  '));
    }
  }

  // One verification of the last export: every chunk authenticated, hashes, pg_restore --list.
  const rssBefore = process.memoryUsage.rss();
  let peak = rssBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  const v = await verifyExport({ object: join(out, `round-${ROUNDS}.manifest.json`), masterKey: key, restore: false });
  clearInterval(sampler);
  for (const f of await readdir(out)) await rm(join(out, f), { force: true });

  const m = {
    plainSeconds: median(plain.map((p) => p.seconds)),
    pitrSeconds: median(pitr.map((p) => p.seconds)),
    plainDumpMB: median(plain.map((p) => p.dumpBytes / MB)),
    pitrDumpMB: median(pitr.map((p) => p.dumpBytes / MB)),
    rssGrowthMB: Math.max(...pitr.map((p) => p.rssPeakMB - p.rssBeforeMB)),
  };
  const ratio = m.plainSeconds / m.pitrSeconds;
  console.log('\n' + pad(rows));
  console.log(`\nmedians: plain ${fmt(m.plainSeconds)} s (${fmt(m.plainDumpMB / m.plainSeconds, 1)} MB/s of dump, ${fmt(dbBytes / MB / m.plainSeconds, 1)} MB/s of database); ` +
    `pitr ${fmt(m.pitrSeconds)} s (${fmt(m.pitrDumpMB / m.pitrSeconds, 1)} MB/s of dump, ${fmt(dbBytes / MB / m.pitrSeconds, 1)} MB/s of database)`);
  console.log(`pitr export runs at ${fmt(ratio * 100, 1)}% of plain pg_dump -Fc throughput; goal ≥ ${GOAL * 100}%: ${ratio >= GOAL ? 'met' : 'missed'}`);
  console.log(`pitr RSS: peak − before at most ${fmt(m.rssGrowthMB, 1)} MB while streaming ${fmt(m.pitrDumpMB, 0)} MB (flat: bounded by stream buffers, not by the dump)`);
  console.log(`verify (authenticate + decrypt + hashes + pg_restore --list): ${fmt(v.authenticated.seconds)} s, ${fmt(v.authenticated.mbPerSecond, 1)} MB/s; RSS peak − before ${fmt((peak - rssBefore) / MB, 1)} MB`);
  console.log(`setup ${fmt(loadSeconds, 1)} s, total ${fmt((performance.now() - t0) / 1000, 1)} s`);
  console.log(
    JSON.stringify({
      bench: 'export',
      databaseMB: round(dbBytes / MB, 1),
      rounds: ROUNDS,
      plain: { seconds: round(m.plainSeconds), dumpMB: round(m.plainDumpMB, 1), mbPerSecondDump: round(m.plainDumpMB / m.plainSeconds, 2), mbPerSecondDb: round(dbBytes / MB / m.plainSeconds, 2) },
      pitr: { seconds: round(m.pitrSeconds), dumpMB: round(m.pitrDumpMB, 1), mbPerSecondDump: round(m.pitrDumpMB / m.pitrSeconds, 2), mbPerSecondDb: round(dbBytes / MB / m.pitrSeconds, 2) },
      ratio: round(ratio, 3),
      goal: GOAL,
      met: ratio >= GOAL,
      rssGrowthMB: round(m.rssGrowthMB, 1),
      verify: { seconds: v.authenticated.seconds, mbPerSecond: v.authenticated.mbPerSecond, rssGrowthMB: round((peak - rssBefore) / MB, 1) },
      perRound: { plain: plain.map((p) => round(p.seconds)), pitr: pitr.map((p) => round(p.seconds)) },
    }),
  );
} finally {
  await scratch.cleanup();
}

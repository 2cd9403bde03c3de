/**
 * bench/export-restore: `pitr export restore` (restoreExport, in-process) against a plain
 * `pg_restore` of the SAME archive unencrypted (the export decrypted once, untimed, to a file),
 * measured in the same run; and the time to a queryable `export:` branch.
 *
 *   npm run bench:export-restore [-- --size-mb 300 --rounds 2 --jobs 1]
 *   (or BENCH_SIZE_MB / BENCH_ROUNDS / BENCH_JOBS; defaults 300, 2, 1)
 *   Heavy: run it as  flock /tmp/pitr-heavy.lock npm run bench:export-restore
 *
 * One throw-away cluster (fsync off, autovacuum off) with database `bench` of about --size-mb MB:
 * orders (~75%, three indexes) and events (~25%, jsonb). It is exported once with runExport.
 * Each round, alternating which goes first, into a fresh database created from template0:
 *
 *   plain  `pg_restore --no-owner --no-acl --exit-on-error [--jobs N] -d <db> <file>`: the
 *          decrypted archive from a file, nothing else
 *   pitr   restoreExport(): read the encrypted object, authenticate and decrypt every chunk,
 *          SHA-256 of both forms against the manifest, pg_restore fed from the stream in one
 *          transaction (--jobs > 1: a private temp file, then pg_restore --jobs), then every
 *          table's exact row count compared with the manifest: start to verified counts
 *
 *   plain+mwm  the same with PGOPTIONS maintenance_work_mem as pitr sets it for its sessions
 *
 * The ratio plain seconds / pitr seconds is pitr's speed as a share of plain pg_restore's (goal
 * ≥ 80%). RSS of this process is sampled every 20 ms during each pitr restore (peak − before).
 * Then one `export:` branch is made (ExportBranches.create: initdb, start, restore, counts) and
 * its time to queryable printed. Prints a table, the medians and one JSON line.
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { libpqEnvironment } from '../src/db/libpq-env.js';
import { runExport } from '../src/export/index.js';
import { findClientProgram } from '../src/system/client-programs.js';
import { createDecryptStream } from '../src/export/encryption.js';
import { restoreExport } from '../src/export/restore.js';
import { ExportBranches } from '../src/export/as-branch.js';
import { ExportBenchScratch, loadOrdersAndEvents } from './export-data.js';
import { roundsSetting, option, fmt, round, median, pad } from './support.js';

const SIZE_MB = Number(option('size-mb', 'BENCH_SIZE_MB') ?? '300');
if (!Number.isFinite(SIZE_MB) || SIZE_MB < 10) throw new Error(`--size-mb / BENCH_SIZE_MB must be a number ≥ 10`);
const JOBS = Number(option('jobs', 'BENCH_JOBS') ?? '1');
if (!Number.isInteger(JOBS) || JOBS < 1) throw new Error('--jobs / BENCH_JOBS must be a positive integer');
const ROUNDS = roundsSetting(2);
const GOAL = 0.8;
const MB = 1024 * 1024;

async function plainRestore(pgRestore: string, url: string, file: string, options = ''): Promise<number> {
  const started = performance.now();
  const args = ['--no-owner', '--no-acl', '--exit-on-error', '--no-password', ...(JOBS > 1 ? [`--jobs=${JOBS}`] : []), `--dbname=${new URL(url).pathname.slice(1)}`, file];
  const env = libpqEnvironment(url);
  if (options) env.PGOPTIONS = options;
  const child = spawn(pgRestore, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`pg_restore failed: ${stderr.trim()}`);
  return (performance.now() - started) / 1000;
}

const t0 = performance.now();
const key = randomBytes(32);
const scratch = new ExportBenchScratch();

try {
  console.log(`bench/export-restore: database of ~${SIZE_MB} MB, ${ROUNDS} round(s), jobs ${JOBS}, goal: pitr ≥ ${GOAL * 100}% of plain pg_restore speed`);
  const { cluster, out } = await scratch.start({ autovacuum: 'off', shared_buffers: '256MB', max_wal_size: '4GB' }, 'pitr-bench-restore-');
  const loadStarted = performance.now();
  const dbBytes = await loadOrdersAndEvents(cluster, SIZE_MB);
  const src = cluster.urlFor('bench');
  const e = await runExport({ sourceUrl: src, sourceLabel: 'bench', target: null, location: out, name: 'bench', masterKey: key });
  const file = join(out, 'bench.dump');
  await pipeline(createReadStream(join(out, 'bench.dump.enc')), createDecryptStream(key), createWriteStream(file, { mode: 0o600 }));
  const pgRestore = await findClientProgram('pg_restore', Math.floor(e.manifest.server.versionNum / 10000));
  console.log(`loaded ${fmt(dbBytes / MB, 0)} MB, exported (${fmt(e.bytes / MB, 1)} MB dump, ${fmt(e.encryptedBytes / MB, 1)} MB encrypted, ${e.rows.toLocaleString('en-US')} rows) in ${fmt((performance.now() - loadStarted) / 1000, 1)} s; ${pgRestore.version}`);

  const plain: number[] = [];
  const plainMwm: number[] = [];
  const pitr: { seconds: number; restore: number; count: number; rss: number }[] = [];
  const rows: string[][] = [['round', 'way', 's (to verified counts)', 'restore s', 'count s', 'MB/s dump', 'RSS peak−before MB']];
  let n = 0;
  for (let r = 1; r <= ROUNDS; r++) {
    for (const way of r % 2 === 1 ? (['plain', 'plain-mwm', 'pitr'] as const) : (['pitr', 'plain-mwm', 'plain'] as const)) {
      const db = `r${++n}`;
      await cluster.query(`create database ${db} template template0`);
      const url = cluster.urlFor(db);
      if (way === 'plain-mwm') {
        // The same maintenance_work_mem pitr gives its restore sessions: what streaming + one transaction + checks cost alone.
        const s = await plainRestore(pgRestore.path, url, file, `-c maintenance_work_mem=${Math.floor(Math.max(256 / JOBS, 64) * 1024)}kB`);
        plainMwm.push(s);
        rows.push([String(r), 'plain+mwm', fmt(s), fmt(s), '-', fmt(e.bytes / MB / s, 1), '']);
      } else if (way === 'plain') {
        const s = await plainRestore(pgRestore.path, url, file);
        plain.push(s);
        rows.push([String(r), 'plain', fmt(s), fmt(s), '-', fmt(e.bytes / MB / s, 1), '']);
      } else {
        const before = process.memoryUsage.rss();
        let peak = before;
        const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
        const started = performance.now();
        const res = await restoreExport({ object: join(out, 'bench'), intoUrl: url, masterKey: key, jobs: JOBS, scratchDir: out });
        const s = (performance.now() - started) / 1000;
        clearInterval(sampler);
        pitr.push({ seconds: s, restore: res.seconds.restore, count: res.seconds.count, rss: (peak - before) / MB });
        rows.push([String(r), 'pitr', fmt(s), fmt(res.seconds.restore), fmt(res.seconds.count), fmt(e.bytes / MB / s, 1), fmt((peak - before) / MB, 1)]);
      }
      console.log(rows.at(-1)!.join('  '));
      await cluster.query(`drop database ${db}`);
    }
  }

  // Time to a queryable export: branch (initdb, start, streamed restore, counts).
  const branches = new ExportBranches({ workDir: join(out, 'work'), masterKey: () => key, jobs: JOBS });
  const b = await branches.create(join(out, 'bench'), { ttlMs: 3_600_000, startedAt: Date.now() });
  const queryable = b.secondsToQueryable ?? NaN;
  await branches.delete(b.id);

  const m = { plain: median(plain), pitr: median(pitr.map((p) => p.seconds)), restore: median(pitr.map((p) => p.restore)), count: median(pitr.map((p) => p.count)) };
  const ratio = m.plain / m.pitr;
  console.log('\n' + pad(rows));
  console.log(`\nmedians: plain pg_restore ${fmt(m.plain)} s; pitr export restore ${fmt(m.pitr)} s to verified counts (restore ${fmt(m.restore)} s + counts ${fmt(m.count)} s)`);
  console.log(`pitr runs at ${fmt(ratio * 100, 1)}% of plain pg_restore speed (restore alone: ${fmt((m.plain / m.restore) * 100, 1)}%); goal ≥ ${GOAL * 100}%: ${ratio >= GOAL ? 'met' : 'missed'}`);
  console.log(`plain pg_restore with pitr's maintenance_work_mem: ${fmt(median(plainMwm))} s; pitr runs at ${fmt((median(plainMwm) / m.pitr) * 100, 1)}% of it`);
  console.log(`pitr RSS: peak − before at most ${fmt(Math.max(...pitr.map((p) => p.rss)), 1)} MB while restoring ${fmt(e.bytes / MB, 0)} MB`);
  console.log(`export: branch queryable in ${fmt(queryable)} s (initdb + start + restore + counts)`);
  console.log(`total ${fmt((performance.now() - t0) / 1000, 1)} s`);
  console.log(
    JSON.stringify({
      bench: 'export-restore',
      databaseMB: round(dbBytes / MB, 1),
      dumpMB: round(e.bytes / MB, 1),
      rounds: ROUNDS,
      jobs: JOBS,
      plainSeconds: round(m.plain),
      plainSameMaintenanceMemorySeconds: round(median(plainMwm)),
      pitrSeconds: round(m.pitr),
      pitrRestoreSeconds: round(m.restore),
      pitrCountSeconds: round(m.count),
      ratio: round(ratio, 3),
      goal: GOAL,
      met: ratio >= GOAL,
      rssGrowthMB: round(Math.max(...pitr.map((p) => p.rss)), 1),
      exportBranchQueryableSeconds: round(queryable),
      perRound: { plain: plain.map((s) => round(s)), pitr: pitr.map((p) => round(p.seconds)) },
    }),
  );
} finally {
  await scratch.cleanup();
}

// src/demo: the self-contained demo (a throw-away cluster, an accident, its recovery, timed).
// Core: must not import src/cli (no console output, no process.exit); it drives the feature folders
// only through their public functions (playbooks, providers) and src/system for the cluster.
import { mkdtemp, rm, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { connect } from '../db/connect.js';
import { LocalProvider } from '../providers/local/index.js';
import type { ProgressSink, RecoveryBranch } from '../providers/types.js';
import { createLocalCluster, type LocalCluster } from '../system/local-cluster.js';
import { ensureServerDir } from '../system/process.js';
import { formatTarget, formatUtc } from '../time/index.js';
import { PitrError } from '../errors.js';
import { loadPlaybook, SHIPPED_PLAYBOOKS } from '../playbooks/load.js';
import { resolveInputs, runPlaybook } from '../playbooks/run.js';
import { COMICS_SCHEMA, COMICS_TABLES, comicsLoadSql, comicsSizes } from './comics.js';

export interface DemoOptions {
  rows: number;
  keep: boolean;
  /** Parent directory for the demo's files (default: the system temp dir). */
  dir?: string;
  signal?: AbortSignal;
  onProgress?: ProgressSink;
}

export interface TableCounts {
  table: string;
  beforeIncident: number;
  /** Production after the incident and the writes that followed it. */
  production: number;
  branch: number;
  /** Production after pitr recover. */
  recovered: number;
}

export interface DemoResult {
  root: string;
  kept: boolean;
  productionUrl: string;
  branch: Pick<RecoveryBranch, 'id' | 'name' | 'target' | 'connectionUrl'>;
  incident: { statement: string; at: string; authorId: number; comicsDeleted: number };
  target: string;
  counts: TableCounts[];
  /** Rows the incident removed that the recovery branch holds, per table. */
  recoverable: Record<string, number>;
  /** Rows the background writer inserted while the playbook ran (all still there afterwards). */
  liveWrites: number;
  recovery: { runId: string; inserted: number; conflicts: number; verified: boolean; playbookReport: string };
  timings: { loadSeconds: number; backupSeconds: number; branchSeconds: number; recoverSeconds: number; rtoSeconds: number; totalSeconds: number };
  /** Settings to point pitr at the demo's production when it is kept. */
  env: Record<string, string>;
}

async function counts(client: pg.Client): Promise<Record<string, number>> {
  const sql = COMICS_TABLES.map((t) => `(select count(*) from ${t})::int as ${t}`).join(', ');
  return (await client.query(`select ${sql}`)).rows[0];
}

/**
 * The whole incident on a machine with nothing but Postgres binaries: a production with WAL
 * archiving, a base backup, live traffic, a cascading DELETE, and a recovery branch from just
 * before it, with the numbers that show what came back and how fast.
 */
/**
 * The demo's own sessions on its sample database name the sample tables unqualified; pitr's
 * sessions pin search_path to pg_catalog, so these put public back (the demo owns every object).
 */
async function connectDemo(url: string): Promise<pg.Client> {
  const client = await connect(url);
  await client.query(`select pg_catalog.set_config('search_path', 'public, pg_catalog', false)`);
  return client;
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const started = Date.now();
  const say = (phase: string, message: string) => options.onProgress?.({ phase, message });
  const root = await mkdtemp(join(options.dir ?? tmpdir(), 'pitr-demo-'));
  await chmod(root, 0o755);
  await ensureServerDir(root, 0o755);
  let prod: LocalCluster | undefined;
  let provider: LocalProvider | undefined;
  let branch: RecoveryBranch | undefined;
  let client: pg.Client | undefined;
  try {
    say('setup', 'starting a local production Postgres with WAL archiving');
    prod = await createLocalCluster({ root: join(root, 'production'), archive: true, password: true, settings: { archive_timeout: 60 } });
    client = await connectDemo(prod.url);
    const sizes = comicsSizes(options.rows);
    say('load', `loading the comics platform (${options.rows.toLocaleString('en-US')} rows)`);
    const loadStart = Date.now();
    await client.query(COMICS_SCHEMA);
    for (const statement of comicsLoadSql(sizes)) await client.query(statement);
    const loadSeconds = (Date.now() - loadStart) / 1000;

    const env = {
      DATABASE_URL: prod.url,
      PITR_BACKUP_DIR: join(root, 'backups'),
      PITR_WAL_ARCHIVE: prod.archiveDir,
      PITR_WORK_DIR: join(root, 'pitr'),
    };
    provider = new LocalProvider({
      databaseUrl: env.DATABASE_URL,
      backupDir: env.PITR_BACKUP_DIR,
      walArchive: env.PITR_WAL_ARCHIVE,
      workDir: env.PITR_WORK_DIR,
      archiveWaitMs: 30_000,
      recoveryTimeoutMs: 10 * 60_000,
    });
    say('backup', 'taking a base backup (pitr backup)');
    const backup = await provider.backup();

    say('traffic', 'normal traffic: readers comment and bookmark');
    await client.query(`insert into comments (chapter_id, user_id, body)
      select 1 + (g * 31) % ${sizes.chapters}, 1 + g % ${sizes.users}, 'live comment ' || g from generate_series(1, 2000) g`);
    const before = await counts(client);
    const target = new Date((await client.query<{ now: Date }>('select now() as now')).rows[0]!.now);
    await new Promise((r) => setTimeout(r, 10));

    const { rows: victims } = await client.query<{ author_id: string; n: string }>(
      'select author_id, count(*) as n from comics group by author_id order by count(*) desc, author_id limit 1',
    );
    const authorId = Number(victims[0]!.author_id);
    const statement = `DELETE FROM comics WHERE author_id = ${authorId}`;
    say('incident', `incident: ${statement} (cascades to chapters, comments, bookmarks)`);
    const deleted = await client.query(statement);
    const incidentAt = new Date().toISOString();

    say('traffic', 'traffic goes on after the incident: new users and comments');
    await client.query(`insert into users (handle) select 'newcomer_' || g from generate_series(1, 50) g`);
    await client.query(`insert into comments (chapter_id, user_id, body)
      select c.id, 1, 'after the incident' from chapters c where c.comic_id not in (select id from comics where author_id = ${authorId}) limit 500`);
    const after = await counts(client);

    const where = `author_id = ${authorId}`;
    say('playbook', `pitr playbook run accidental-deletion --set at=${formatUtc(target)} --set table=comics --set "where=${where}" --yes`);
    const playbook = await loadPlaybook(join(SHIPPED_PLAYBOOKS, 'accidental-deletion.yaml'));
    // Background traffic keeps writing while the playbook runs: recovery must not lose any of it.
    const writer = await connectDemo(prod.url);
    let writing = true;
    let liveWrites = 0;
    const traffic = (async () => {
      while (writing) {
        await writer.query(`insert into comments (chapter_id, user_id, body) values (1, 1, 'written during the recovery')`);
        liveWrites++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const report = await runPlaybook(
      playbook,
      // Through resolveInputs, as `pitr playbook run` does: the playbook's defaults apply (its find
      // step reads find_count/find_sql, which the demo leaves out because it gives at).
      resolveInputs(playbook, { at: formatTarget({ kind: 'time', at: target, input: '' }), table: 'comics', where, triggers: '' }),
      { provider, workDir: env.PITR_WORK_DIR, dryRun: false, yes: true, ...(options.onProgress && { onProgress: options.onProgress }) },
    );
    writing = false;
    await traffic;
    await writer.end().catch(() => undefined);
    const step = (id: string) => report.steps.find((s) => s.id === id);
    if (report.status !== 'ok') {
      const failed = report.steps.find((s) => s.status === 'failed');
      throw new PitrError('demo_failed', `the accidental-deletion playbook failed at step ${failed?.id ?? failed?.type}: ${failed?.error}`);
    }
    const branchOut = step('branch')!.outputs as { id: string; name: string; target: string; secondsToQueryable: number };
    branch = await provider.getRecoveryBranch(branchOut.id);
    const applied = step('recover')!.outputs as { runId: string; inserted: number; conflicts: number; verified: boolean };
    const rtoSeconds = report.rtoSeconds ?? 0;
    const recoverSeconds = step('recover')!.seconds + step('verify')!.seconds;
    const branchClient = await connectDemo(branch.connectionUrl);
    let inBranch: Record<string, number>;
    const recoverable: Record<string, number> = {};
    try {
      inBranch = await counts(branchClient);
      // Rows of the incident's victim that production lost and the branch still has.
      const { rows } = await branchClient.query(
        `select (select count(*) from comics where author_id = $1)::int as comics,
                (select count(*) from chapters ch join comics c on c.id = ch.comic_id where c.author_id = $1)::int as chapters,
                (select count(*) from comments m join chapters ch on ch.id = m.chapter_id join comics c on c.id = ch.comic_id where c.author_id = $1)::int as comments,
                (select count(*) from bookmarks b join comics c on c.id = b.comic_id where c.author_id = $1)::int as bookmarks`,
        [authorId],
      );
      Object.assign(recoverable, rows[0]);
    } finally {
      await branchClient.end().catch(() => undefined);
    }
    const recovered = await counts(client);
    return {
      root,
      kept: options.keep,
      productionUrl: prod.url,
      branch: { id: branch.id, name: branch.name, target: branch.target, connectionUrl: branch.connectionUrl },
      incident: { statement, at: incidentAt, authorId, comicsDeleted: deleted.rowCount ?? 0 },
      target: formatUtc(target),
      counts: COMICS_TABLES.map((t) => ({ table: t, beforeIncident: before[t]!, production: after[t]!, branch: inBranch[t]!, recovered: recovered[t]! })),
      recoverable,
      liveWrites,
      recovery: { runId: applied.runId, inserted: applied.inserted, conflicts: applied.conflicts, verified: applied.verified, playbookReport: `${report.dir}/report.md` },
      timings: {
        loadSeconds,
        backupSeconds: backup.seconds,
        branchSeconds: branch.secondsToQueryable ?? 0,
        recoverSeconds,
        rtoSeconds,
        totalSeconds: (Date.now() - started) / 1000,
      },
      env,
    };
  } finally {
    await client?.end().catch(() => undefined);
    if (!options.keep) {
      say('cleanup', 'removing the demo (use --keep to leave it running)');
      // Every branch the demo's playbook made, even if it stopped half-way.
      for (const b of (await provider?.listRecoveryBranches().catch(() => [])) ?? []) await provider?.deleteRecoveryBranch(b.id).catch(() => undefined);
      await provider?.removeAbandoned().catch(() => undefined);
      await prod?.destroy().catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    }
  }
}

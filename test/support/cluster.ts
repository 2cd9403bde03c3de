import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createLocalCluster, type LocalCluster } from '../../src/system/local-cluster.js';
import { ensureServerDir } from '../../src/system/process.js';
import { serverPid } from '../../src/system/postgres-server.js';
import { switchWalAndWait } from '../../src/providers/local/production.js';

/**
 * Throw-away PostgreSQL clusters for tests (one per test file): a temp dir, a free loopback
 * port, optional WAL archiving. destroy() stops and removes each; a process-exit hook kills any
 * server a crashed test file left behind.
 */
export interface TestCluster extends LocalCluster {
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
}

export interface ClusterOptions {
  archive?: boolean;
  settings?: Record<string, string | number | boolean>;
}

const livePids = new Set<number>();
process.once('exit', () => {
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      /* already gone */
    }
  }
});

/** A temp directory owned by the postgres OS user (mkdtemp makes 0700 dirs the server cannot use). */
export async function makeTempRoot(prefix = 'pitr-test-'): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  await chmod(root, 0o755);
  await ensureServerDir(root, 0o755);
  return root;
}

export async function startCluster(options: ClusterOptions = {}): Promise<TestCluster> {
  const root = await makeTempRoot();
  const cluster = await createLocalCluster({ root, fast: true, ...options });
  let pid = await serverPid(cluster.dataDir);
  if (pid) livePids.add(pid);
  let destroyed = false;
  return {
    ...cluster,
    async query(sql, params) {
      const client = new pg.Client({ connectionString: cluster.url });
      await client.connect();
      try {
        return (await client.query(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    async start() {
      await cluster.start();
      pid = await serverPid(cluster.dataDir);
      if (pid) livePids.add(pid);
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await cluster.destroy();
      if (pid) livePids.delete(pid);
    },
  };
}

/** Switches WAL and waits until the archiver has archived the segment (pitr's own routine). */
export async function switchAndArchiveWal(cluster: TestCluster, timeoutMs = 20_000): Promise<string> {
  const client = new pg.Client({ connectionString: cluster.url });
  await client.connect();
  try {
    const result = await switchWalAndWait(client, timeoutMs);
    if (!result.archived) throw new Error(`WAL segment ${result.segment} was not archived within ${timeoutMs} ms`);
    return result.segment;
  } finally {
    await client.end();
  }
}

/** The environment that points pitr's local provider at a test production and a work root. */
/** Databases `branch` and `production` on a fresh cluster, with a connected client to each (the diff tests' two sides). */
export async function startBranchAndProduction(): Promise<{ cluster: TestCluster; branch: pg.Client; production: pg.Client }> {
  const cluster = await startCluster();
  await cluster.query('create database branch');
  await cluster.query('create database production');
  const branch = new pg.Client({ connectionString: cluster.urlFor('branch') });
  const production = new pg.Client({ connectionString: cluster.urlFor('production') });
  await Promise.all([branch.connect(), production.connect()]);
  return { cluster, branch, production };
}

export function localEnv(prod: { url: string; archiveDir: string }, work: string): Record<string, string> {
  return { DATABASE_URL: prod.url, PITR_BACKUP_DIR: `${work}/backups`, PITR_WAL_ARCHIVE: prod.archiveDir, PITR_WORK_DIR: `${work}/pitr` };
}

import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { findPostgresBinaries, type PostgresBinaries } from '../../src/system/postgres-binaries.js';
import { freeLoopbackPort } from '../../src/system/ports.js';
import { ensureServerDir } from '../../src/system/process.js';
import { initCluster, renderConf, serverPid, startServer, stopServer, writeServerFile } from '../../src/system/postgres-server.js';

/**
 * Throw-away PostgreSQL clusters for tests: a temp dir, a free loopback port, optional WAL
 * archiving into a directory of its own. Every cluster is stopped and removed by stop(); a
 * process-exit hook kills any a crashed test file left behind.
 */
export interface TestCluster {
  root: string;
  dataDir: string;
  archiveDir: string;
  logFile: string;
  port: number;
  url: string;
  bin: PostgresBinaries;
  urlFor(database: string): string;
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops the server and removes every file. Idempotent. */
  destroy(): Promise<void>;
}

export interface ClusterOptions {
  archive?: boolean;
  settings?: Record<string, string | number | boolean>;
}

const live = new Set<TestCluster>();
const livePids = new Map<TestCluster, number>();
process.once('exit', () => {
  for (const pid of livePids.values()) {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      /* already gone */
    }
  }
});

/** A temp directory the postgres OS user can traverse (mkdtemp makes 0700 dirs owned by us). */
export async function makeTempRoot(prefix = 'pitr-test-'): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  await chmod(root, 0o755);
  // The server user writes its log here, and pitr's own files live beside it.
  await ensureServerDir(root, 0o755);
  return root;
}

export async function startCluster(options: ClusterOptions = {}): Promise<TestCluster> {
  const bin = await findPostgresBinaries();
  const root = await makeTempRoot();
  const dataDir = join(root, 'data');
  const archiveDir = join(root, 'wal-archive');
  const logFile = join(root, 'server.log');
  await ensureServerDir(dataDir);
  await ensureServerDir(archiveDir, 0o755);
  await initCluster(bin, dataDir, { noSync: true });
  const port = await freeLoopbackPort();
  const archiveSettings: Record<string, string> = options.archive
    ? {
        wal_level: 'replica',
        archive_mode: 'on',
        // copy-then-rename: a reader never sees a half-copied segment.
        archive_command: `test ! -f '${archiveDir}/%f' && cp %p '${archiveDir}/%f.tmp' && mv '${archiveDir}/%f.tmp' '${archiveDir}/%f'`,
      }
    : {};
  await writeServerFile(
    join(dataDir, 'postgresql.conf'),
    renderConf({
      listen_addresses: '127.0.0.1',
      port,
      unix_socket_directories: '',
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'on',
      max_wal_senders: 4,
      ...archiveSettings,
      ...options.settings,
    }),
    true,
  );
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  const cluster: TestCluster = {
    root,
    dataDir,
    archiveDir,
    logFile,
    port,
    url,
    bin,
    urlFor: (database) => `postgresql://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    async query(sql, params) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return (await client.query(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    async start() {
      await startServer(bin, dataDir, logFile, 60);
      const pid = await serverPid(dataDir);
      if (pid) livePids.set(cluster, pid);
    },
    async stop() {
      await stopServer(bin, dataDir, 'fast');
      livePids.delete(cluster);
    },
    async destroy() {
      if (!live.has(cluster)) return;
      await stopServer(bin, dataDir, 'immediate').catch(() => undefined);
      livePids.delete(cluster);
      live.delete(cluster);
      await rm(root, { recursive: true, force: true });
    },
  };
  live.add(cluster);
  try {
    await cluster.start();
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}

/** Waits until the archiver has archived the segment holding the current WAL position. */
export async function switchAndArchiveWal(cluster: TestCluster, timeoutMs = 20_000): Promise<string> {
  const [row] = await cluster.query<{ wal: string }>('select pg_walfile_name(pg_switch_wal()) as wal');
  const wal = row!.wal;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const [s] = await cluster.query<{ last: string | null }>('select last_archived_wal as last from pg_stat_archiver');
    if (s?.last && s.last >= wal) return wal;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`WAL segment ${wal} was not archived within ${timeoutMs} ms`);
}

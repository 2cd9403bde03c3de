import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { registerSecret } from '../redact.js';
import { findPostgresBinaries, type PostgresBinaries } from './postgres-binaries.js';
import { freeLoopbackPort } from './ports.js';
import { ensureServerDir, minimalEnvironment } from './process.js';
import { initCluster, NO_DURABILITY, removeServerFile, scratchInstanceConf, startServer, stopServer, writeServerFile } from './postgres-server.js';

/**
 * A Postgres cluster pitr creates and owns: the demo's "production" and the test harness's
 * throw-away servers. Loopback only, a free port, WAL archiving into its own directory when
 * asked (copy-then-rename, so a reader never sees a half-copied segment).
 */
export interface LocalCluster {
  root: string;
  dataDir: string;
  archiveDir: string;
  logFile: string;
  port: number;
  url: string;
  bin: PostgresBinaries;
  urlFor(database: string): string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops the server (immediately) and removes the whole root directory. */
  destroy(): Promise<void>;
}

export interface LocalClusterOptions {
  /** A directory the postgres OS user can write to; everything lives below it. */
  root: string;
  archive?: boolean;
  /** Skip fsync (throw-away clusters only: a crash loses data). */
  fast?: boolean;
  settings?: Record<string, string | number | boolean>;
  /**
   * SCRAM with a random password for every login (it is in `url`) instead of trust: for clusters
   * that hold someone's data (export verify, the demo), so no other local user can log in.
   */
  password?: boolean;
}

export function archiveCommand(archiveDir: string): string {
  const dir = archiveDir.replace(/'/g, `'\\''`);
  return `test ! -f '${dir}/%f' && cp %p '${dir}/%f.tmp' && mv '${dir}/%f.tmp' '${dir}/%f'`;
}

export async function createLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  const bin = await findPostgresBinaries();
  const { root } = options;
  const dataDir = join(root, 'data');
  const archiveDir = join(root, 'wal-archive');
  const logFile = join(root, 'server.log');
  await ensureServerDir(root);
  await ensureServerDir(dataDir);
  if (options.archive) await ensureServerDir(archiveDir);
  // Throw-away clusters get nothing of pitr's environment (keys, cloud credentials, URLs).
  const env = minimalEnvironment();
  const password = options.password ? randomBytes(24).toString('base64url') : undefined;
  if (password) registerSecret(password);
  const passwordFile = join(root, 'initdb-password');
  if (password) await writeServerFile(passwordFile, password + '\n');
  try {
    await initCluster(bin, dataDir, { noSync: !!options.fast, env, ...(password && { passwordFile }) });
  } finally {
    if (password) await removeServerFile(passwordFile);
  }
  const port = await freeLoopbackPort();
  await writeServerFile(
    join(dataDir, 'postgresql.conf'),
    scratchInstanceConf(port, {
      max_wal_senders: 4,
      ...(options.fast ? NO_DURABILITY : {}),
      ...(options.archive ? { wal_level: 'replica', archive_mode: 'on', archive_command: archiveCommand(archiveDir) } : {}),
      ...options.settings,
    }),
    true,
  );
  const login = password ? `postgres:${encodeURIComponent(password)}` : 'postgres';
  const urlFor = (database: string) => `postgresql://${login}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  const cluster: LocalCluster = {
    root,
    dataDir,
    archiveDir,
    logFile,
    port,
    url: urlFor('postgres'),
    bin,
    urlFor,
    start: () => startServer(bin, dataDir, logFile, 60, true, env),
    stop: () => stopServer(bin, dataDir, 'fast'),
    async destroy() {
      await stopServer(bin, dataDir, 'immediate').catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    },
  };
  try {
    await cluster.start();
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}

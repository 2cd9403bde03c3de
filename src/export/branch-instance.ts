/**
 * The throw-away Postgres instance an `export:` branch lives in. Unlike the test harness's
 * clusters it outlives the command that made it (a user queries it, diffs it, recovers from it),
 * so it is sealed like a recovery instance: loopback only, no Unix socket, SCRAM with a random
 * password kept in a 0600 file beside it, no archiving, no replication.
 */
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from '../db/connect.js';
import { quoteIdent } from '../db/sql.js';
import { registerSecret } from '../redact.js';
import { findPostgresBinaries, type PostgresBinaries } from '../system/postgres-binaries.js';
import { NO_DURABILITY, scratchInstanceConf, startServer, stopServer, writeServerFile } from '../system/postgres-server.js';
import { freeLoopbackPort } from '../system/ports.js';
import { ensureServerDir, runChecked } from '../system/process.js';

export const INSTANCE_USER = 'postgres';

export interface BranchInstance {
  dataDir: string;
  logFile: string;
  port: number;
  bin: PostgresBinaries;
  password: string;
  urlFor(database: string): string;
}

/** Binaries for a dump from a server of `major`: the same major if installed, else any newer, else whatever exists. */
export async function binariesFor(major: number): Promise<PostgresBinaries> {
  const exact = await findPostgresBinaries(major).catch(() => undefined);
  if (exact) return exact;
  return findPostgresBinaries();
}

export function instanceUrl(port: number, database: string, password?: string): string {
  const auth = password === undefined ? INSTANCE_USER : `${INSTANCE_USER}:${encodeURIComponent(password)}`;
  return `postgresql://${auth}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}

/** initdb (SCRAM, random password), loopback configuration, start; then `create database`. */
export async function createBranchInstance(root: string, major: number, database: string): Promise<BranchInstance> {
  const bin = await binariesFor(major);
  const dataDir = join(root, 'data');
  const logFile = join(root, 'server.log');
  await ensureServerDir(root, 0o700);
  await ensureServerDir(dataDir);
  const password = randomBytes(18).toString('base64url');
  registerSecret(password);
  // initdb reads the password from a file the server user can read; it is removed right after.
  const pwfile = join(root, 'initdb-password');
  await writeServerFile(pwfile, password + '\n');
  try {
    await runChecked(
      bin.path('initdb'),
      ['-D', dataDir, '-U', INSTANCE_USER, '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'],
      { asServerUser: true, what: 'initdb', code: 'initdb_failed' },
    );
  } finally {
    await rm(pwfile, { force: true });
  }
  await writeFile(join(root, 'password'), password + '\n', { mode: 0o600 });
  const port = await freeLoopbackPort();
  await writeServerFile(
    join(dataDir, 'postgresql.conf'),
    scratchInstanceConf(port, {
      password_encryption: 'scram-sha-256',
      // A restored copy, rebuilt from the export if lost: durability buys nothing here.
      ...NO_DURABILITY,
      full_page_writes: 'off',
      wal_level: 'minimal',
      max_wal_senders: 0,
      archive_mode: 'off',
      max_wal_size: '4GB',
      max_logical_replication_workers: 0,
      max_worker_processes: 8,
    }),
    true,
  );
  await startServer(bin, dataDir, logFile, 60);
  const instance: BranchInstance = { dataDir, logFile, port, bin, password, urlFor: (db) => instanceUrl(port, db, password) };
  if (database !== 'postgres') {
    const admin = await connect(instance.urlFor('postgres'), { driver: 'pg', applicationName: 'pitr export branch' });
    try {
      await admin.query(`create database ${quoteIdent(database)} template template0`);
    } finally {
      await admin.end().catch(() => undefined);
    }
  }
  return instance;
}

export async function stopBranchInstance(bin: PostgresBinaries | undefined, dataDir: string, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  if (bin) await stopServer(bin, dataDir, mode).catch(() => undefined);
}

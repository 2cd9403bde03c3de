import { readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import type { ConnectOptions } from '../../db/connect.js';
import { PitrError } from '../../errors.js';
import { processAlive } from '../../system/postgres-server.js';

// pg (and the fetch machinery it pulls in) loads on the first connection, not at start-up.
async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>, options?: ConnectOptions): Promise<T> {
  return (await import('../../db/connect.js')).withClient(url, fn, options);
}

/**
 * A recovery instance is a copy of production, side effects included. These settings (written
 * last into postgresql.auto.conf) keep it from acting on the world: logical replication
 * subscriptions stay defined but no worker ever applies the publisher's changes, a standby's
 * cleanup and end commands never touch the shared archive, pg_cron starts no job (the setting is
 * a harmless placeholder when pg_cron is not loaded), and the server listens on loopback only.
 */
export const SEALED_SETTINGS: Record<string, string | number> = {
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  max_logical_replication_workers: 0,
  archive_cleanup_command: '',
  recovery_end_command: '',
  'cron.launch_active_jobs': 'off',
};

export interface SealedOff {
  /** Logical replication subscriptions that exist on the branch and never run there. */
  subscriptions: string[];
  /** pg_cron jobs marked active that the branch never launches. */
  cronJobs: string[];
}

/** What production would have done on this copy and the sealed settings stop. */
export async function listSealedOff(url: string): Promise<SealedOff> {
  return withClient(url, async (c) => {
    const subs = await c
      .query<{ name: string }>(`select s.subname::text as name from pg_catalog.pg_subscription s join pg_catalog.pg_database d on d.oid = s.subdbid where d.datname = pg_catalog.current_database() order by 1`)
      .then((r) => r.rows.map((x) => x.name))
      // pg_subscription's subconninfo makes the catalog superuser-only; the name view is enough.
      .catch(() => [] as string[]);
    const hasCron = (await c.query<{ ok: boolean }>(`select pg_catalog.to_regclass('cron.job') is not null as ok`)).rows[0]!.ok;
    const jobs = hasCron
      ? await c
          .query<{ name: string }>(`select coalesce(j.jobname, 'job ' || j.jobid) || ' (' || j.schedule || ')' as name from cron.job j where j.active order by j.jobid`)
          .then((r) => r.rows.map((x) => x.name))
          .catch(() => [] as string[])
      : [];
    return { subscriptions: subs, cronJobs: jobs };
  });
}

/** pg_control starts with the 64-bit system identifier (little-endian on every platform Postgres runs on pitr supports). */
export async function systemIdentifierOnDisk(dataDir: string): Promise<string> {
  const bytes = await readFile(join(dataDir, 'global', 'pg_control'));
  return bytes.readBigUInt64LE(0).toString();
}

/** The inode of the socket listening on 127.0.0.1:port, from /proc/net/tcp; undefined when none is. */
async function listeningSocketInode(port: number): Promise<string | undefined> {
  const table = await readFile('/proc/net/tcp', 'utf8');
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[3] === '0A') return f[9];
  }
  return undefined;
}

async function processOwnsSocket(pid: number, inode: string): Promise<boolean> {
  const fds = await readdir(`/proc/${pid}/fd`);
  for (const fd of fds) {
    if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === `socket:[${inode}]`) return true;
  }
  return false;
}

/**
 * Proves the server on a branch's port is that branch before pitr hands it production's
 * password and takes rows from it: the postmaster named in the branch's postmaster.pid is alive
 * and listens on that port (checked in /proc, before any credentials are sent), and once
 * connected, it reports the system identifier written in the branch's pg_control.
 */
export async function checkBranchIdentity(branch: { name: string; port: number; dataDir: string; url: string }): Promise<void> {
  const text = await readFile(join(branch.dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const lines = text?.split('\n') ?? [];
  const pid = Number(lines[0]);
  if (!text || !Number.isInteger(pid) || pid <= 0 || !(await processAlive(pid))) {
    throw new PitrError('branch_not_running', `recovery branch ${branch.name} is not running (no live postmaster.pid in ${branch.dataDir})`);
  }
  if (Number(lines[3]) !== branch.port) {
    throw new PitrError('branch_identity', `recovery branch ${branch.name} runs on port ${lines[3]}, not on ${branch.port} as recorded: refusing to connect`);
  }
  if (process.platform === 'linux') {
    const inode = await listeningSocketInode(branch.port).catch(() => undefined);
    const owned = inode !== undefined && (await processOwnsSocket(pid, inode).catch(() => false));
    if (!owned) {
      throw new PitrError('branch_identity', `port ${branch.port} is not held by recovery branch ${branch.name}'s server (pid ${pid}): refusing to send it production's credentials`);
    }
  }
  const expected = await systemIdentifierOnDisk(branch.dataDir);
  const got = await withClient(branch.url, async (c) => (await c.query<{ id: string }>('select system_identifier::text as id from pg_catalog.pg_control_system()')).rows[0]!.id, {
    driver: 'pg',
  });
  if (got !== expected) {
    throw new PitrError('branch_identity', `the server on port ${branch.port} is not recovery branch ${branch.name} (system identifier ${got}, expected ${expected})`);
  }
}

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type pg from 'pg';
import { badInput, PitrError } from '../errors.js';
import type { PostgresBinaries } from '../system/postgres-binaries.js';
import type { BackupInfo } from '../providers/local/backups.js';
import { listArchive } from '../providers/local/wal-archive.js';
import type { Micros, NextCommit } from './bisect.js';
import { microsToIso, parsePostgresMicros } from './instants.js';

export interface TupleCounts {
  inserted: number;
  updated: number;
  deleted: number;
}

export interface TimelineTransaction {
  xid: string;
  committedAt: string;
  commitLsn: string;
  /** Per table (partitions counted under the table asked for), only tables of interest. */
  tables: Record<string, TupleCounts>;
  rows: number;
}

export interface Timeline {
  from: string;
  to: string;
  segments: { first: string; last: string };
  transactions: TimelineTransaction[];
  /** Every commit in the window (touching the tables or not): what exact bisection needs. */
  commits: NextCommit[];
}

/**
 * Production's relfilenodes (`spcnode/dbnode/relnode`, as pg_waldump prints them) of the given
 * tables and all their partitions; every user table when none is given. A relfilenode changes
 * with VACUUM FULL, TRUNCATE and CLUSTER, so a rewrite inside the window hides older records.
 */
export async function mapRelfilenodes(client: pg.ClientBase, tables: readonly string[]): Promise<Map<string, string>> {
  // Table names as the user types them (public by default) and shown the same way: this catalog
  // query alone resolves names with the application's usual search_path, then pitr's pin is back.
  await client.query(`select pg_catalog.set_config('search_path', 'public, pg_catalog, pg_temp', false)`);
  try {
    return await mapRelfilenodesInPublic(client, tables);
  } finally {
    await client.query(`select pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)`);
  }
}

async function mapRelfilenodesInPublic(client: pg.ClientBase, tables: readonly string[]): Promise<Map<string, string>> {
  const { rows } = await client
    .query<{ node: string; name: string }>(
      `with recursive wanted(root, oid) as (
         select c.oid::regclass::text, c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where case when cardinality($1::text[]) = 0
                     then c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_%'
                     else c.oid = any(select to_regclass(t) from unnest($1::text[]) t) end
         union all
         select w.root, i.inhrelid from pg_inherits i join wanted w on i.inhparent = w.oid)
       select format('%s/%s/%s', coalesce(nullif(c.reltablespace, 0), d.dattablespace), d.oid, pg_relation_filenode(c.oid)) as node, w.root as name
         from wanted w join pg_class c on c.oid = w.oid cross join pg_database d
        where d.datname = current_database() and c.relkind in ('r', 'm') and pg_relation_filenode(c.oid) is not null`,
      [tables],
    )
    .catch((err: unknown) => {
      throw badInput('bad_table', `mapping --tables failed: ${(err as Error).message}`);
    });
  const found = new Set(rows.map((r) => r.name));
  for (const t of tables) {
    const { rows: exists } = await client.query<{ r: string | null }>(`select to_regclass($1)::text as r`, [t]);
    if (!exists[0]?.r) throw badInput('unknown_table', `no table ${t} on production`);
    if (!found.has(exists[0].r)) found.add(exists[0].r);
  }
  return new Map(rows.map((r) => [r.node, r.name]));
}

const RECORD = /^rmgr: (\w+)\s+len .*?tx:\s+(\d+), lsn: ([0-9A-F]+\/[0-9A-F]+), prev [0-9A-F/]+, desc: (\S+)(.*)$/;

/**
 * Reads archived WAL with pg_waldump (streamed, line by line) and lists the transactions that
 * touched the mapped relations, with commit time, commit LSN and tuple counts. Subtransactions
 * are folded into their top-level transaction; aborted ones are dropped.
 */
export async function readTimeline(options: {
  bin: PostgresBinaries;
  walArchive: string | undefined;
  backup: BackupInfo;
  relations: Map<string, string>;
  since: Micros;
  until: Micros;
  minRows?: number;
}): Promise<Timeline> {
  if (!options.walArchive) throw badInput('timeline_needs_archive_dir', '--timeline reads the archive directly: pass --wal-archive <dir> (a restore_command archive cannot be listed)');
  const listing = await listArchive(options.walArchive);
  const last = listing.newestName;
  if (!last) throw new PitrError('wal_missing', `the WAL archive ${options.walArchive} is empty`);
  const first = options.backup.startWal;
  const pending = new Map<string, Record<string, TupleCounts>>();
  const transactions: TimelineTransaction[] = [];
  const commits: NextCommit[] = [];
  const child = spawn(options.bin.path('pg_waldump'), ['-p', options.walArchive, '-r', 'Heap', '-r', 'Heap2', '-r', 'Transaction', first, last], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d.slice(0, 4000)));
  const done = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
  for await (const line of createInterface({ input: child.stdout })) {
    const m = RECORD.exec(line);
    if (!m) continue;
    const [, rmgr, xid, lsn, op, rest] = m as unknown as [string, string, string, string, string, string];
    if (rmgr === 'Transaction') {
      if (op !== 'COMMIT' && op !== 'ABORT') continue;
      const subs = /subxacts: ([\d ]+)/.exec(rest)?.[1]?.trim().split(/\s+/) ?? [];
      const counts = pending.get(xid) ?? {};
      for (const s of subs) {
        for (const [table, c] of Object.entries(pending.get(s) ?? {})) add(counts, table, c);
        pending.delete(s);
      }
      pending.delete(xid);
      if (op === 'ABORT') continue;
      const time = /^\s*(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? (?:[A-Z]+|[+-]\d\d(?::?\d\d)?))/.exec(rest)?.[1];
      if (!time) continue;
      const at = parsePostgresMicros(time);
      if (at < options.since || at > options.until) continue;
      commits.push({ xid, at });
      const rows = Object.values(counts).reduce((n, c) => n + c.inserted + c.updated + c.deleted, 0);
      if (rows > 0 && rows >= (options.minRows ?? 1)) transactions.push({ xid, committedAt: microsToIso(at), commitLsn: lsn, tables: counts, rows });
      continue;
    }
    const rel = /blkref #0: rel (\d+\/\d+\/\d+)/.exec(rest)?.[1];
    const table = rel ? options.relations.get(rel) : undefined;
    if (!table) continue;
    const kind = op.replace(/\+INIT$/, '');
    const delta: TupleCounts = { inserted: 0, updated: 0, deleted: 0 };
    if (kind === 'INSERT') delta.inserted = 1;
    else if (kind === 'MULTI_INSERT') delta.inserted = Number(/ntuples:? (\d+)/.exec(rest)?.[1] ?? 1);
    else if (kind === 'UPDATE' || kind === 'HOT_UPDATE') delta.updated = 1;
    else if (kind === 'DELETE') delta.deleted = 1;
    else continue;
    const counts = pending.get(xid) ?? {};
    add(counts, table, delta);
    pending.set(xid, counts);
  }
  const code = await done;
  // pg_waldump always ends with an error at the end of the archived WAL; only an early one matters.
  if (code !== 0 && !/invalid record length|could not find a valid record|could not find file|invalid magic number|error in WAL record|contrecord/i.test(stderr)) {
    throw new PitrError('waldump_failed', `pg_waldump failed: ${stderr.trim().split('\n').at(-1) ?? `exit ${code}`}`);
  }
  return { from: microsToIso(options.since), to: microsToIso(options.until), segments: { first, last }, transactions, commits };
}

function add(into: Record<string, TupleCounts>, table: string, c: TupleCounts): void {
  const t = (into[table] ??= { inserted: 0, updated: 0, deleted: 0 });
  t.inserted += c.inserted;
  t.updated += c.updated;
  t.deleted += c.deleted;
}

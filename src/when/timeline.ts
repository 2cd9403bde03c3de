import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { badInput, PitrError } from '../errors.js';
import type { PostgresBinaries } from '../system/postgres-binaries.js';
import type { BackupInfo } from '../providers/local/backups.js';
import { listArchive } from '../providers/local/wal-archive.js';
import type { Micros, NextCommit } from './bisect.js';
import { microsToIso, parsePostgresMicros } from './instants.js';
import { dumpRun, planWaldumpRuns, segmentsInWindow, waldumpSink, type WaldumpRun } from './waldump.js';
import { readWalRun, walFormatOf, type TimelineSink, type WalFormat } from './wal-reader.js';

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
 * A transaction as read, with its commit time kept as a number (a private field, so it stays
 * out of --json): callers need not parse committedAt back, and an hour holds hundreds of thousands.
 */
class ReadTransaction implements TimelineTransaction {
  readonly xid: string;
  readonly committedAt: string;
  readonly commitLsn: string;
  readonly tables: Record<string, TupleCounts>;
  readonly rows: number;
  readonly #at: Micros;
  constructor(xid: string, at: Micros, commitLsn: string, tables: Record<string, TupleCounts>, rows: number) {
    this.xid = xid;
    this.committedAt = microsToIso(at);
    this.commitLsn = commitLsn;
    this.tables = tables;
    this.rows = rows;
    this.#at = at;
  }
  get at(): Micros {
    return this.#at;
  }
}

/** A transaction's commit time in microseconds. */
export const commitMicrosOf = (t: TimelineTransaction): Micros => (t instanceof ReadTransaction ? t.at : parsePostgresMicros(t.committedAt));

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

/** What one run of the WAL saw: its commits and aborts in order, and the changes still open at its end. */
interface RunOutcome {
  ends: Array<{ xid: string; aborted: boolean; subs: readonly string[]; at: Micros | null; lsn: string; counts: Record<string, TupleCounts> }>;
  open: Map<string, Record<string, TupleCounts>>;
  code: number;
  stderr: string;
  damaged?: boolean;
}

/** What is known once the timeline's runs up to some point have been merged, in WAL order. */
export interface TimelinePrefix {
  /** Commit time of the last commit merged: no commit at or before it is still unknown. */
  through: Micros;
  /** The transactions of the window merged since the previous prefix (touching the tables). */
  added: readonly TimelineTransaction[];
}

/**
 * Reads archived WAL (wal-reader.ts, or pg_waldump for formats it does not know; runs of
 * segments read in parallel, one per core) and lists the transactions that touched the mapped relations, with commit time, commit
 * LSN and tuple counts. Subtransactions are folded into their top-level transaction; aborted
 * ones are dropped. With `onPrefix`, the WAL is cut into more runs than cores, read in order by
 * a pool, and each run is merged (and reported) as soon as every run before it is: a caller can
 * act on the early part of the window while the rest is read.
 */
export async function readTimeline(options: {
  bin: PostgresBinaries;
  walArchive: string | undefined;
  backup: BackupInfo;
  relations: Map<string, string>;
  since: Micros;
  until: Micros;
  minRows?: number;
  /** Runs read at once (default: the cores). */
  parallel?: number;
  /** The fewest segments one of them reads (tests make it 1). */
  segmentsPerRun?: number;
  onPrefix?: (prefix: TimelinePrefix) => void;
  /** With onPrefix: about how many segments a run reads (default PREFIX_SEGMENTS). */
  prefixSegments?: number;
}): Promise<Timeline> {
  if (!options.walArchive) throw badInput('timeline_needs_archive_dir', '--timeline reads the archive directly: pass --wal-archive <dir> (a restore_command archive cannot be listed)');
  const archive = options.walArchive;
  const listing = await listArchive(archive);
  const last = listing.newestName;
  if (!last) throw new PitrError('wal_missing', `the WAL archive ${archive} is empty`);
  const first = options.backup.startWal;
  const parallel = Math.max(1, options.parallel ?? availableParallelism());
  // Streaming: runs of about PREFIX_SEGMENTS segments, so the merged prefix advances steadily.
  const window = segmentsInWindow(listing.segments, first, last, options.backup.walSegmentSize);
  const wanted = options.onPrefix ? Math.max(parallel, Math.ceil(window.segments.length / (options.prefixSegments ?? PREFIX_SEGMENTS))) : parallel;
  const runs = planWaldumpRuns(listing.segments, first, last, options.backup.walSegmentSize, wanted, options.segmentsPerRun);
  const format = window.contiguous && window.segments.length > 0 ? await nativeFormat(archive, first, options.backup.walSegmentSize) : null;

  const transactions: TimelineTransaction[] = [];
  const commits: NextCommit[] = [];
  // Changes of transactions still open at the end of a run, for their commit in a later run.
  const carried = new Map<string, Record<string, TupleCounts>>();
  const takeCarried = (into: Record<string, TupleCounts>, xid: string) => {
    const open = carried.get(xid);
    if (!open) return;
    addAll(into, open);
    carried.delete(xid);
  };
  let through = options.since;
  const merge = (o: RunOutcome) => {
    // Runs end in order: an early error in any of them is a failure; the last always ends in one.
    if (o.code !== 0 && (o.damaged || !/invalid record length|could not find a valid record|could not find file|invalid magic number|error in WAL record|contrecord/i.test(o.stderr))) {
      const why = o.stderr.trim().split('\n').at(-1) ?? `exit ${o.code}`;
      throw new PitrError('waldump_failed', o.damaged ? `reading the WAL archive failed: ${why}` : `pg_waldump failed: ${why}`);
    }
    const before = transactions.length;
    for (const end of o.ends) {
      const counts = end.counts;
      takeCarried(counts, end.xid);
      for (const sub of end.subs) takeCarried(counts, sub);
      if (end.at !== null && end.at > through) through = end.at;
      if (end.aborted || end.at === null || end.at < options.since || end.at > options.until) continue;
      commits.push({ xid: end.xid, at: end.at });
      let rows = 0;
      for (const table in counts) rows += counts[table]!.inserted + counts[table]!.updated + counts[table]!.deleted;
      if (rows > 0 && rows >= (options.minRows ?? 1)) transactions.push(new ReadTransaction(end.xid, end.at, end.lsn, counts, rows));
    }
    for (const [xid, counts] of o.open) carried.set(xid, addAll(carried.get(xid) ?? {}, counts));
    options.onPrefix?.({ through, added: transactions.slice(before) });
  };
  const failed = new AbortController();
  try {
    await inOrderPool(runs, parallel, (run) => readRun(options.bin, archive, run, options.relations, format, failed.signal), merge);
  } catch (err) {
    failed.abort();
    throw err;
  }
  return { from: microsToIso(options.since), to: microsToIso(options.until), segments: { first, last }, transactions, commits };
}

const PREFIX_SEGMENTS = 8;

/**
 * The WAL format when pitr reads the archive itself (the caller has checked the window is one
 * timeline of contiguous segments; else pg_waldump, which follows what it finds): a version it knows. PITR_WAL_READER=waldump
 * always takes pg_waldump (a cross-check, and a way out should the native reader be wrong).
 */
async function nativeFormat(archive: string, first: string, segmentSize: number): Promise<WalFormat | null> {
  if (process.env.PITR_WAL_READER === 'waldump') return null;
  const format = await walFormatOf(join(archive, first));
  return format && format.segmentSize === segmentSize && format.pageSize >= 1024 ? format : null;
}

/** Runs `work` on every item, `width` at a time in item order, handing results to `take` in item order. */
async function inOrderPool<I, R>(items: readonly I[], width: number, work: (item: I) => Promise<R>, take: (result: R) => void): Promise<void> {
  const results: Promise<R>[] = [];
  let failed = false;
  // The next item starts as soon as any one ends, so every core keeps reading.
  const startNext = () => {
    if (failed || results.length >= items.length) return;
    const result = work(items[results.length]!);
    results.push(result);
    result.then(startNext, () => undefined);
  };
  for (let i = 0; i < width; i++) startNext();
  try {
    for (let i = 0; i < items.length; i++) take(await results[i]!);
  } catch (err) {
    failed = true;
    for (const r of results) r.catch(() => undefined);
    throw err;
  }
}

/** Reads one run into its outcome, natively when the WAL's format is known, else through pg_waldump. */
async function readRun(bin: PostgresBinaries, archive: string, run: WaldumpRun, relations: Map<string, string>, format: WalFormat | null, signal: AbortSignal): Promise<RunOutcome> {
  const open = new Map<string, Record<string, TupleCounts>>();
  const ends: RunOutcome['ends'] = [];
  const sink: TimelineSink = {
    change(xid, table, kind, n) {
      let counts = open.get(xid);
      if (!counts) open.set(xid, (counts = {}));
      const t = (counts[table] ??= { inserted: 0, updated: 0, deleted: 0 });
      t[kind] += n;
    },
    end(xid, aborted, subs, at, lsn) {
      const counts = open.get(xid) ?? {};
      for (const sub of subs) {
        addAll(counts, open.get(sub));
        open.delete(sub);
      }
      open.delete(xid);
      ends.push({ xid, aborted, subs, at, lsn, counts });
    },
  };
  const end = format ? await readWalRun(archive, run, format, relations, sink, signal) : await dumpRun(bin, archive, run, waldumpSink(relations, sink), signal);
  return { ends, open, ...end };
}

function add(into: Record<string, TupleCounts>, table: string, c: TupleCounts): void {
  const t = (into[table] ??= { inserted: 0, updated: 0, deleted: 0 });
  t.inserted += c.inserted;
  t.updated += c.updated;
  t.deleted += c.deleted;
}

/** Folds one transaction's counts (a subtransaction's, or a run's open part) into another's. */
function addAll(into: Record<string, TupleCounts>, from: Record<string, TupleCounts> | undefined): Record<string, TupleCounts> {
  for (const [table, c] of Object.entries(from ?? {})) add(into, table, c);
  return into;
}

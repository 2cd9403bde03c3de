import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { cp, mkdtemp, open, readdir, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { startCluster, switchAndArchiveWal, type TestCluster } from '../support/cluster.js';
import { findPostgresBinaries } from '../../src/system/postgres-binaries.js';
import { mapRelfilenodes, readTimeline, type Timeline, type TimelinePrefix } from '../../src/when/timeline.js';

/**
 * The WAL timeline read by several pg_waldump processes over runs of segments must equal one
 * pass: records that cross a run's end, a transaction open across runs (with a subtransaction
 * in a later run), an aborted one and a rolled-back savepoint, on continuous real WAL.
 */
describe('WAL timeline read in parallel runs', () => {
  let prod: TestCluster;
  let startWal: string;
  let spanning: string;
  let prepared: string;
  let relations: Map<string, string>;

  beforeAll(async () => {
    prod = await startCluster({ archive: true, settings: { track_commit_timestamp: 'on', wal_level: 'replica', full_page_writes: 'on', max_prepared_transactions: 4 } });
    const a = new pg.Client({ connectionString: prod.url });
    const b = new pg.Client({ connectionString: prod.url });
    await a.connect();
    await b.connect();
    try {
      await a.query(`create table items(id bigint primary key, note text not null); create table other(id bigint)`);
      await a.query(`create table parts(id int, note text) partition by range (id); create table parts_a partition of parts for values from (0) to (500); create table parts_b partition of parts for values from (500) to (1000)`);
      startWal = (await a.query(`select pg_walfile_name(pg_current_wal_lsn()) as w`)).rows[0].w;
      // Open across runs: its first change is in the first segments, its savepoint's change and commit at the end.
      await b.query(`begin; insert into items values (-1, 'long'), (-2, 'long')`);
      spanning = (await b.query(`select txid_current()::text as x`)).rows[0].x;
      for (let i = 0; i < 5; i++) {
        // About 14 MB of WAL per round, in many transactions: records cross every segment boundary.
        await a.query(`insert into items select g, repeat('x', 60) from generate_series(${i * 100_000 + 1}, ${(i + 1) * 100_000}) g`);
        await a.query(`update items set note = 'u' where id % 1000 = ${i}`);
        await a.query(`begin; delete from items where id % 997 = ${i}; rollback`);
        await a.query(`insert into other select g from generate_series(1, 1000) g`);
        // After a checkpoint the first change of each page carries its image: records cross pages.
        await a.query(`checkpoint`);
        await a.query(`update items set note = repeat('y', 60) where id % 50 = ${i}`);
        // COPY writes multi-insert records (Heap2), here into two partitions.
        await copyInto(a, 'parts', Array.from({ length: 1000 }, (_, j) => `${j}\tc${i}`).join('\n') + '\n');
        await a.query(`begin; savepoint a; delete from parts where id % 7 = ${i}; release savepoint a; savepoint b; update parts set note = 'r' where id % 11 = ${i}; rollback to savepoint b; commit`);
      }
      // Two-phase: the changes are the prepared transaction's, its end a record of the backend that finishes it.
      await a.query(`begin; insert into items values (-3, 'prepared'), (-4, 'prepared')`);
      prepared = (await a.query(`select txid_current()::text as x`)).rows[0].x;
      await a.query(`prepare transaction 'pitr_p1'`);
      await a.query(`commit prepared 'pitr_p1'`);
      await a.query(`begin; delete from items where id between 1 and 100; prepare transaction 'pitr_p2'`);
      await a.query(`rollback prepared 'pitr_p2'`);
      await b.query(`savepoint s1; delete from items where id = 5; rollback to s1; savepoint s2; update items set note = 'late' where id between 10 and 19; commit`);
      await a.query(`delete from items where id between 200001 and 200500`);
      relations = await mapRelfilenodes(a, ['items', 'parts']);
    } finally {
      await a.end();
      await b.end();
    }
    await switchAndArchiveWal(prod);
  }, 120_000);

  afterAll(async () => {
    await prod?.destroy();
  });

  it('several runs give exactly what one pass gives', async () => {
    const bin = await findPostgresBinaries(15);
    const until = Date.now() * 1000;
    const read = (parallel: number): Promise<Timeline> =>
      readTimeline({ bin, walArchive: prod.archiveDir, backup: { startWal, walSegmentSize: 16 * 1024 * 1024 } as never, relations, since: 0, until, parallel, segmentsPerRun: 1 });
    const one = await read(1);
    expect(Number.parseInt(one.segments.last.slice(16), 16) - Number.parseInt(startWal.slice(16), 16)).toBeGreaterThanOrEqual(4);
    const long = one.transactions.find((t) => t.xid === spanning);
    expect(long?.tables.items).toEqual({ inserted: 2, updated: 10, deleted: 0 });
    expect(one.transactions.filter((t) => t.tables.items?.deleted === 500)).toHaveLength(1);
    expect(one.transactions.some((t) => t.tables.items?.deleted && t.tables.items.deleted !== 500)).toBe(false);
    for (const parallel of [2, 3, 5]) expect(await read(parallel)).toEqual(one);
  }, 120_000);

  it("pitr's own WAL reader gives exactly what pg_waldump gives", async () => {
    const bin = await findPostgresBinaries(15);
    const until = Date.now() * 1000;
    const read = (parallel: number): Promise<Timeline> =>
      readTimeline({ bin, walArchive: prod.archiveDir, backup: { startWal, walSegmentSize: 16 * 1024 * 1024 } as never, relations, since: 0, until, parallel, segmentsPerRun: 1 });
    process.env.PITR_WAL_READER = 'waldump';
    let waldump: Timeline;
    try {
      waldump = await read(1);
    } finally {
      delete process.env.PITR_WAL_READER;
    }
    const native = await read(1);
    expect(native).toEqual(waldump);
    expect(await read(3)).toEqual(waldump);
    // The workload's shapes are all there: multi-inserts into partitions, a released savepoint's deletes, a rolled-back one's updates left out.
    const copies = native.transactions.filter((t) => t.tables.parts?.inserted === 1000);
    expect(copies).toHaveLength(5);
    expect(native.transactions.filter((t) => t.tables.parts?.deleted && !t.tables.parts.updated)).toHaveLength(5);
    expect(native.commits.length).toBeGreaterThan(30);
    // A committed prepared transaction is listed under its own xid; a rolled-back one is not.
    expect(native.transactions.find((t) => t.xid === prepared)?.tables).toEqual({ items: { inserted: 2, updated: 0, deleted: 0 } });
    expect(native.transactions.some((t) => t.tables.items?.deleted === 100)).toBe(false);
  }, 120_000);

  it('a page of zeros in the middle of the window is an error, not a shorter timeline', async () => {
    await withArchiveCopy(async (copy, segments) => {
      const fh = await open(join(copy, segments[Math.floor(segments.length / 2)]!), 'r+');
      await fh.write(Buffer.alloc(8192), 0, 8192, 5 * 8192);
      await fh.close();
      await expect(readCopy(copy, 2, Date.now() * 1000)).rejects.toThrow(/stops short: invalid magic number/);
    });
  }, 60_000);

  it('a newest segment still being copied ends the timeline without failing the run before it', async () => {
    await withArchiveCopy(async (copy, segments) => {
      await truncate(join(copy, segments.at(-1)!), 64 * 1024);
      const until = Date.now() * 1000;
      const one = await readCopy(copy, 1, until);
      expect(one.transactions.length).toBeGreaterThan(10);
      // One run per segment: the run before the last reads the short file only for a record that goes on into it.
      expect(await readCopy(copy, segments.length, until)).toEqual(one);
    });
  }, 60_000);

  /** A copy of the archive to damage, with its segments from the start of the window, removed afterwards. */
  async function withArchiveCopy(use: (copy: string, segments: string[]) => Promise<void>): Promise<void> {
    const copy = await mkdtemp(join(tmpdir(), 'pitr-test-wal-'));
    try {
      await cp(prod.archiveDir, copy, { recursive: true });
      await use(copy, (await readdir(copy)).filter((n) => /^[0-9A-F]{24}$/.test(n) && n >= startWal).sort());
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  }

  /** The timeline of an archive copy, read by `parallel` runs of one segment or more. */
  async function readCopy(copy: string, parallel: number, until: number): Promise<Timeline> {
    const bin = await findPostgresBinaries(15);
    return readTimeline({ bin, walArchive: copy, backup: { startWal, walSegmentSize: 16 * 1024 * 1024 } as never, relations, since: 0, until, parallel, segmentsPerRun: 1 });
  }

  it('read with prefixes (more runs than cores, merged in order): the same timeline, reported in WAL order as it is read', async () => {
    const bin = await findPostgresBinaries(15);
    const until = Date.now() * 1000;
    const base = { bin, walArchive: prod.archiveDir, backup: { startWal, walSegmentSize: 16 * 1024 * 1024 } as never, relations, since: 0, until, segmentsPerRun: 1 };
    const one = await readTimeline({ ...base, parallel: 1 });
    for (const parallel of [1, 2]) {
      const prefixes: TimelinePrefix[] = [];
      const streamed = await readTimeline({ ...base, parallel, prefixSegments: 1, onPrefix: (p) => prefixes.push({ through: p.through, added: [...p.added] }) });
      expect(streamed).toEqual(one);
      // One prefix per run (segments are 1 per run here), each known through a later commit, and
      // the pieces add up to the whole list in order: nothing reported before everything before it.
      expect(prefixes.length).toBeGreaterThanOrEqual(4);
      for (let i = 1; i < prefixes.length; i++) expect(prefixes[i]!.through).toBeGreaterThanOrEqual(prefixes[i - 1]!.through);
      expect(prefixes.flatMap((p) => p.added)).toEqual(one.transactions);
      for (const p of prefixes) for (const t of p.added) expect(Date.parse(t.committedAt) * 1000).toBeLessThanOrEqual(p.through + 1000);
    }
  }, 120_000);
});

async function copyInto(client: pg.Client, table: string, text: string): Promise<void> {
  await pipeline(Readable.from([text]), client.query(copyFrom(`copy ${table} from stdin`)));
}

import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { parseSegmentName, segmentFileName } from '../providers/local/wal-archive.js';
import type { Micros } from './bisect.js';
import type { WaldumpRun } from './waldump.js';

/**
 * The timeline's records read straight from archived WAL segment files, without pg_waldump.
 * pg_waldump decodes and prints every record as text, and the text is parsed again here: for an
 * hour of WAL that is most of `when --timeline`'s time. This reader walks the record headers of
 * PostgreSQL 13–17 WAL (the format of xlogrecord.h, stable across them but for the image flags)
 * and decodes only what the timeline needs: heap inserts, updates and deletes with the relation
 * of their first block, and commits and aborts with their time and subtransactions. Full-page
 * images and every other resource manager are skipped by length. Records are not CRC-checked;
 * each one's back link (xl_prev) and each page's address are, which is how the end of valid WAL
 * (zeroed or recycled space) is found.
 */

/** What the timeline takes from the WAL: both readers (this one and pg_waldump's) feed it. */
export interface TimelineSink {
  change(xid: string, table: string, kind: 'inserted' | 'updated' | 'deleted', n: number): void;
  end(xid: string, aborted: boolean, subs: readonly string[], at: Micros | null, lsnText: string): void;
}

/** How a run ended; `damaged` when it stopped short of WAL that follows (never a normal end). */
export interface RunEnd {
  code: number;
  stderr: string;
  damaged?: boolean;
}

/** Page magic of each supported server version (XLOG_PAGE_MAGIC). */
const PAGE_MAGIC = new Map([
  [0xd106, 13],
  [0xd10d, 14],
  [0xd110, 15],
  [0xd113, 16],
  [0xd116, 17],
]);

const SHORT_PAGE_HEADER = 24;
const LONG_PAGE_HEADER = 40;
const XLP_FIRST_IS_CONTRECORD = 0x1;
const XLP_LONG_HEADER = 0x2;
/** A record cut off by a crash was abandoned; this page starts afresh (back-patched to 13 and 14). */
const XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x8;
const RECORD_HEADER = 24;
/** XLogRecordMaxSize (16+; earlier versions cap at about 1 GB too): a longer length is garbage. */
const MAX_RECORD = 1020 * 1024 * 1024;
const RM_XLOG = 0;
const RM_XACT = 1;
const RM_HEAP2 = 9;
const RM_HEAP = 10;
const XLOG_SWITCH = 0x40;
const XACT_COMMIT = 0x00;
const XACT_ABORT = 0x20;
const XACT_COMMIT_PREPARED = 0x30;
const XACT_ABORT_PREPARED = 0x40;
const XACT_HAS_INFO = 0x80;
const XINFO_HAS_DBINFO = 0x1;
const XINFO_HAS_SUBXACTS = 0x2;
const XINFO_HAS_RELFILENODES = 0x4;
const XINFO_HAS_INVALS = 0x8;
const XINFO_HAS_TWOPHASE = 0x10;
/** 15+: items of 12 bytes (kind, database, object) up to 17. */
const XINFO_HAS_DROPPED_STATS = 0x100;
const BKPBLOCK_HAS_IMAGE = 0x10;
const BKPBLOCK_SAME_REL = 0x80;
const BKPIMAGE_HAS_HOLE = 0x1;
/** Microseconds from the Unix epoch to PostgreSQL's (2000-01-01). */
const PG_EPOCH = 946_684_800_000_000;
const TWO_32 = 0x1_0000_0000;

const HEAP_KIND: Record<number, 'inserted' | 'updated' | 'deleted'> = { 0x00: 'inserted', 0x10: 'deleted', 0x20: 'updated', 0x40: 'updated' };
const HEAP2_MULTI_INSERT = 0x50;
/** Shared by every commit without subtransactions (never written to). */
const NO_SUBS: readonly string[] = [];

const align8 = (n: number) => (n + 7) & ~7;
const u64 = (b: Buffer, o: number) => b.readUInt32LE(o) + b.readUInt32LE(o + 4) * TWO_32;

export function lsnText(lsn: number): string {
  return `${Math.floor(lsn / TWO_32).toString(16).toUpperCase()}/${(lsn % TWO_32).toString(16).toUpperCase().padStart(8, '0')}`;
}

export interface WalFormat {
  version: number;
  pageSize: number;
  segmentSize: number;
}

/** The format of a segment file from its first page, or null when this reader does not know it (pg_waldump then reads). */
export async function walFormatOf(path: string): Promise<WalFormat | null> {
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return null;
  try {
    const b = Buffer.alloc(LONG_PAGE_HEADER);
    const { bytesRead } = await fh.read(b, 0, LONG_PAGE_HEADER, 0);
    const version = PAGE_MAGIC.get(b.readUInt16LE(0));
    if (bytesRead < LONG_PAGE_HEADER || version === undefined || !(b.readUInt16LE(2) & XLP_LONG_HEADER)) return null;
    return { version, segmentSize: b.readUInt32LE(32), pageSize: b.readUInt32LE(36) };
  } finally {
    await fh.close();
  }
}

/** Whether a block image is compressed, by the flag bits of the version (they moved in 15). */
const compressedImage = (version: number, info: number) => (version >= 15 ? (info & 0x1c) !== 0 : (info & 0x02) !== 0);

/** A block image's header: 5 bytes, and the hole's length when the image has a hole and is compressed. */
const imageHeaderLength = (bimgInfo: number, version: number) => ((bimgInfo & BKPIMAGE_HAS_HOLE) && compressedImage(version, bimgInfo) ? 7 : 5);

/**
 * Reads one run of segments (run.from..run.to, one timeline) into the sink in WAL order, keeping
 * only records that start before run.before. Resolves like pg_waldump would: code 0 at the run's
 * end or at the end of valid WAL, non-zero with a message when a record is cut off mid-run.
 */
export async function readWalRun(
  archive: string,
  run: WaldumpRun,
  format: WalFormat,
  relations: Map<string, string>,
  sink: TimelineSink,
  signal?: AbortSignal,
): Promise<RunEnd> {
  const { pageSize, segmentSize, version } = format;
  const first = parseSegmentName(run.from, segmentSize)!;
  const last = parseSegmentName(run.to, segmentSize)!;
  // By relation number first: most heap records are of other relations, and no string is built for them.
  const byRelNode = new Map<number, { spc: number; db: number; table: string }[]>();
  for (const [node, table] of relations) {
    const [spc, db, rel] = node.split('/').map(Number) as [number, number, number];
    byRelNode.set(rel, [...(byRelNode.get(rel) ?? []), { spc, db, table }]);
  }
  let lastXid = -1;
  let lastXidText = '';
  const xidText = (xid: number) => (xid === lastXid ? lastXidText : ((lastXid = xid), (lastXidText = String(xid))));
  const magic = [...PAGE_MAGIC].find(([, v]) => v === version)![0];
  let assembly = Buffer.allocUnsafe(64 * 1024);
  // A record being assembled across pages: its start, bytes still to come, bytes so far.
  let partialLsn = -1;
  let partialNeed = 0;
  let partialHave = 0;
  let prevLsn = -1;
  let switched = false;

  const decode = (b: Buffer, o: number, lsn: number): string | null => {
    const tot = b.readUInt32LE(o);
    if (prevLsn >= 0 && u64(b, o + 8) !== prevLsn) return `record with incorrect prev-link at ${lsnText(lsn)}`;
    prevLsn = lsn;
    const info = b[o + 16]!;
    const rmid = b[o + 17]!;
    if (rmid === RM_HEAP || rmid === RM_HEAP2) {
      const op = info & 0x70;
      const kind = rmid === RM_HEAP ? HEAP_KIND[op] : op === HEAP2_MULTI_INSERT ? 'inserted' : undefined;
      if (!kind || b[o + RECORD_HEADER] !== 0) return null;
      const flags = b[o + RECORD_HEADER + 1]!;
      let p = o + RECORD_HEADER + 4;
      if (flags & BKPBLOCK_HAS_IMAGE) p += imageHeaderLength(b[p + 4]!, version);
      if (flags & BKPBLOCK_SAME_REL) return null;
      const candidates = byRelNode.get(b.readUInt32LE(p + 8));
      if (!candidates) return null;
      const spc = b.readUInt32LE(p);
      const db = b.readUInt32LE(p + 4);
      const table = candidates.find((c) => c.spc === spc && c.db === db)?.table;
      if (!table) return null;
      let n = 1;
      if (rmid === RM_HEAP2) {
        // xl_heap_multi_insert: uint8 flags, then uint16 ntuples.
        const main = mainData(b, o, tot, version);
        if (main < 0) return `invalid record at ${lsnText(lsn)}`;
        n = b.readUInt16LE(main + 2);
      }
      sink.change(xidText(b.readUInt32LE(o + 4)), table, kind, n);
    } else if (rmid === RM_XACT) {
      const op = info & 0x70;
      const commit = op === XACT_COMMIT || op === XACT_COMMIT_PREPARED;
      if (!commit && op !== XACT_ABORT && op !== XACT_ABORT_PREPARED) return null;
      const main = mainData(b, o, tot, version);
      if (main < 0) return `invalid record at ${lsnText(lsn)}`;
      // xl_xact_commit / xl_xact_abort: the time, then with HAS_INFO the xinfo word and what it announces, in this order.
      const at = commit ? b.readUInt32LE(main) + b.readInt32LE(main + 4) * TWO_32 + PG_EPOCH : null;
      let subs = NO_SUBS;
      // A prepared transaction ends in a record of the backend that finishes it: its own xid is in the record.
      let xid = b.readUInt32LE(o + 4);
      if (info & XACT_HAS_INFO) {
        const xinfo = b.readUInt32LE(main + 8);
        let q = main + 12;
        if (xinfo & XINFO_HAS_DBINFO) q += 8;
        if (xinfo & XINFO_HAS_SUBXACTS) {
          const count = b.readInt32LE(q);
          const listed: string[] = [];
          for (let i = 0; i < count; i++) listed.push(String(b.readUInt32LE(q + 4 + 4 * i)));
          subs = listed;
          q += 4 + 4 * count;
        }
        if (xinfo & XINFO_HAS_TWOPHASE) {
          if (xinfo & XINFO_HAS_RELFILENODES) q += 4 + 12 * b.readInt32LE(q);
          if (version >= 15 && xinfo & XINFO_HAS_DROPPED_STATS) q += 4 + 12 * b.readInt32LE(q);
          if (commit && xinfo & XINFO_HAS_INVALS) q += 4 + 16 * b.readInt32LE(q);
          xid = b.readUInt32LE(q);
        }
      }
      sink.end(xidText(xid), !commit, subs, at, lsnText(lsn));
    } else if (rmid === RM_XLOG && (info & 0xf0) === XLOG_SWITCH) switched = true;
    return null;
  };

  // A record's fields are read at offsets its own lengths give: garbage that points outside it is an invalid record.
  const decodeChecked = (b: Buffer, o: number, lsn: number): string | null => {
    try {
      return decode(b, o, lsn);
    } catch (err) {
      if (err instanceof RangeError) return `invalid record at ${lsnText(lsn)}`;
      throw err;
    }
  };
  const OK = { code: 0, stderr: '' };
  // A run with a successor reads into that run's first segment only to finish a record begun before it.
  const finishedAt = (seg: bigint) => run.before !== null && seg === last.number;

  // Two buffers: the next segment is read while this one is decoded.
  const buffers = [Buffer.allocUnsafe(segmentSize), Buffer.allocUnsafe(segmentSize)];
  const load = (seg: bigint, into: Buffer) => readSegment(join(archive, segmentFileName(first.timeline, seg, segmentSize)), into);
  let next: Promise<Loaded> | null = load(first.number, buffers[0]!);
  // Skipped the tail of a record begun before this run: zeros after it mean that record was a WAL switch.
  let skippedStartTail = false;
  try {
    for (let seg = first.number; seg <= last.number; seg++) {
      signal?.throwIfAborted();
      if (finishedAt(seg) && partialLsn < 0) return OK;
      const buf = buffers[Number(seg - first.number) % 2]!;
      const loaded = await next!;
      next = seg < last.number ? load(seg + 1n, buffers[Number(seg + 1n - first.number) % 2]!) : null;
      const stop = (why: string, partial = partialLsn) => ended(run, seg === last.number, why, partial);
      const segLsn = Number(seg) * segmentSize;
      switched = false;
      for (let page = 0; page < segmentSize && !switched; page += pageSize) {
        const pageLsn = segLsn + page;
        // A file still being copied into the archive: its first pages may be all a run needs.
        if (page + pageSize > loaded.have) return stop(loaded.error ?? `short file at ${lsnText(pageLsn)}`);
        if (buf.readUInt16LE(page) !== magic) return stop(`invalid magic number ${buf.readUInt16LE(page).toString(16)} at ${lsnText(pageLsn)}`);
        if (u64(buf, page + 8) !== pageLsn) return stop(`unexpected pageaddr at ${lsnText(pageLsn)}`);
        const pageInfo = buf.readUInt16LE(page + 2);
        const pageEnd = page + pageSize;
        let pos = page + (pageInfo & XLP_LONG_HEADER ? LONG_PAGE_HEADER : SHORT_PAGE_HEADER);
        if (pageInfo & XLP_FIRST_IS_CONTRECORD) {
          const rem = buf.readUInt32LE(page + 16);
          const take = Math.min(rem, pageEnd - pos);
          if (partialLsn >= 0) {
            if (rem !== partialNeed) return stop(`contrecord length ${rem} at ${lsnText(pageLsn)}, ${partialNeed} expected`);
            buf.copy(assembly, partialHave, pos, pos + take);
            partialHave += take;
            partialNeed -= take;
            if (partialNeed > 0) continue;
            const lsn = partialLsn;
            partialLsn = -1;
            const bad = decodeChecked(assembly, 0, lsn);
            if (bad) return stop(bad, -1);
            if (finishedAt(seg)) return OK;
            if (switched) break;
          } else if (prevLsn >= 0) return stop(`unexpected contrecord at ${lsnText(pageLsn)}`);
          else {
            // The tail of a record begun before this run.
            skippedStartTail = true;
            if (rem >= pageEnd - pos) continue;
          }
          pos = align8(pos + take);
        } else if (partialLsn >= 0) {
          if (!(pageInfo & XLP_FIRST_IS_OVERWRITE_CONTRECORD)) return stop(`there is no contrecord flag at ${lsnText(pageLsn)}`);
          partialLsn = -1;
        }

        while (pos < pageEnd && !switched) {
          const lsn = segLsn + pos;
          if (run.before !== null && lsn >= run.before) return OK;
          const tot = buf.readUInt32LE(pos);
          if (tot === 0 && skippedStartTail && prevLsn < 0) {
            switched = true;
            break;
          }
          if (tot < RECORD_HEADER || tot > MAX_RECORD) return stop(`invalid record length at ${lsnText(lsn)}: ${tot}`, -1);
          if (pos + tot <= pageEnd) {
            const bad = decodeChecked(buf, pos, lsn);
            if (bad) return stop(bad, -1);
            pos = align8(pos + tot);
            continue;
          }
          // Before buffering a record that goes on: its back link, when its header is all on this page.
          if (prevLsn >= 0 && pos + RECORD_HEADER <= pageEnd && u64(buf, pos + 8) !== prevLsn) return stop(`record with incorrect prev-link at ${lsnText(lsn)}`, -1);
          if (assembly.length < tot) assembly = Buffer.allocUnsafe(Math.max(tot, assembly.length * 2));
          buf.copy(assembly, 0, pos, pageEnd);
          partialLsn = lsn;
          partialHave = pageEnd - pos;
          partialNeed = tot - partialHave;
          pos = pageEnd;
        }
      }
    }
  } finally {
    // An early return leaves the next segment's read running: it must not fail unobserved.
    await next?.catch(() => undefined);
  }
  return partialLsn < 0 ? OK : ended(run, true, `a record goes on past ${run.to}`, partialLsn);
}

interface Loaded {
  /** Bytes read from the start of the file. */
  have: number;
  error: string | null;
}

/** Reads a whole segment file into `into`, or as much of it as there is. */
async function readSegment(path: string, into: Buffer): Promise<Loaded> {
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return { have: 0, error: `could not find file "${path}"` };
  try {
    // Until the buffer is full or the file ends: network file systems return short reads.
    let have = 0;
    while (have < into.length) {
      const { bytesRead } = await fh.read(into, have, into.length - have, have);
      if (bytesRead === 0) break;
      have += bytesRead;
    }
    return { have, error: have < into.length ? `could not read file "${path}": read ${have} of ${into.length}` : null };
  } finally {
    await fh.close();
  }
}

/**
 * Where the reading stopped: fine in the last segment of the last run (archived WAL ends in an
 * invalid record or at the end of its newest segment), a failure anywhere else: a segment after
 * it holds more WAL, so this is damage, and the timeline would silently miss what follows.
 */
function ended(run: WaldumpRun, inLastSegment: boolean, why: string, partialLsn: number): RunEnd {
  if (run.before === null && inLastSegment) return { code: 0, stderr: '' };
  const at = partialLsn >= 0 ? ` (a record at ${lsnText(partialLsn)} is cut off)` : '';
  return { code: 1, stderr: `WAL of ${run.from}..${run.to} stops short: ${why}${at}`, damaged: true };
}

/** The offset of a record's main data (at its end), walking its block headers; -1 if malformed. */
function mainData(b: Buffer, o: number, tot: number, version: number): number {
  const end = o + tot;
  let p = o + RECORD_HEADER;
  while (p < end) {
    const id = b[p]!;
    if (id === 255) return end - b[p + 1]!;
    if (id === 254) return end - b.readUInt32LE(p + 1);
    if (id === 253) p += 3; // replication origin
    else if (id === 252) p += 5; // top-level xid
    else if (id <= 32) {
      const flags = b[p + 1]!;
      p += 4;
      if (flags & BKPBLOCK_HAS_IMAGE) p += imageHeaderLength(b[p + 4]!, version);
      if (!(flags & BKPBLOCK_SAME_REL)) p += 12;
      p += 4;
    } else return -1;
  }
  return end;
}

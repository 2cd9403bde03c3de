import { spawn } from 'node:child_process';
import type { PostgresBinaries } from '../system/postgres-binaries.js';
import { parseSegmentName } from '../providers/local/wal-archive.js';
import { parsePostgresMicros } from './instants.js';
import type { TimelineSink } from './wal-reader.js';

/** One pg_waldump record line, cut into the fields the timeline reads. */
export interface WalRecordLine {
  rmgr: string;
  xid: string;
  /** As a number: exact below 2^53. */
  lsn: number;
  lsnText: string;
  /** The first word of the description: INSERT, DELETE, COMMIT, … */
  op: string;
  /** The description after that word. */
  rest: string;
}

/**
 * Cuts `rmgr: Heap  len (rec/tot): 59/ 8183, tx: 3, lsn: 0/010B05A0, prev 0/010B0580, desc: …`
 * with indexOf rather than a regular expression: an hour of WAL is millions of lines, and this
 * keeps the parse faster than pg_waldump writes them. Null for anything else.
 */
export function parseWaldumpLine(line: string): WalRecordLine | null {
  if (!line.startsWith('rmgr: ')) return null;
  const rmgrEnd = line.indexOf(' ', 6);
  const tx = line.indexOf('tx:', rmgrEnd);
  const lsnAt = line.indexOf(', lsn: ', tx);
  const desc = line.indexOf('desc: ', lsnAt);
  if (rmgrEnd < 0 || tx < 0 || lsnAt < 0 || desc < 0) return null;
  const xid = line.slice(tx + 3, lsnAt).trim();
  const lsnText = line.slice(lsnAt + 7, line.indexOf(',', lsnAt + 7));
  const slash = lsnText.indexOf('/');
  // A double holds every LSN below 2^53 exactly (8 PB of WAL), and is far cheaper than a bigint.
  const lsn = parseInt(lsnText.slice(0, slash), 16) * 0x1_0000_0000 + parseInt(lsnText.slice(slash + 1), 16);
  if (slash < 0 || !(lsn >= 0) || xid === '') return null;
  const opEnd = line.indexOf(' ', desc + 6);
  const op = opEnd < 0 ? line.slice(desc + 6) : line.slice(desc + 6, opEnd);
  return { rmgr: line.slice(6, rmgrEnd), xid, lsn, lsnText, op, rest: opEnd < 0 ? '' : line.slice(opEnd) };
}

/** A run of segments one pg_waldump reads; records at or after `before` belong to the next run. */
export interface WaldumpRun {
  from: string;
  to: string;
  before: number | null;
}

/** The segment files of first..last in an archive listing, and whether they are one timeline without a gap. */
export function segmentsInWindow(archived: readonly string[], first: string, last: string, segmentSize: number): { segments: string[]; contiguous: boolean } {
  const segments = archived.filter((n) => n >= first && n <= last && parseSegmentName(n, segmentSize));
  const numbers = segments.map((n) => parseSegmentName(n, segmentSize)!);
  return { segments, contiguous: numbers.every((s, i) => i === 0 || (s.timeline === numbers[0]!.timeline && s.number === numbers[i - 1]!.number + 1n)) };
}

/**
 * Splits first..last into `wanted` runs of whole segments (fewer when short). A record that starts in one run
 * and ends in the next is read by the first (it reads on into the next run's first segment and
 * keeps only records that start before it); the next run's pg_waldump skips the continuation.
 * One run when the segments are not one contiguous timeline: pg_waldump then reads as it can.
 */
export function planWaldumpRuns(archived: readonly string[], first: string, last: string, segmentSize: number, wanted: number, segmentsPerRun = 4): WaldumpRun[] {
  const { segments, contiguous } = segmentsInWindow(archived, first, last, segmentSize);
  const numbers = segments.map((n) => parseSegmentName(n, segmentSize)!);
  // A run's overlap is one segment: runs shorter than a few segments would read mostly overlap.
  const runs = Math.max(1, Math.min(wanted, Math.floor(segments.length / segmentsPerRun)));
  if (!contiguous || runs === 1) return [{ from: first, to: last, before: null }];
  const size = Math.ceil(segments.length / runs);
  const out: WaldumpRun[] = [];
  for (let start = 0; start < segments.length; start += size) {
    const next = start + size < segments.length ? start + size : null;
    out.push({
      from: segments[start]!,
      to: next === null ? segments.at(-1)! : segments[next]!,
      before: next === null ? null : Number(numbers[next]!.number * BigInt(segmentSize)),
    });
  }
  return out;
}

/**
 * Streams one run's records (Heap, Heap2 and Transaction) to `onRecord` in WAL order. Resolves
 * with pg_waldump's exit code and the start of its stderr; pg_waldump always ends with an error
 * at the end of what it can read, so the caller judges that.
 */
export async function dumpRun(
  bin: PostgresBinaries,
  archive: string,
  run: WaldumpRun,
  onRecord: (r: WalRecordLine) => void,
  /** Aborted when another run failed: this one's pg_waldump is stopped rather than left reading. */
  signal?: AbortSignal,
): Promise<{ code: number; stderr: string }> {
  const child = spawn(bin.path('pg_waldump'), ['-p', archive, '-r', 'Heap', '-r', 'Heap2', '-r', 'Transaction', run.from, run.to], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = () => child.kill('SIGTERM');
  signal?.addEventListener('abort', stop, { once: true });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d.slice(0, 4000 - stderr.length)));
  let partial = '';
  let past = false;
  const take = (line: string) => {
    if (past) return;
    const r = parseWaldumpLine(line);
    if (!r) return;
    if (run.before !== null && r.lsn >= run.before) {
      // The rest belongs to the next run: stop reading the overlap.
      past = true;
      child.kill('SIGTERM');
      return;
    }
    onRecord(r);
  };
  // latin1: pg_waldump's lines are ASCII, and a byte-wise decode is the cheapest.
  child.stdout.setEncoding('latin1').on('data', (chunk: string) => {
    const text = partial + chunk;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      take(text.slice(start, nl));
      start = nl + 1;
    }
    partial = text.slice(start);
  });
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => {
      signal?.removeEventListener('abort', stop);
      if (partial) take(partial);
      resolve(past ? 0 : (c ?? 1));
    });
  });
  return { code, stderr };
}

const COMMIT_TIME = /^\s*(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? (?:[A-Z]+|[+-]\d\d(?::?\d\d)?))/;

/** pg_waldump's record lines, turned into what the timeline takes (heap changes of the mapped relations, commits and aborts). */
export function waldumpSink(relations: Map<string, string>, sink: TimelineSink): (r: WalRecordLine) => void {
  return ({ rmgr, xid, lsnText, op, rest }) => {
    if (rmgr === 'Transaction') {
      const prepared = op === 'COMMIT_PREPARED' || op === 'ABORT_PREPARED';
      if (op !== 'COMMIT' && op !== 'ABORT' && !prepared) return;
      // A prepared transaction's own xid comes first: "COMMIT_PREPARED 745: 2026-… UTC; …".
      const own = prepared ? /^\s*(\d+): /.exec(rest) : null;
      if (prepared && !own) return;
      const after = own ? rest.slice(own[0].length - 1) : rest;
      const subs = /subxacts: ([\d ]+)/.exec(after)?.[1]?.trim().split(/\s+/) ?? [];
      const commit = op === 'COMMIT' || op === 'COMMIT_PREPARED';
      const time = commit ? COMMIT_TIME.exec(after)?.[1] : undefined;
      sink.end(own ? own[1]! : xid, !commit, subs, time ? parsePostgresMicros(time) : null, lsnText);
      return;
    }
    const relAt = rest.indexOf('blkref #0: rel ');
    if (relAt < 0) return;
    const relEnd = rest.indexOf(' ', relAt + 15);
    const table = relations.get(relEnd < 0 ? rest.slice(relAt + 15) : rest.slice(relAt + 15, relEnd));
    if (!table) return;
    const kind = op.endsWith('+INIT') ? op.slice(0, -5) : op;
    if (kind === 'INSERT') sink.change(xid, table, 'inserted', 1);
    else if (kind === 'MULTI_INSERT') {
      // "%d tuples flags …" up to 15, "ntuples: %d, …" from 16.
      const m = /(\d+) tuples|ntuples:? (\d+)/.exec(rest);
      sink.change(xid, table, 'inserted', Number(m?.[1] ?? m?.[2] ?? 1));
    }
    else if (kind === 'UPDATE' || kind === 'HOT_UPDATE') sink.change(xid, table, 'updated', 1);
    else if (kind === 'DELETE') sink.change(xid, table, 'deleted', 1);
  };
}

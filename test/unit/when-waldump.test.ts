import { describe, expect, it } from 'vitest';
import { parseWaldumpLine, planWaldumpRuns, waldumpSink } from '../../src/when/waldump.js';

const SEG = 16 * 1024 * 1024;
const name = (n: number, tli = 1) => `${tli.toString(16).padStart(8, '0').toUpperCase()}00000000${n.toString(16).padStart(8, '0').toUpperCase()}`;

describe('pg_waldump lines', () => {
  it('cuts a heap record: rmgr, xid, LSN (as text and number), operation and the rest', () => {
    const r = parseWaldumpLine('rmgr: Heap        len (rec/tot):     59/  8183, tx:        812, lsn: 1/010B05A0, prev 1/010B0580, desc: DELETE off 34 flags 0x00 KEYS_UPDATED , blkref #0: rel 1663/5/16384 blk 0 FPW');
    expect(r).toEqual({ rmgr: 'Heap', xid: '812', lsnText: '1/010B05A0', lsn: 0x1_0000_0000 + 0x010b05a0, op: 'DELETE', rest: ' off 34 flags 0x00 KEYS_UPDATED , blkref #0: rel 1663/5/16384 blk 0 FPW' });
  });

  it('cuts a commit with its time and subtransactions, and an operation with nothing after it', () => {
    const c = parseWaldumpLine('rmgr: Transaction len (rec/tot):     46/    46, tx:     100231, lsn: 0/21FFFF60, prev 0/21FFFF20, desc: COMMIT 2026-12-02 21:45:02.685774 UTC; subxacts: 100232 100233');
    expect(c).toMatchObject({ rmgr: 'Transaction', xid: '100231', op: 'COMMIT', rest: ' 2026-12-02 21:45:02.685774 UTC; subxacts: 100232 100233' });
    expect(parseWaldumpLine('rmgr: Heap2       len (rec/tot):     50/    50, tx:          0, lsn: 0/01000028, prev 0/00000000, desc: VISIBLE')).toMatchObject({ op: 'VISIBLE', rest: '' });
  });

  it('anything else is not a record', () => {
    expect(parseWaldumpLine('pg_waldump: error: error in WAL record at 0/21FFFF60: invalid record length')).toBeNull();
    expect(parseWaldumpLine('rmgr: Heap len garbage')).toBeNull();
    expect(parseWaldumpLine('')).toBeNull();
  });
});

describe('pg_waldump lines into the timeline', () => {
  it('counts the tuples of a multi-insert as pg_waldump 15 and 16 print them', () => {
    const changes: [string, string, string, number][] = [];
    const sink = waldumpSink(new Map([['1663/5/16384', 'items']]), { change: (...c) => changes.push(c), end: () => undefined });
    const line = (desc: string) => parseWaldumpLine(`rmgr: Heap2       len (rec/tot):   2000/  2000, tx:        900, lsn: 0/01000028, prev 0/01000000, desc: ${desc}`)!;
    sink(line('MULTI_INSERT+INIT 166 tuples flags 0x02, blkref #0: rel 1663/5/16384 blk 7'));
    sink(line('MULTI_INSERT ntuples: 12, flags: 0x00, offsets: [1, 2], blkref #0: rel 1663/5/16384 blk 8'));
    sink(line('MULTI_INSERT 3 tuples flags 0x00, blkref #0: rel 1663/5/99999 blk 8'));
    expect(changes).toEqual([
      ['900', 'items', 'inserted', 166],
      ['900', 'items', 'inserted', 12],
    ]);
  });
});

describe('runs of segments read in parallel', () => {
  const archived = [...Array.from({ length: 12 }, (_, i) => name(i + 1)), `${name(3)}.00000028.backup`];

  it('splits first..last into runs that overlap by one segment and keep records before the next run', () => {
    const runs = planWaldumpRuns(archived, name(1), name(12), SEG, 3);
    expect(runs).toEqual([
      { from: name(1), to: name(5), before: 5 * SEG },
      { from: name(5), to: name(9), before: 9 * SEG },
      { from: name(9), to: name(12), before: null },
    ]);
  });

  it('one run for few segments, one core, a gap, or another timeline', () => {
    const whole = (first: string, last: string) => [{ from: first, to: last, before: null }];
    expect(planWaldumpRuns(archived, name(1), name(6), SEG, 4)).toEqual(whole(name(1), name(6)));
    expect(planWaldumpRuns(archived, name(1), name(8), SEG, 4)).toEqual([{ from: name(1), to: name(5), before: 5 * SEG }, { from: name(5), to: name(8), before: null }]);
    expect(planWaldumpRuns(archived, name(1), name(7), SEG, 1)).toEqual(whole(name(1), name(7)));
    expect(planWaldumpRuns(archived.filter((n) => n !== name(6)), name(1), name(12), SEG, 3)).toEqual(whole(name(1), name(12)));
    expect(planWaldumpRuns([...archived, name(13, 2)], name(1), name(13, 2), SEG, 3)).toEqual(whole(name(1), name(13, 2)));
    expect(planWaldumpRuns(archived, name(2), name(4), SEG, 2, 1)).toEqual([{ from: name(2), to: name(4), before: 4 * SEG }, { from: name(4), to: name(4), before: null }]);
  });
});

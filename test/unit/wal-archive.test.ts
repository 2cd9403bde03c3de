import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { firstMissingSegment, listArchive, parseSegmentName, segmentFileName, segmentOfLsn } from '../../src/providers/local/wal-archive.js';

const MB16 = 16 * 1024 * 1024;
const MB64 = 64 * 1024 * 1024;

describe('WAL segment names', () => {
  it('reads timeline and segment number as Postgres names them (16 MB segments: 256 per xlog id)', () => {
    expect(parseSegmentName('000000010000000000000001', MB16)).toEqual({ timeline: 1, number: 1n });
    // xlog id 2, segment 0x10 of it: 2 * 256 + 16.
    expect(parseSegmentName('0000000A0000000200000010', MB16)).toEqual({ timeline: 10, number: 2n * 256n + 16n });
  });

  it('uses the segment size: 64 MB segments are 64 per xlog id', () => {
    expect(parseSegmentName('000000010000000200000003', MB64)).toEqual({ timeline: 1, number: 2n * 64n + 3n });
  });

  it('rejects what is not a segment: history files, partial and backup-label files, lower case, wrong length', () => {
    for (const name of ['00000002.history', '000000010000000000000001.partial', '000000010000000000000002.00000028.backup', '00000001000000000000000a', '00000001000000000000001', '']) {
      expect(parseSegmentName(name, MB16)).toBeUndefined();
    }
  });

  it('segmentFileName is the inverse of parseSegmentName', () => {
    for (const [timeline, number] of [[1, 0n], [1, 255n], [1, 256n], [3, 123456n], [0xffffffff, 0xffn * 256n + 0xffn]] as const) {
      const name = segmentFileName(timeline, number, MB16);
      expect(name).toMatch(/^[0-9A-F]{24}$/);
      expect(parseSegmentName(name, MB16)).toEqual({ timeline, number });
    }
    expect(segmentFileName(1, 256n, MB16)).toBe('000000010000000100000000');
  });

  it('places an LSN in its segment', () => {
    expect(segmentOfLsn('0/0', MB16)).toBe(0n);
    expect(segmentOfLsn('0/FFFFFF', MB16)).toBe(0n);
    expect(segmentOfLsn('0/1000000', MB16)).toBe(1n);
    // 1/0 is 4 GiB: segment 256 of 16 MB, 64 of 64 MB.
    expect(segmentOfLsn('1/0', MB16)).toBe(256n);
    expect(segmentOfLsn('1/0', MB64)).toBe(64n);
  });
});

describe('firstMissingSegment', () => {
  const names = (timeline: number, ...numbers: bigint[]) => numbers.map((n) => segmentFileName(timeline, n, MB16));

  it('is undefined when every segment of the run is there', () => {
    expect(firstMissingSegment(names(1, 3n, 4n, 5n), 3n, 5n, MB16)).toBeUndefined();
  });

  it('names the first gap, not a later one', () => {
    expect(firstMissingSegment(names(1, 3n, 5n, 7n), 3n, 7n, MB16)).toBe(4n);
  });

  it('counts both ends: a missing first or last segment is a gap', () => {
    expect(firstMissingSegment(names(1, 4n, 5n), 3n, 5n, MB16)).toBe(3n);
    expect(firstMissingSegment(names(1, 3n, 4n), 3n, 5n, MB16)).toBe(5n);
  });

  it('accepts a segment from any timeline (a promotion continues the numbering)', () => {
    expect(firstMissingSegment([...names(1, 3n, 4n), ...names(2, 5n)], 3n, 5n, MB16)).toBeUndefined();
  });

  it('ignores files that are not segments', () => {
    expect(firstMissingSegment(['00000002.history', ...names(1, 3n)], 3n, 4n, MB16)).toBe(4n);
  });
});

describe('listArchive', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('lists segments sorted, newest last, with the time the newest arrived', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pitr-wal-'));
    dirs.push(dir);
    for (const n of ['000000010000000000000003', '000000010000000000000001', '00000002.history', '000000010000000000000002.partial']) await writeFile(join(dir, n), '');
    const when = new Date('2026-01-02T03:04:05.000Z');
    await utimes(join(dir, '000000010000000000000003'), when, when);
    expect(await listArchive(dir)).toEqual({
      segments: ['000000010000000000000001', '000000010000000000000003'],
      newestName: '000000010000000000000003',
      newestArchivedAt: '2026-01-02T03:04:05.000Z',
    });
  });

  it('answers an empty listing for an empty or missing archive instead of failing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pitr-wal-'));
    dirs.push(dir);
    const empty = { segments: [], newestName: null, newestArchivedAt: null };
    expect(await listArchive(dir)).toEqual(empty);
    expect(await listArchive(join(dir, 'does-not-exist'))).toEqual(empty);
  });
});

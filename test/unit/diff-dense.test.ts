import { describe, expect, it } from 'vitest';
import { everyRange } from '../../src/diff/dense.js';
import type { Segmentation } from '../../src/diff/segments.js';

/** 1,000 ranges of 100 keys from 0, as segments.ts makes them for an integer key. */
const seg: Segmentation = {
  count: 1000,
  bucketSql: '',
  range: (b) => ({ lo: String(b * 100), hi: String(b * 100 + 99), hiInclusive: true }),
  estimatedRows: 100_000,
  pages: { branch: 500, production: 500 },
  integerRanges: true,
};

describe('expected rows per range when the first pass is skipped', () => {
  it('an even share (both sides) where the sample is even, however patchy at range level', () => {
    // Pages of 120 consecutive keys, every 30th page sampled.
    const keys = Array.from({ length: 28 }, (_, p) => Array.from({ length: 120 }, (_, i) => String(p * 3600 + i))).flat();
    const ranges = everyRange(seg, { keys, rows: keys.length });
    expect(ranges).toHaveLength(1000);
    expect(new Set(ranges.map((r) => r.rows))).toEqual(new Set([200]));
    expect(ranges[999]!.range).toEqual({ lo: '99900', hi: '99999', hiInclusive: true });
  });

  it('a crowded stretch of keys gets its sampled share, the rest at least an even share', () => {
    // Nine tenths of the sample in the first 16 ranges (one group of 64): a skewed key.
    const keys = [...Array.from({ length: 900 }, (_, i) => String(i)), ...Array.from({ length: 100 }, (_, i) => String(2000 + i * 980))];
    const ranges = everyRange(seg, { keys, rows: keys.length });
    const crowded = ranges.slice(0, 16).reduce((n, r) => n + r.rows, 0);
    expect(crowded).toBeGreaterThanOrEqual(0.9 * 200_000);
    expect(ranges.slice(16).every((r) => r.rows >= 200)).toBe(true);
  });
});

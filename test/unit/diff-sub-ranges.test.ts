import { describe, expect, it } from 'vitest';
import { integerSubRanges } from '../../src/diff/hash-stream.js';
import { mulberry32 } from '../support/random.js';

/** subOf in SQL for integer ranges: (key - lo) / ((hi - lo) / 8 + 1), integer division. */
const subOf = (key: bigint, lo: bigint, hi: bigint) => Number((key - lo) / ((hi - lo) / 8n + 1n));

describe('eighths of an integer key range', () => {
  it('each key of the range is in exactly the sub-range of its eighth, for any mask (inclusive and exclusive hi, negatives, tiny ranges)', () => {
    const r = mulberry32(7);
    for (let trial = 0; trial < 300; trial++) {
      const lo = BigInt(Math.floor(r() * 2000) - 1000);
      const hi = lo + BigInt(Math.floor(r() * (trial % 3 === 0 ? 10 : 500)));
      const hiInclusive = r() < 0.7;
      const mask = Math.floor(r() * 256);
      const subs = integerSubRanges({ lo: lo.toString(), hi: hi.toString(), hiInclusive }, mask).map((s) => [BigInt(s.lo), BigInt(s.hi)] as const);
      const last = hiInclusive ? hi : hi - 1n;
      for (let k = lo - 2n; k <= hi + 2n; k++) {
        const inRange = k >= lo && k <= last;
        const wanted = inRange && ((mask >> subOf(k, lo, hi)) & 1) === 1;
        const hits = subs.filter(([a, b]) => k >= a && k <= b).length;
        expect(hits, `key ${k} of [${lo}, ${hi}${hiInclusive ? ']' : ')'} mask ${mask}`).toBe(wanted ? 1 : 0);
      }
      // In key order, so a segment's rows still arrive sorted.
      for (let i = 1; i < subs.length; i++) expect(subs[i]![0] > subs[i - 1]![1]).toBe(true);
    }
  });

  it('handles keys near the ends of bigint', () => {
    const max = 2n ** 63n - 1n;
    const subs = integerSubRanges({ lo: (max - 100n).toString(), hi: max.toString(), hiInclusive: true }, 0b10000001);
    expect(subs).toEqual([
      { lo: (max - 100n).toString(), hi: (max - 88n).toString() },
      { lo: (max - 9n).toString(), hi: max.toString() },
    ]);
  });
});

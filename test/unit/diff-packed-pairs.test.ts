import { describe, expect, it } from 'vitest';
import { differingPairs } from '../../src/diff/hash-stream.js';
import { mulberry32 } from '../support/random.js';

/** The pairs each side holds that the other does not: a plain set difference. */
function naive(b: string[], p: string[]) {
  const [bs, ps] = [new Set(b), new Set(p)];
  return { b: b.filter((x) => !ps.has(x)).sort(), p: p.filter((x) => !bs.has(x)).sort() };
}

describe('differing key:hash pairs of two packed texts', () => {
  it('equals a set difference, whatever the texts share at their ends or in between', () => {
    const r = mulberry32(11);
    for (let trial = 0; trial < 3000; trial++) {
      // Keys of one range on both sides; short and long keys and hashes, negatives, prefixes of one another.
      const keys = Array.from({ length: Math.floor(r() * 12) }, (_, i) => String((trial % 3 === 0 ? -1 : 1) * (i * (1 + Math.floor(r() * 3)) + (trial % 5 === 0 ? 9 : 100))));
      const hash = () => String(Math.floor((r() - 0.5) * (r() < 0.3 ? 20 : 2e18)));
      const b = [...new Set(keys)].map((k) => `${k}:${hash()}`);
      const p = b.flatMap((x) => {
        const k = x.slice(0, x.indexOf(':'));
        const c = r();
        if (c < 0.15) return []; // only in the branch
        if (c < 0.3) return [`${k}:${hash()}`]; // changed
        if (c < 0.35) return [`${k}:${x.slice(x.indexOf(':') + 1)}1`]; // changed: hash text extended
        if (c < 0.4) return [x, `${k}0:${hash()}`]; // a key only in production next to it
        return [x];
      });
      // Usually the same order on both sides; sometimes not (order only matters for speed).
      if (r() < 0.2) p.reverse();
      const pairs = { b: [] as string[], p: [] as string[] };
      differingPairs(b.join(' '), p.join(' '), pairs);
      expect({ b: pairs.b.sort(), p: pairs.p.sort() }, `${b.join(' ')} | ${p.join(' ')}`).toEqual(naive(b, p));
    }
  });

  it('handles empty sides and texts that are a prefix of the other', () => {
    const run = (b: string, p: string) => {
      const pairs = { b: [] as string[], p: [] as string[] };
      differingPairs(b, p, pairs);
      return pairs;
    };
    expect(run('', '5:1')).toEqual({ b: [], p: ['5:1'] });
    expect(run('5:1', '')).toEqual({ b: ['5:1'], p: [] });
    expect(run('1:2 3:4', '1:2 3:4')).toEqual({ b: [], p: [] });
    expect(run('1:2 3:4', '1:2 3:45')).toEqual({ b: ['3:4'], p: ['3:45'] });
    expect(run('1:2 3:4', '1:2 3:4 5:6')).toEqual({ b: [], p: ['5:6'] });
    expect(run('3:4 5:6', '13:4 5:6')).toEqual({ b: ['3:4'], p: ['13:4'] });
    expect(run('1:2 22:3', '1:2 2:3')).toEqual({ b: ['22:3'], p: ['2:3'] });
  });
});

import { describe, expect, it } from 'vitest';
import { mergeSegment, type SideRows } from '../../src/diff/hash-stream.js';
import { compareIntegerTexts, mergePackedSegment } from '../../src/diff/packed-pairs.js';
import type { Plan } from '../../src/diff/plan.js';
import type { KeyDifference } from '../../src/diff/types.js';
import { mulberry32 } from '../support/random.js';

/** The streamed merge over every row of the segment: what the packed walk must reproduce exactly. */
function streamed(b: string[], p: string[]): KeyDifference[] {
  const side = (pairs: string[]): SideRows => {
    const split = pairs.map((x) => [x.slice(0, x.indexOf(':')), x.slice(x.indexOf(':') + 1)] as const);
    return { ids: split.map(([k]) => k), values: new Map(split), keys: new Map(split.map(([k]) => [k, [k]])) };
  };
  const out: KeyDifference[] = [];
  mergeSegment({ mode: 'key' } as Plan, side(b), side(p), out);
  return out;
}

const packed = (subs: string[][]) => subs.map((s) => (s.length ? s.join(' ') : undefined));

describe('merging packed key:hash texts', () => {
  it('gives the streamed merge of all rows, in the same order, whatever the texts share', () => {
    const r = mulberry32(11);
    for (let trial = 0; trial < 3000; trial++) {
      // Ascending keys over 1–3 sub-ranges: short and long, negative, one a prefix of another.
      const start = trial % 3 === 0 ? -40 - Math.floor(r() * 1e6) : trial % 5 === 0 ? 9 : 100;
      let key = start;
      const parts = 1 + Math.floor(r() * 3);
      const [bSubs, pSubs] = [Array.from({ length: parts }, () => [] as string[]), Array.from({ length: parts }, () => [] as string[])];
      const hash = () => String(Math.floor((r() - 0.5) * (r() < 0.3 ? 20 : 2e18)));
      const dense = r() < 0.5;
      for (let s = 0; s < parts; s++) {
        for (let n = Math.floor(r() * 14); n > 0; n--) {
          key += 1 + Math.floor(r() * (r() < 0.1 ? 1e4 : 3));
          const k = String(key);
          const h = hash();
          const c = r();
          const odds = dense ? 0.5 : 0.15;
          if (c < odds / 3) bSubs[s]!.push(`${k}:${h}`); // only in the branch
          else if (c < (2 * odds) / 3) pSubs[s]!.push(`${k}:${h}`); // only in production
          else if (c < odds) {
            bSubs[s]!.push(`${k}:${h}`);
            pSubs[s]!.push(r() < 0.5 ? `${k}:${h}1` : `${k}:${hash()}`); // changed, sometimes a longer text
          } else {
            bSubs[s]!.push(`${k}:${h}`);
            pSubs[s]!.push(`${k}:${h}`);
          }
        }
      }
      const got: KeyDifference[] = [];
      mergePackedSegment(packed(bSubs), packed(pSubs), got);
      expect(got, `${bSubs.map((s) => s.join(' ')).join(' | ')} ‖ ${pSubs.map((s) => s.join(' ')).join(' | ')}`).toEqual(streamed(bSubs.flat(), pSubs.flat()));
    }
  });

  it('handles empty sides, texts that are a prefix of the other, and empty sub-ranges', () => {
    const run = (b: (string | undefined)[], p: (string | undefined)[]) => {
      const out: KeyDifference[] = [];
      mergePackedSegment(b, p, out);
      return out.map((d) => `${d.kind} ${d.key![0]}`);
    };
    expect(run([undefined], ['5:1'])).toEqual(['extra 5']);
    expect(run(['5:1'], [])).toEqual(['missing 5']);
    expect(run(['1:2 3:4'], ['1:2 3:4'])).toEqual([]);
    expect(run(['1:2 3:4'], ['1:2 3:45'])).toEqual(['changed 3']);
    expect(run(['1:2 3:4'], ['1:2 3:4 5:6'])).toEqual(['extra 5']);
    expect(run(['3:4 15:6'], ['13:4 15:6'])).toEqual(['extra 13', 'missing 3']);
    expect(run(['1:2 2:3'], ['1:2 22:3'])).toEqual(['extra 22', 'missing 2']);
    // Between two common keys: production's keys first, then the branch's.
    expect(run(['1:1 2:1 9:1'], ['1:1 3:1 9:1'])).toEqual(['extra 3', 'missing 2']);
    expect(run(['1:1', undefined, '9:1'], [undefined, '4:1', '9:1'])).toEqual(['extra 4', 'missing 1']);
  });

  it('refuses a text out of key order instead of reporting equal rows as differing', () => {
    expect(() => mergePackedSegment(['1:1 10:1 2:1'], ['1:1 10:2 2:5'], [])).toThrow(/out of key order/);
  });

  it('compares integer texts by value', () => {
    const values = [-1000000000000000000n, -12n, -5n, -1n, 0n, 1n, 9n, 10n, 99n, 100n, 9223372036854775807n];
    for (const a of values) for (const b of values) expect(Math.sign(compareIntegerTexts(String(a), String(b))), `${a} vs ${b}`).toBe(a < b ? -1 : a > b ? 1 : 0);
  });
});

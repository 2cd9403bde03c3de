import { describe, expect, it } from 'vitest';
import { bisect, type NextCommit, type ProbeResult } from '../../src/when/bisect.js';
import { PitrError } from '../../src/errors.js';

/** A fake history: commits at given instants, each setting the value; the state at t holds commits ≤ t. */
function history(commits: Array<{ at: number; value: number; xid?: string }>) {
  const calls: number[] = [];
  const probe = async (t: number): Promise<ProbeResult<number>> => {
    calls.push(t);
    let value = 0;
    let next: NextCommit | null = null;
    for (const c of commits) {
      if (c.at <= t) value = c.value;
      else if (!next) next = { xid: c.xid ?? String(c.at), at: c.at };
    }
    return { value, nextCommit: next };
  };
  return { probe, calls };
}

async function refusal(p: Promise<unknown>): Promise<PitrError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(PitrError);
  return err as PitrError;
}

describe('bisect', () => {
  it('names an instant within the precision before a change (changed)', async () => {
    const h = history([{ at: 0, value: 5 }, { at: 700_123, value: 4 }]);
    const r = await bisect({ since: 0, until: 1_000_000, precision: 1000, question: 'changed', probe: h.probe });
    expect(r.firstBad).toBeGreaterThanOrEqual(700_123);
    expect(r.lastGood).toBeLessThan(700_123);
    expect(r.firstBad - r.lastGood).toBeLessThanOrEqual(1000);
    expect([r.good, r.bad]).toEqual([5, 4]);
    // The next commit from the last good probe is confirmed as the exact culprit.
    expect(r.culprit).toEqual({ xid: '700123', at: 700_123 });
    expect(r.lastGood).toBe(700_122);
    expect(h.calls.length).toBeLessThanOrEqual(2 + 10 + 1);
  });

  it('finds a drop among growth (dropped), whatever the later growth', async () => {
    const commits = [];
    for (let t = 0; t < 1_000_000; t += 3000) commits.push({ at: t, value: 100 + t / 3000 });
    // The bad delete at 500_500 removes 90 rows; growth continues after it and passes the start value.
    const withDrop = commits.map((c) => (c.at > 500_500 ? { ...c, value: c.value - 90 } : c));
    withDrop.push({ at: 500_500, value: 100 + 500_500 / 3000 - 90 });
    withDrop.sort((a, b) => a.at - b.at);
    const h = history(withDrop.map((c) => ({ ...c, value: Math.floor(c.value) })));
    const r = await bisect({ since: 0, until: 999_000, precision: 1, question: 'dropped', probe: h.probe, scan: 3 });
    expect(r.culprit?.at).toBe(500_500);
    expect(r.firstBad).toBe(500_500);
    expect(Number(r.good)).toBeGreaterThan(Number(r.bad));
  });

  it('asks when a value first looked as it does now (reached)', async () => {
    const h = history([{ at: 0, value: 1 }, { at: 400_000, value: 2 }]);
    const r = await bisect({ since: 0, until: 1_000_000, precision: 50_000, question: 'reached', probe: h.probe });
    expect(r.lastGood).toBeLessThan(400_000);
    expect(r.firstBad).toBeGreaterThanOrEqual(400_000);
  });

  it('bisects over the known commits of the timeline for the exact transaction', async () => {
    const commits = Array.from({ length: 200 }, (_, i) => ({ at: 1000 + i * 10, value: i < 137 ? 1 : 2, xid: String(900 + i) }));
    const h = history(commits);
    const r = await bisect({
      since: 1000,
      until: 10_000,
      precision: 5000,
      question: 'changed',
      probe: async (t) => ({ value: (await h.probe(t)).value }), // a prober that cannot name commits (Neon)
      commits: commits.map((c) => ({ xid: c.xid, at: c.at })),
    });
    expect(r.culprit).toEqual({ xid: '1037', at: 1000 + 137 * 10 });
    expect(h.calls.length).toBeLessThanOrEqual(3 + 9);
  });

  it('refuses a result that changes and changes back, listing the probes', async () => {
    const h = history([{ at: 0, value: 1 }, { at: 300_000, value: 2 }, { at: 600_000, value: 1 }, { at: 900_000, value: 3 }]);
    const err = await refusal(bisect({ since: 0, until: 1_000_000, precision: 1000, question: 'changed', probe: h.probe, scan: 3 }));
    expect(err.code).toBe('non_monotonic');
    expect(err.message).toContain('probes:');
    expect(err.message.split('\n')).toHaveLength(1);
  });

  it('refuses an empty window and a window without change', async () => {
    const h = history([{ at: 0, value: 1 }]);
    expect((await refusal(bisect({ since: 5, until: 5, precision: 1, question: 'changed', probe: h.probe }))).code).toBe('empty_window');
    expect((await refusal(bisect({ since: 0, until: 100, precision: 1, question: 'changed', probe: h.probe }))).code).toBe('no_change');
    expect((await refusal(bisect({ since: 0, until: 100, precision: 1, question: 'dropped', probe: h.probe }))).message).toContain('did not drop');
  });

  it('probes in increasing time order until it first has to go back', async () => {
    const h = history([{ at: 0, value: 1 }, { at: 900_000, value: 2 }]);
    await bisect({ since: 0, until: 1_000_000, precision: 100_000, question: 'changed', probe: h.probe, scan: 3 });
    const firstBack = h.calls.findIndex((t, i) => i > 0 && t < h.calls[i - 1]!);
    // since, scan points, until; then bisection inside the last quarter.
    expect(h.calls.slice(0, 5)).toEqual([0, 250_000, 500_000, 750_000, 1_000_000]);
    expect(firstBack).toBe(5);
  });
});

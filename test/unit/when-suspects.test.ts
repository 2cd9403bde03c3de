import { describe, expect, it } from 'vitest';
import { bisect, type ProbeResult } from '../../src/when/bisect.js';
import { microsToIso } from '../../src/when/instants.js';
import { suspectsOf, testSuspects } from '../../src/when/suspects.js';
import type { TimelineTransaction } from '../../src/when/timeline.js';

/** A fake history: commits at given instants, each setting the value; the state at t holds commits ≤ t. */
function history(commits: Array<{ at: number; value: unknown }>) {
  const calls: number[] = [];
  const probe = async (t: number): Promise<ProbeResult<unknown>> => {
    calls.push(t);
    let value: unknown = null;
    for (const c of commits) if (c.at <= t) value = c.value;
    return { value };
  };
  return { probe, calls };
}

const tx = (xid: string, at: number, c: { inserted?: number; updated?: number; deleted?: number }): TimelineTransaction => {
  const counts = { inserted: c.inserted ?? 0, updated: c.updated ?? 0, deleted: c.deleted ?? 0 };
  return { xid, committedAt: microsToIso(at), commitLsn: '0/0', tables: { items: counts }, rows: counts.inserted + counts.updated + counts.deleted };
};

const T0 = Date.parse('2026-12-02T10:00:00Z') * 1000;

describe('timeline suspects', () => {
  // Inserts every 10 ms (+1 each), an update every 30 ms, one DELETE of 50 rows at +505 ms.
  const txs: TimelineTransaction[] = [];
  const commits: Array<{ at: number; value: number }> = [{ at: T0, value: 1000 }];
  let n = 1000;
  for (let i = 1; i <= 100; i++) {
    const at = T0 + i * 10_000;
    if (i === 50) {
      txs.push(tx('900', at + 5_123, { deleted: 50 }));
    }
    n += 1;
    commits.push({ at, value: n });
    if (i === 50) {
      n -= 50;
      commits.push({ at: at + 5_123, value: n });
    }
    txs.push(tx(String(i), at, i % 3 === 0 ? { updated: 1 } : { inserted: 1 }));
  }
  commits.sort((a, b) => a.at - b.at);
  const since = T0;
  const until = T0 + 1_000_000;

  it('ranks the transactions that can drop a count, largest first', () => {
    const s = suspectsOf(txs, 'dropped', since, until);
    expect(s[0]).toMatchObject({ xid: '900', rows: 50, at: T0 + 505_123 });
    // Inserts cannot make a count drop.
    expect(s.every((x) => x.rows > 0)).toBe(true);
    expect(s).toHaveLength(1 + 33);
    expect(suspectsOf(txs, 'changed', since, until)).toHaveLength(101);
  });

  it('confirms the largest suspect with probes in increasing time: since, just before, at', async () => {
    const h = history(commits);
    const r = await testSuspects({ since, until, question: 'dropped', probe: h.probe, suspects: suspectsOf(txs, 'dropped', since, until) });
    expect(r?.culprit).toEqual({ xid: '900', at: T0 + 505_123 });
    expect(r?.lastGood).toBe(T0 + 505_122);
    expect(h.calls).toEqual([since, T0 + 505_122, T0 + 505_123]);
    expect([...h.calls].sort((a, b) => a - b)).toEqual(h.calls);
  });

  it('progress reports each probe with its verdict as it is read: the state at the bad commit is never shown as good', async () => {
    for (const question of ['dropped', 'changed'] as const) {
      const h = history(question === 'dropped' ? commits : commits.map((c) => ({ at: c.at, value: c.at >= T0 + 505_123 ? 'gone' : 'here' })));
      const shown: string[] = [];
      await testSuspects({ since, until, question, probe: h.probe, suspects: suspectsOf(txs, question, since, until), onProbe: (p) => shown.push(p.verdict) });
      expect({ question, shown }).toEqual({ question, shown: question === 'dropped' ? ['good', 'good', 'bad'] : ['good', 'good', 'bad', 'bad'] });
    }
  });

  it('changed and reached: the suspect is confirmed against --since / --until', async () => {
    const h = history(commits.map((c) => ({ at: c.at, value: c.at >= T0 + 505_123 ? 'gone' : 'here' })));
    const changed = await testSuspects({ since, until, question: 'changed', probe: h.probe, suspects: suspectsOf(txs, 'changed', since, until) });
    expect(changed?.culprit?.xid).toBe('900');
    const reached = await testSuspects({ since, until, question: 'reached', probe: h.probe, suspects: suspectsOf(txs, 'reached', since, until) });
    expect(reached?.culprit?.xid).toBe('900');
  });

  it('returns null when no suspect explains the change (the caller bisects)', async () => {
    // The value changes at a commit the timeline does not list as large: the top suspects fail.
    const h = history([{ at: T0, value: 'a' }, { at: T0 + 200_000, value: 'b' }]);
    const r = await testSuspects({ since, until, question: 'changed', probe: h.probe, suspects: suspectsOf(txs, 'changed', since, until), tries: 2 });
    expect(r).toBeNull();
  });

  it('a change that changes back by --until is not confirmed', async () => {
    const h = history([{ at: T0, value: 'a' }, { at: T0 + 505_123, value: 'b' }, { at: T0 + 900_000, value: 'a' }]);
    const r = await testSuspects({ since, until, question: 'changed', probe: h.probe, suspects: suspectsOf(txs, 'changed', since, until), tries: 1 });
    expect(r).toBeNull();
  });

  it('a drop hidden by faster growth between scan points: bisection says how to see it, the suspects find it', async () => {
    // One insert per ms; the bad DELETE of 50 rows at +500.5 ms is smaller than the growth between scan points.
    const grow: Array<{ at: number; value: number }> = [];
    const inserts: TimelineTransaction[] = [];
    for (let i = 0; i <= 1000; i++) {
      const at = T0 + i * 1000;
      grow.push({ at, value: 1000 + i - (at > T0 + 500_500 ? 50 : 0) });
      if (i > 0) inserts.push(tx(String(i), at, { inserted: 1 }));
    }
    grow.push({ at: T0 + 500_500, value: 1000 + 500 - 50 });
    grow.sort((a, b) => a.at - b.at);
    const h = history(grow);
    const probe = async (t: number) => ({ value: (await h.probe(t)).value as number });
    const err = await bisect({ since, until, precision: 1000, question: 'dropped', probe, scan: 3 }).then(() => null, (e: Error) => e);
    expect(err?.message).toMatch(/did not drop.*--where.*--timeline/);
    const r = await testSuspects({ since, until, question: 'dropped', probe: h.probe, suspects: suspectsOf([...inserts, tx('bad', T0 + 500_500, { deleted: 50 })], 'dropped', since, until) });
    expect(r?.culprit).toEqual({ xid: 'bad', at: T0 + 500_500 });
  });
});

import { describe, expect, it } from 'vitest';
import { microsToIso } from '../../src/when/instants.js';
import { ReplayAhead } from '../../src/when/replay-ahead.js';
import { suspectsOf } from '../../src/when/suspects.js';
import type { TimelineTransaction } from '../../src/when/timeline.js';

const T0 = Date.parse('2026-12-02T10:00:00Z') * 1000;
const S = 1_000_000;
const tx = (xid: string, at: number, deleted: number, inserted = 0): TimelineTransaction => ({
  xid,
  committedAt: microsToIso(at),
  commitLsn: '0/0',
  tables: { items: { inserted, updated: 0, deleted } },
  rows: inserted + deleted,
});

/** A paused instance that only moves forward; every advance is recorded, each taking a tick. */
function fakeSession(start: number) {
  const moves: number[] = [];
  let at: number | null = start;
  let fail = false;
  return {
    moves,
    failNext: () => (fail = true),
    session: {
      get pausedAt() {
        return at;
      },
      async advance(target: number) {
        await new Promise((r) => setTimeout(r, 1));
        if (fail) {
          at = null;
          throw new Error('recovery failed');
        }
        if (at !== null && target < at) throw new Error(`moved back from ${at} to ${target}`);
        moves.push(target);
        at = target;
      },
    },
  };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe('replaying ahead of the suspects while the timeline is read', () => {
  it('never passes the largest suspect read so far nor the last commit read, and the first try finds it in place', async () => {
    const since = T0;
    const until = T0 + 3600 * S;
    const f = fakeSession(since);
    let first!: () => void;
    const ahead = new ReplayAhead(f.session, new Promise<void>((r) => (first = r)), 'dropped', since, until);
    const all: TimelineTransaction[] = [];
    const feed = async (through: number, added: TimelineTransaction[]) => {
      all.push(...added);
      ahead.read({ through, added });
      await settle();
    };
    // Before --since is read nothing moves.
    await feed(since + 60 * S, [tx('1', since + 10 * S, 1)]);
    expect(f.moves).toEqual([]);
    first();
    await settle();
    // Stops just before the largest suspect so far (a 1-row delete), not at the last commit.
    expect(f.moves.at(-1)).toBe(since + 10 * S - 1);
    // Smaller suspects later do not hold it back: on to just before the larger one found next.
    await feed(since + 900 * S, [tx('2', since + 300 * S, 1), tx('3', since + 600 * S, 40), tx('4', since + 800 * S, 2)]);
    expect(f.moves.at(-1)).toBe(since + 600 * S - 1);
    // The incident: larger still; then only small ones and inserts (not suspects of a drop).
    await feed(since + 1800 * S, [tx('5', since + 1700 * S, 5000), tx('6', since + 1750 * S, 3)]);
    await feed(until - S, [tx('7', since + 2000 * S, 0, 9000), tx('8', since + 3000 * S, 10)]);
    await ahead.stop();
    const firstTry = suspectsOf(all, 'dropped', since, until)[0]!;
    expect(firstTry.xid).toBe('5');
    expect(f.session.pausedAt).toBe(firstTry.at - 1);
    for (let i = 1; i < f.moves.length; i++) expect(f.moves[i]!).toBeGreaterThan(f.moves[i - 1]!);
  });

  it('without any suspect it goes no further than the first probe of the fallback, and keeps a second behind the last commit read', async () => {
    const f = fakeSession(T0);
    // The fallback bisection would first read at +25 s: going past it would cost a restore.
    const ahead = new ReplayAhead(f.session, Promise.resolve(), 'dropped', T0, T0 + 100 * S, T0 + 25 * S);
    await settle();
    ahead.read({ through: T0 + 10 * S, added: [tx('1', T0 + 5 * S, 0, 10)] });
    await settle();
    // Commits reach the WAL slightly out of time order: a second of slack behind the last one read.
    expect(f.session.pausedAt).toBe(T0 + 9 * S);
    ahead.read({ through: T0 + 50 * S, added: [] });
    await settle();
    expect(f.session.pausedAt).toBe(T0 + 25 * S);
    // A suspect appears: on to just before it, and never past --until.
    ahead.read({ through: T0 + 500 * S, added: [tx('2', T0 + 70 * S, 3)] });
    await ahead.stop();
    expect(f.session.pausedAt).toBe(T0 + 70 * S - 1);
    const g = fakeSession(T0);
    const late = new ReplayAhead(g.session, Promise.resolve(), 'dropped', T0, T0 + 100 * S);
    await settle();
    late.read({ through: T0 + 500 * S, added: [] });
    await late.stop();
    expect(g.session.pausedAt).toBe(T0 + 100 * S);
  });

  it('a failed move or a failed first probe stops it; stop() waits for the move in progress', async () => {
    const f = fakeSession(T0);
    const ahead = new ReplayAhead(f.session, Promise.resolve(), 'dropped', T0, T0 + 100 * S);
    await settle();
    f.failNext();
    ahead.read({ through: T0 + 50 * S, added: [] });
    await ahead.stop();
    ahead.read({ through: T0 + 80 * S, added: [] });
    await settle();
    expect(f.moves).toEqual([]);

    const g = fakeSession(T0);
    const never = new ReplayAhead(g.session, Promise.reject(new Error('restore failed')), 'dropped', T0, T0 + 100 * S);
    await settle();
    never.read({ through: T0 + 50 * S, added: [] });
    await never.stop();
    expect(g.moves).toEqual([]);
  });
});

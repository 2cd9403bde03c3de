import { asNumber, sameValue, type BisectResult, type Micros, type NextCommit, type Prober, type ProbeRecord, type Question } from './bisect.js';
import { commitMicrosOf, type TimelineTransaction } from './timeline.js';

/** A transaction of the WAL timeline that may have made the change, with its size. */
export interface Suspect extends NextCommit {
  rows: number;
}

/**
 * The timeline's transactions that could have made this kind of change, largest first: a count
 * drops only by a DELETE or an UPDATE (which may move a row out of --where); any other result may
 * change by any write. Incidents are large transactions, so the first suspect is usually it.
 */
export function suspectsOf(transactions: readonly TimelineTransaction[], question: Question, since: Micros, until: Micros): Suspect[] {
  return transactions
    .map((t) => asSuspect(t, question))
    .filter((s) => couldBe(s, since, until))
    .sort(suspectOrder);
}

/** The first of suspectsOf(transactions) folded into `best`, without sorting them. */
export function firstSuspect(best: Suspect | undefined, transactions: readonly TimelineTransaction[], question: Question, since: Micros, until: Micros): Suspect | undefined {
  for (const t of transactions) {
    const s = asSuspect(t, question);
    if (couldBe(s, since, until) && (!best || suspectOrder(s, best) < 0)) best = s;
  }
  return best;
}

function asSuspect(t: TimelineTransaction, question: Question): Suspect {
  const counts = Object.values(t.tables);
  const rows = question === 'dropped' ? counts.reduce((n, c) => n + c.deleted + c.updated, 0) : t.rows;
  return { xid: t.xid, at: commitMicrosOf(t), rows };
}

/** It changed rows of the kind asked about, inside the window. */
const couldBe = (s: Suspect, since: Micros, until: Micros) => s.rows > 0 && s.at > since && s.at <= until;

const suspectOrder = (a: Suspect, b: Suspect) => b.rows - a.rows || a.at - b.at;

export interface SuspectOptions<V> {
  since: Micros;
  until: Micros;
  question: Question;
  probe: Prober<V>;
  suspects: readonly Suspect[];
  /** How many suspects to try before giving up (the caller then bisects). */
  tries?: number;
  onProbe?: (record: ProbeRecord<V>, n: number, estimate: number) => void;
}

/**
 * Tests the timeline's suspects one by one, largest first: a suspect is the culprit when the
 * state just before its commit is still good and the state at its commit is bad. Under the
 * monotonic assumption bisection makes too, that names the one transaction exactly. The probes
 * of one try are in increasing time (--since, before, at, --until), so a replaying prober rolls
 * forward from one base-backup restore; only a wrong guess earlier in time goes back.
 * Returns null when no suspect is confirmed.
 */
export async function testSuspects<V>(o: SuspectOptions<V>): Promise<BisectResult<V> | null> {
  const tries = o.suspects.slice(0, o.tries ?? 3);
  if (tries.length === 0) return null;
  const probes: ProbeRecord<V>[] = [];
  const estimate = 2 + 2 * tries.length;
  const seen = new Map<Micros, V>();
  const read = async (at: Micros, judge?: (v: V) => boolean): Promise<V> => {
    const value = seen.has(at) ? seen.get(at)! : (await o.probe(at)).value;
    if (!seen.has(at)) {
      seen.set(at, value);
      const r: ProbeRecord<V> = { at, value, verdict: judge ? (judge(value) ? 'good' : 'bad') : 'good' };
      probes.push(r);
      o.onProbe?.(r, probes.length, Math.max(estimate, probes.length));
    }
    return value;
  };
  // `reached` compares with the end, read after the suspect's commit so every probe moves forward.
  const start = o.question === 'reached' ? undefined : await read(o.since);
  // dropped: the first descent (nothing below the start before the suspect, and it drops); changed:
  // the start's value before it, another after. Judged as read, so progress never calls the damaged state good.
  const goodBefore = (v: V) => (o.question === 'dropped' ? asNumber(v) >= asNumber(start) : sameValue(v, start));
  const goodAfter = (before: V) => (v: V) => (o.question === 'dropped' ? asNumber(v) >= asNumber(before) : sameValue(v, start));
  for (const s of tries) {
    const before = await read(s.at - 1, o.question === 'reached' ? undefined : goodBefore);
    const after = await read(s.at, o.question === 'reached' ? undefined : goodAfter(before));
    let good: boolean;
    let bad: boolean;
    if (o.question !== 'reached') {
      good = goodBefore(before);
      // changed: and not changed back by --until (that would be a non-monotonic result).
      bad = !goodAfter(before)(after) && (o.question === 'dropped' || !sameValue(await read(o.until, goodAfter(before)), start));
    } else {
      const end = await read(o.until);
      good = !sameValue(before, end);
      bad = sameValue(after, end);
    }
    if (good && bad) {
      for (const p of probes) p.verdict = p.at < s.at ? 'good' : 'bad';
      return { lastGood: s.at - 1, firstBad: s.at, good: before, bad: after, culprit: { xid: s.xid, at: s.at }, probes };
    }
  }
  return null;
}

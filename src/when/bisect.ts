import { PitrError } from '../errors.js';

/**
 * Instants are epoch microseconds (a Number holds them exactly until the year 2255): Postgres
 * commit times have microseconds, and the exact answer sits between two commits that can be
 * a few microseconds apart.
 */
export type Micros = number;

/** The first commit a probe's state does not hold, when the probe can tell (local replay). */
export interface NextCommit {
  xid: string;
  at: Micros;
}

export interface ProbeResult<V> {
  value: V;
  nextCommit?: NextCommit | null;
}

export type Prober<V> = (at: Micros) => Promise<ProbeResult<V>>;

/**
 * What "bad" means: `changed` — the value differs from the one at `since` (--sql); `reached` —
 * the value is already what it is at `until` (--row: when did it start to look as it does now);
 * `dropped` — the value is a number below the last good one (--count: when did it drop).
 */
export type Question = 'changed' | 'reached' | 'dropped';

export interface ProbeRecord<V> {
  at: Micros;
  value: V;
  verdict: 'good' | 'bad';
}

export interface BisectOptions<V> {
  since: Micros;
  until: Micros;
  /** Stop when first bad − last good ≤ precision (µs, at least 1). */
  precision: Micros;
  question: Question;
  probe: Prober<V>;
  /** Evenly spaced probes before bisecting, to see a result that changes and changes back. */
  scan?: number;
  /** Known commit instants inside the window (the WAL timeline): the last steps probe only these. */
  commits?: readonly NextCommit[];
  onProbe?: (record: ProbeRecord<V>, n: number, estimate: number) => void;
}

export interface BisectResult<V> {
  lastGood: Micros;
  firstBad: Micros;
  good: V;
  bad: V;
  /** The transaction whose commit made the change, when it could be named exactly. */
  culprit: NextCommit | null;
  probes: ProbeRecord<V>[];
}

export function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function asNumber(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' || typeof v === 'bigint' ? Number(v) : NaN;
  if (!Number.isFinite(n)) throw new PitrError('not_a_count', `the result is not a single number (${JSON.stringify(v)}), so it cannot "drop"`, { exit: 'usage' });
  return n;
}

/** The i-th of `scan` evenly spaced points inside (since, until): where bisection reads first. */
export const scanPoint = (since: Micros, until: Micros, scan: number, i = 1): Micros => Math.floor(since + ((until - since) * i) / (scan + 1));

/** Probes needed to go from a window to the precision: what the progress line counts to. */
export function estimateProbes(since: Micros, until: Micros, precision: Micros, scan = 0): number {
  return 2 + scan + Math.max(0, Math.ceil(Math.log2(Math.max(1, (until - since) / Math.max(1, precision)))));
}

/**
 * Finds the instant at which a query's result changed, by bisection over past states. The
 * caller's probe reads the state at an instant; probes are issued in increasing time order as
 * far as bisection allows, so a replaying prober can roll forward instead of restoring.
 */
export async function bisect<V>(options: BisectOptions<V>): Promise<BisectResult<V>> {
  const { since, until, question } = options;
  const precision = Math.max(1, Math.floor(options.precision));
  if (!(since < until)) throw new PitrError('empty_window', 'the window is empty: --since must be before --until', { exit: 'usage' });
  const scan = options.scan ?? 0;
  const estimate = estimateProbes(since, until, precision, scan);
  const probes: ProbeRecord<V>[] = [];
  const next = new Map<Micros, NextCommit | null | undefined>();

  let reference: V; // the value at since (changed, dropped) or at until (reached)
  const isGood = (value: V, loValue: V): boolean =>
    question === 'changed' ? sameValue(value, reference) : question === 'reached' ? !sameValue(value, reference) : asNumber(value) >= asNumber(loValue);
  const read = async (at: Micros): Promise<V> => {
    const result = await options.probe(at);
    next.set(at, result.nextCommit);
    return result.value;
  };
  const record = (at: Micros, value: V, verdict: 'good' | 'bad') => {
    const r = { at, value, verdict };
    probes.push(r);
    options.onProbe?.(r, probes.length, Math.max(estimate, probes.length));
  };

  const first: V = await read(since);
  // The reference for `reached` is the end; read it before judging the start.
  let points: Micros[] = [];
  for (let i = 1; i <= scan; i++) points.push(scanPoint(since, until, scan, i));
  points = [...new Set(points)].filter((p) => p > since && p < until);
  const scanned: Array<[Micros, V]> = [];
  for (const p of points) {
    const v: V = await read(p);
    scanned.push([p, v]);
  }
  const last: V = await read(until);
  reference = question === 'reached' ? last : first;

  record(since, first, isGood(first, first) ? 'good' : 'bad');
  if (question === 'reached' && sameValue(first, last)) {
    throw new PitrError('no_change', `the result at --since is already what it is at --until (${short(last)}): nothing changed in the window`, { exit: 'usage' });
  }
  let lo = since;
  let loValue: V = first;
  let hi = until;
  let hiValue: V = last;
  let seenBad = false;
  if (question === 'dropped') {
    // A count may grow past its start again after the drop: look for the first descent between
    // consecutive points rather than comparing with the start.
    let prev = first;
    for (const [p, v] of [...scanned, [until, last] as [Micros, V]]) {
      const dropped = asNumber(v) < asNumber(prev);
      record(p, v, dropped ? 'bad' : 'good');
      if (!seenBad && dropped) {
        seenBad = true;
        hi = p;
        hiValue = v;
      } else if (!seenBad) {
        lo = p;
        loValue = v;
      }
      prev = v;
    }
    if (!seenBad) {
      // Growth between the scan points can outweigh the drop: say how to see it anyway.
      throw new PitrError(
        'no_change',
        `the result did not drop between any two probes from --since to --until (${short(first)} → ${short(last)}); if rows are added faster than they were removed, count only the affected rows (--where), narrow --since/--until, or add --timeline (local) to test the deleting transactions`,
        { exit: 'usage' },
      );
    }
  } else {
    for (const [p, v] of scanned) {
      const verdict = isGood(v, loValue) ? 'good' : 'bad';
      record(p, v, verdict);
      if (verdict === 'good' && seenBad) throw nonMonotonic(probes);
      if (verdict === 'good') {
        lo = p;
        loValue = v;
      } else if (!seenBad) {
        seenBad = true;
        hi = p;
        hiValue = v;
      }
    }
    const lastVerdict = isGood(last, loValue) ? 'good' : 'bad';
    record(until, last, lastVerdict);
    if (lastVerdict === 'good') {
      if (seenBad) throw nonMonotonic(probes);
      throw new PitrError('no_change', `the result did not change between --since and --until (${short(first)} → ${short(last)})`, { exit: 'usage' });
    }
  }

  const step = async (at: Micros) => {
    const v: V = await read(at);
    const verdict = isGood(v, loValue) ? 'good' : 'bad';
    record(at, v, verdict);
    if (verdict === 'good') {
      lo = at;
      loValue = v;
    } else {
      hi = at;
      hiValue = v;
    }
  };
  while (hi - lo > precision) await step(Math.floor(lo + (hi - lo) / 2));

  // Exact: the change is made by one of the commits in (lo, hi]. With the WAL timeline, bisect
  // over those; without it, the state at lo names its next commit, and one probe confirms it.
  let culprit: NextCommit | null = null;
  const inside = (options.commits ?? []).filter((c) => c.at > lo && c.at <= hi).sort((a, b) => a.at - b.at);
  if (inside.length > 0) {
    let a = 0;
    // No commit lies in (inside[last], hi], so the state at the last one is already bad.
    let b = inside.length - 1;
    while (a < b) {
      const m = Math.floor((a + b) / 2);
      await step(inside[m]!.at);
      if (hi === inside[m]!.at) b = m;
      else a = m + 1;
    }
    if (lo < inside[a]!.at && hi >= inside[a]!.at) {
      if (hi !== inside[a]!.at) await step(inside[a]!.at);
      if (hi === inside[a]!.at) culprit = inside[a]!;
    }
  } else {
    const candidate = next.get(lo);
    if (candidate && candidate.at > lo && candidate.at <= hi) {
      if (candidate.at !== hi) await step(candidate.at);
      if (hi === candidate.at) culprit = candidate;
    }
  }
  if (culprit) lo = Math.max(lo, culprit.at - 1);
  return { lastGood: lo, firstBad: hi, good: loValue, bad: hiValue, culprit, probes };
}

function short(v: unknown): string {
  const text = JSON.stringify(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function nonMonotonic<V>(probes: ProbeRecord<V>[]): PitrError {
  const seen = [...probes].sort((a, b) => a.at - b.at).map((p) => `${new Date(p.at / 1000).toISOString()} ${p.verdict} ${short(p.value)}`);
  return new PitrError('non_monotonic', `the result changes and changes back inside the window, so bisection cannot name one instant; narrow --since/--until (probes: ${seen.join('; ')})`, {
    exit: 'usage',
  });
}

// src/when: finding when an accident happened (bisecting history through branches or Time Travel).
// Core: must not import src/cli; it reaches production only through the Provider interface and
// databases through src/db.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { badInput, PitrError } from '../errors.js';
import { connect } from '../db/connect.js';
import type { LocalProvider } from '../providers/local/index.js';
import { branchUrl } from '../providers/local/urls.js';
import type { Provider } from '../providers/types.js';
import { freeLoopbackPort } from '../system/ports.js';
import { parseDuration, type PointInTime } from '../time/index.js';
import { bisect, estimateProbes, scanPoint, type Micros, type NextCommit, type ProbeRecord, type ProbeResult } from './bisect.js';
import { dateToMicros, microsToIso, microsToPointInTime, pointToMicros } from './instants.js';
import { LocalProbeSession } from './local-probes.js';
import type { WhenQuery } from './queries.js';
import { suspectsOf, testSuspects } from './suspects.js';
import { mapRelfilenodes, readTimeline, type Timeline, type TimelinePrefix } from './timeline.js';
import { ReplayAhead } from './replay-ahead.js';

export { countQuery, rowQuery, sqlQuery, type WhenQuery } from './queries.js';
export type { Timeline, TimelineTransaction } from './timeline.js';

export interface TimelineRequest {
  /** Tables whose transactions are listed (partitions included); every user table when empty. */
  tables: string[];
  minRows?: number;
  /** Skip the timeline (bisect over time) when the archive is not a directory pitr can read. */
  whenArchived?: boolean;
}

export interface WhenRequest {
  query: WhenQuery;
  since?: PointInTime;
  until?: PointInTime;
  /** µs; 1 means exact (name the transaction). */
  precision: Micros;
  /** Commits inside the window from the WAL timeline: the last steps probe only these. */
  commits?: readonly NextCommit[];
  /** Local: read the archived WAL first, list the transactions and bisect over exact commits. */
  timeline?: TimelineRequest;
  onProbe?: (text: string, n: number, estimate: number) => void;
  onProgress?: (message: string) => void;
}

export interface WhenResult {
  provider: Provider['kind'];
  question: WhenQuery['question'];
  query: string;
  since: string;
  until: string;
  precisionMicros: number;
  lastGood: string;
  firstBad: string;
  good: unknown;
  bad: unknown;
  /** The transaction that made the change, when it could be named exactly. */
  culprit: { xid: string; committedAt: string } | null;
  /** What to pass to `pitr --at`: the exact transaction when known, else the last good instant. */
  at: string;
  probes: Array<{ at: string; verdict: 'good' | 'bad'; value: unknown }>;
  timeline?: Timeline;
  restores: number;
  forwardReplays: number;
  seconds: number;
}

/** `1s`, `250ms`, `500us`, or `exact`/`lsn` (to the transaction). */
export function parsePrecision(text: string): Micros {
  const t = text.trim().toLowerCase();
  if (t === 'exact' || t === 'lsn' || t === 'xid') return 1;
  const small = /^(\d+(?:\.\d+)?)\s*(us|µs|ms)$/.exec(t);
  if (small) return Math.max(1, Math.round(Number(small[1]) * (small[2] === 'ms' ? 1000 : 1)));
  const ms = parseDuration(t);
  if (!(ms > 0)) throw badInput('bad_precision', `--precision must be above zero (got ${text})`);
  return ms * 1000;
}

function window(req: WhenRequest, oldest: Micros, newest: Micros): { since: Micros; until: Micros } {
  const since = req.since ? pointToMicros(req.since) : oldest;
  const until = req.until ? pointToMicros(req.until) : newest;
  if (since < oldest) throw badInput('outside_window', `--since ${microsToIso(since)} is before the recoverable window, which starts at ${microsToIso(oldest)}`);
  if (until > newest) throw badInput('outside_window', `--until ${microsToIso(until)} is after the recoverable window, which ends at ${microsToIso(newest)}`);
  if (since >= until) throw badInput('empty_window', `the window is empty: ${microsToIso(since)} is not before ${microsToIso(until)}`);
  return { since, until };
}

function summarize(provider: Provider['kind'], req: WhenRequest, since: Micros, until: Micros, started: number, r: Awaited<ReturnType<typeof bisect>>, extra: { restores: number; forwardReplays: number }): WhenResult {
  const culprit = r.culprit ? { xid: r.culprit.xid, committedAt: microsToIso(r.culprit.at) } : null;
  return {
    provider,
    question: req.query.question,
    query: req.query.label,
    since: microsToIso(since),
    until: microsToIso(until),
    precisionMicros: req.precision,
    lastGood: microsToIso(r.lastGood),
    firstBad: microsToIso(r.firstBad),
    good: r.good,
    bad: r.bad,
    culprit,
    at: culprit && provider === 'local' ? `xid:${culprit.xid}` : microsToIso(r.lastGood),
    probes: [...r.probes].sort((a, b) => a.at - b.at).map((p: ProbeRecord<unknown>) => ({ at: microsToIso(p.at), verdict: p.verdict, value: p.value })),
    ...extra,
    seconds: (Date.now() - started) / 1000,
  };
}

/**
 * Local provider: one recovery instance, replayed forward, restored anew only to go back. With
 * the timeline, its largest suspects are tested first (--since, just before, at the commit:
 * all forward); bisection over time and then over the timeline's commits is the fallback.
 */
export async function whenLocal(provider: LocalProvider, req: WhenRequest): Promise<WhenResult> {
  const started = Date.now();
  const setup = await provider.probeSetup(req.onProgress ? (e) => req.onProgress!(e.message) : undefined);
  const oldest = dateToMicros(new Date(setup.backups[0]!.endedAt));
  const newest = setup.switchedAt ? dateToMicros(new Date(setup.switchedAt)) : Date.now() * 1000;
  const { since, until } = window(req, oldest, newest);
  const port = await freeLoopbackPort();
  const session = new LocalProbeSession({
    bin: setup.bin,
    backups: setup.backups,
    restoreCommand: setup.restoreCommand,
    dir: join(setup.workDir, 'when', `probe-${randomBytes(4).toString('hex')}`),
    port,
    url: branchUrl(setup.url, port),
    timeoutMs: setup.timeoutMs,
    ...(req.onProgress ? { onProgress: (e: { message: string }) => req.onProgress!(e.message) } : {}),
  });
  // One read per instant: the suspects' probes are not repeated by the fallback bisection.
  const seen = new Map<Micros, Promise<ProbeResult<unknown>>>();
  const probe = (at: Micros): Promise<ProbeResult<unknown>> => {
    if (!seen.has(at)) seen.set(at, session.at(at, (client) => req.query.read(client)));
    return seen.get(at)!;
  };
  const onProbe = (p: ProbeRecord<unknown>, n: number, estimate: number) => req.onProbe?.(`${microsToIso(p.at)} ${p.verdict}`, n, estimate);
  let replayAhead: ReplayAhead | undefined;
  try {
    // The timeline is read from the archive while the instance restores the state at --since, then replays
    // on behind the part of the timeline already read (replayAhead).
    const first = probe(since);
    const wantTimeline = req.timeline && !(req.timeline.whenArchived && !setup.walArchive) ? req.timeline : undefined;
    replayAhead = wantTimeline ? new ReplayAhead(session, first, req.query.question, since, until, scanPoint(since, until, FALLBACK_SCAN)) : undefined;
    const [read, start] = await Promise.allSettled([wantTimeline ? timelineOf(setup, wantTimeline, since, until, replayAhead) : Promise.resolve(undefined), first]);
    await replayAhead?.stop();
    if (read.status === 'rejected') throw read.reason;
    if (start.status === 'rejected') throw start.reason;
    const timeline = read.value;
    const counts = () => ({ restores: session.restores, forwardReplays: session.forwardReplays });
    const found = timeline
      ? await testSuspects({ since, until, question: req.query.question, probe, suspects: suspectsOf(timeline.transactions, req.query.question, since, until), onProbe })
      : null;
    const result =
      found ??
      (await bisect({
        since,
        until,
        precision: req.precision,
        question: req.query.question,
        scan: FALLBACK_SCAN,
        ...(timeline || req.commits ? { commits: timeline?.commits ?? req.commits! } : {}),
        probe,
        onProbe,
      }));
    const summary = summarize('local', req, since, until, started, result, counts());
    return timeline ? { ...summary, timeline } : summary;
  } finally {
    await replayAhead?.stop();
    await Promise.allSettled(seen.values());
    await session.close();
  }
}

/** Points the fallback bisection reads across the window first (a result that changes and changes back shows). */
const FALLBACK_SCAN = 3;

type ProbeSetup = Awaited<ReturnType<LocalProvider['probeSetup']>>;

async function timelineOf(setup: ProbeSetup, req: TimelineRequest, since: Micros, until: Micros, ahead?: ReplayAhead): Promise<Timeline> {
  const client = await connect(setup.url, { timeoutMs: 10_000, driver: 'pg' });
  let relations;
  try {
    relations = await mapRelfilenodes(client, req.tables);
  } finally {
    await client.end().catch(() => undefined);
  }
  const backup = [...setup.backups].reverse().find((b) => dateToMicros(new Date(b.endedAt)) <= since) ?? setup.backups[0]!;
  return readTimeline({ bin: setup.bin, walArchive: setup.walArchive, backup, relations, since, until, ...(req.minRows !== undefined && { minRows: req.minRows }), ...(ahead && { onPrefix: (p: TimelinePrefix) => ahead.read(p) }) });
}

/** `pitr when --timeline` alone: the transactions that touched the tables inside the window. */
export async function localTimeline(provider: LocalProvider, req: TimelineRequest & { since?: PointInTime; until?: PointInTime; onProgress?: (m: string) => void }): Promise<Timeline> {
  const setup = await provider.probeSetup(req.onProgress ? (e) => req.onProgress!(e.message) : undefined);
  const oldest = dateToMicros(new Date(setup.backups[0]!.endedAt));
  const newest = setup.switchedAt ? dateToMicros(new Date(setup.switchedAt)) : Date.now() * 1000;
  const { since, until } = window({ query: undefined as never, precision: 1, ...(req.since && { since: req.since }), ...(req.until && { until: req.until }) }, oldest, newest);
  return timelineOf(setup, req, since, until);
}

/** Neon: Time Travel reads (read-only, no branch); each probe is one connection. */
export async function whenTimeTravel(provider: Provider, req: WhenRequest): Promise<WhenResult> {
  const started = Date.now();
  if (!provider.openPointInTime) throw new PitrError('no_time_travel', `the ${provider.kind} provider cannot read the past without a branch`);
  const info = await provider.describe();
  const oldest = info.window.oldest ? dateToMicros(new Date(info.window.oldest)) : 0;
  const newest = Date.now() * 1000;
  const { since, until } = window(req, oldest, newest);
  const result = await bisect({
    since,
    until,
    precision: req.precision,
    question: req.query.question,
    // One midpoint read: sees a result that changes and changes back across the middle, for one
    // Time Travel read more than bare bisection.
    scan: 1,
    ...(req.commits ? { commits: req.commits } : {}),
    probe: async (at) => {
      const pit = await provider.openPointInTime!(microsToPointInTime(at));
      const client = await connect(pit.connectionUrl, { timeoutMs: 30_000 });
      try {
        return { value: await req.query.read(client) };
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    onProbe: (p, n, estimate) => req.onProbe?.(`${microsToIso(p.at)} ${p.verdict}`, n, estimate),
  });
  return summarize(provider.kind, req, since, until, started, result, { restores: 0, forwardReplays: 0 });
}

export { estimateProbes };

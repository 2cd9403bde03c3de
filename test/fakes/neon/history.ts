import { formatLsn, tryLsnToBigInt } from '../../../src/time/lsn.js';
import type { PointInTime } from '../../../src/time/index.js';

/**
 * Which part of production's history a branch shares. The fake can only replay production's WAL
 * archive, so a point on any branch must be translated into a point on production:
 *  - `live`: the branch IS production (main before any restore, or the branch preserving it):
 *    every point of production's history is the branch's.
 *  - `upto`: a copy made at a point; its history equals production's up to that point (as a time
 *    and/or an LSN, whichever is known), and after it the copy's own writes, which nothing can
 *    replay. Points past it are refused with a message that says so, never answered wrongly.
 */
export type History = { kind: 'live' } | { kind: 'upto'; until: Date | null; untilLsn: string | null };

export class HistoryError extends Error {}

/** Postgres's spelling of an LSN (upper-case, no leading zeros), or undefined when it is not one. */
export function normalizeLsn(text: string): string | undefined {
  const value = tryLsnToBigInt(text);
  return value === undefined ? undefined : formatLsn(value);
}

function lsnLessOrEqual(a: string, b: string): boolean {
  return tryLsnToBigInt(a)! <= tryLsnToBigInt(b)!;
}

/** The production point equal to `point` on a branch with `history`, or a HistoryError. */
export function onProduction(history: History, point: PointInTime, branchName: string): PointInTime {
  if (history.kind === 'live') return point;
  if (point.kind === 'time' && history.until && point.at.getTime() <= history.until.getTime()) return point;
  if (point.kind === 'lsn' && history.untilLsn && lsnLessOrEqual(point.lsn, history.untilLsn)) return point;
  const known = [history.until && `time ${history.until.toISOString()}`, history.untilLsn && `LSN ${history.untilLsn}`].filter(Boolean).join(' / ');
  throw new HistoryError(
    `fake-neon: branch ${branchName} is a local copy of production at ${known || 'a point still being restored'}; ` +
      `it can only reach production's history up to there (its own later writes have no WAL archive)`,
  );
}

/** What a restored instance tells us fills in the side of `upto` that was not asked for. */
export function completeHistory(history: History, facts: { replayLsn: string | null; lastCommit: Date | null }): History {
  if (history.kind === 'live') return history;
  return {
    kind: 'upto',
    until: history.until ?? facts.lastCommit,
    untilLsn: history.untilLsn ?? (facts.replayLsn ? normalizeLsn(facts.replayLsn) ?? null : null),
  };
}

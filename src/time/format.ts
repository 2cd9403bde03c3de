import type { PointInTime } from './parse.js';

/** `2026-11-25T14:03:00Z`; milliseconds appear only when there are some, so the common case reads cleanly. */
export function formatUtc(d: Date): string {
  const iso = d.toISOString(); // throws RangeError on an invalid Date, which is a programming error
  return d.getUTCMilliseconds() === 0 ? iso.replace(/\.000Z$/, 'Z') : iso;
}

/**
 * `20261125T140300Z`: safe in branch and database names (no `:` or `-`). Milliseconds are
 * dropped, so two targets within the same second share a name.
 */
export function formatCompactUtc(d: Date): string {
  if (Number.isNaN(d.getTime())) throw new RangeError('Invalid time value');
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  return (
    `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`
  );
}

/** A time target in UTC with every digit the user gave: `2026-11-25T14:03:00.123456Z`. */
export function formatTarget(p: Extract<PointInTime, { kind: 'time' }>): string {
  if (!p.subMillisecondMicros) return formatUtc(p.at);
  return p.at.toISOString().replace(/Z$/, `${String(p.subMillisecondMicros).padStart(3, '0')}Z`);
}

/** The same instant as Postgres reads it for recovery_target_time (explicit +00 offset). */
export function formatPostgresTimestamp(p: Extract<PointInTime, { kind: 'time' }>): string {
  return formatTarget(p).replace('T', ' ').replace(/Z$/, '+00');
}

/** How a recovery target is shown to people: `2026-11-25T14:03:00Z`, `LSN 16/B374D848`, `just before transaction 7342`. */
export function describePointInTime(p: PointInTime): string {
  return p.kind === 'time' ? formatTarget(p) : p.kind === 'lsn' ? `LSN ${p.lsn}` : p.kind === 'xid' ? `just before transaction ${p.xid}` : `snapshot ${p.name}`;
}

import { badInput, type PitrError } from '../errors.js';
import { DURATION_UNITS, readDuration } from './duration.js';
import { formatUtc } from './format.js';
import { formatLsn, tryLsnToBigInt } from './lsn.js';
import { DAY_MS, fixedZone, formatDate, formatOffset, ianaZone, utcWall, wallAsUtcMs, zoneFormatter, type WallTime, type Zone } from './zones.js';

export type PointInTime =
  /**
   * `subMillisecondMicros` keeps the microseconds a Date cannot hold (0-999): Postgres commit
   * times have microseconds, and a target copied from `select now()` must not drop commits
   * made within the same millisecond.
   */
  | { kind: 'time'; at: Date; input: string; subMillisecondMicros?: number }
  /** `lsn` is spelled the way Postgres prints it: upper-case hex, no leading zeros (`16/B374D848`). */
  | { kind: 'lsn'; lsn: string; input: string }
  /**
   * `xid:<xid>`: just before the commit of that transaction (recovery_target_xid with
   * recovery_target_inclusive off): every commit before it is kept, nothing of it is.
   * `xid` is the 32-bit id Postgres and pg_waldump print, as decimal text.
   */
  | { kind: 'xid'; xid: string; input: string }
  /** `snapshot:<name>`: a restore point pitr made; the provider knows what it stands for. */
  | { kind: 'snapshot'; name: string; input: string };

/** A point a recovery can target directly: a time or an LSN (a snapshot resolved by its provider). */
export type ResolvedPointInTime = Exclude<PointInTime, { kind: 'snapshot' }>;

/** Snapshot names: what Neon branch names and file names both accept. */
export const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Refuses a snapshot name before any work, the same way for every provider. */
export function checkSnapshotName(name: string): void {
  if (!SNAPSHOT_NAME.test(name)) {
    throw badInput('bad_snapshot_name', `"${name}" is not a valid snapshot name: use 1-63 letters, digits, . _ or -, starting with a letter or digit`);
  }
}

export interface ParseTimeOptions {
  /** Defaults to the current time; tests pin it so "today" and "the future" are deterministic. */
  now?: Date;
  /** IANA zone for wall-clock times written without a zone. Defaults to UTC. */
  timeZone?: string;
}

/** Real-world offsets run from -12:00 to +14:00; anything past ±14:00 is a typo. */
const MAX_OFFSET_MINUTES = 14 * 60;

/** Long inputs are cut so the message stays one readable line; JSON quoting also escapes newlines. */
function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text);
}

function fail(message: string): PitrError {
  return badInput('bad_time', message);
}

function examples(zoneLabel: string): string {
  return `use e.g. 2026-11-25T14:03:00Z, '2026-11-25 14:03' (read in ${zoneLabel}), 14:03, -15m, '2h ago', now lsn:16/B374D848 or xid:7342`;
}

// ---------------------------------------------------------------------------------------------
// Grammar

const DATE = String.raw`(?<year>\d{4})-(?<month>\d{2})-(?<day>\d{2})`;
const CLOCK = String.raw`(?<clock>(?<hour>\d{1,2}):(?<minute>\d{2})(?::(?<second>\d{2})(?:[.,](?<fraction>\d+))?)?)`;
const ZONE = String.raw`(?:\s*(?<zone>z|utc|(?<sign>[+-])(?<offH>\d{2})(?::?(?<offM>\d{2}))?))?`;
const DATE_TIME = new RegExp(String.raw`^${DATE}(?:t|\s+)${CLOCK}${ZONE}$`, 'i');
const TIME_OF_DAY = new RegExp(String.raw`^${CLOCK}${ZONE}$`, 'i');

type Groups = Record<string, string | undefined>;

function readDate(g: Groups, shown: string): Pick<WallTime, 'year' | 'month' | 'day'> {
  const year = Number(g.year);
  const month = Number(g.month);
  const day = Number(g.day);
  if (month < 1 || month > 12) {
    throw fail(`${shown} has month ${g.month}, which does not exist; write dates as YYYY-MM-DD`);
  }
  const daysInMonth = new Date(wallAsUtcMs({ year, month: month + 1, day: 0, hour: 0, minute: 0, second: 0, ms: 0 })).getUTCDate();
  if (day < 1 || day > daysInMonth) {
    throw fail(`${shown} is not a calendar date: ${g.year}-${g.month} has ${daysInMonth} days; write dates as YYYY-MM-DD`);
  }
  return { year, month, day };
}

function readClock(g: Groups, shown: string): Pick<WallTime, 'hour' | 'minute' | 'second' | 'ms'> {
  const hour = Number(g.hour);
  const minute = Number(g.minute);
  const second = Number(g.second ?? '0');
  const fraction = g.fraction ?? '';
  if (hour > 23) throw fail(`${shown} has hour ${g.hour}; hours run from 00 to 23`);
  if (minute > 59) throw fail(`${shown} has minute ${g.minute}; minutes run from 00 to 59`);
  if (second > 59) throw fail(`${shown} has second ${g.second}; seconds run from 00 to 59`);
  if (fraction.length > 6) {
    throw fail(`${shown} has ${fraction.length} fractional digits; give at most 6 (Postgres keeps microseconds)`);
  }
  // Truncate to milliseconds rather than round: the target never moves later than what was written.
  return { hour, minute, second, ms: Number(fraction.padEnd(3, '0').slice(0, 3)) };
}

function readZone(g: Groups, shown: string, fallback: Zone): Zone {
  if (g.zone === undefined) return fallback;
  if (g.sign === undefined) return fixedZone(0, 'UTC');
  const hours = Number(g.offH);
  const minutes = Number(g.offM ?? '0');
  const total = hours * 60 + minutes;
  if (minutes > 59 || total > MAX_OFFSET_MINUTES) {
    throw fail(`${shown} has offset ${g.zone}, which is out of range; offsets run from -14:00 to +14:00`);
  }
  const signed = g.sign === '-' ? -total : total;
  return fixedZone(signed, formatOffset(signed * 60_000));
}

function resolveWall(wall: WallTime, zone: Zone, shown: string, wallText: string): Date {
  const instants = zone.instantsAt(wall);
  const [first, second] = instants;
  if (first === undefined) {
    const [before, after] = zone.offsetsAround(wall);
    throw fail(
      `${shown} does not exist in ${zone.label}: the clocks jump forward over it (UTC${formatOffset(before)} to ` +
        `UTC${formatOffset(after)}); pick a time outside the gap or add an offset, e.g. '${wallText}${formatOffset(before)}'`,
    );
  }
  if (second !== undefined) {
    const options = instants.map((t) => `'${wallText}${formatOffset(wallAsUtcMs(wall) - t)}'`).join(' or ');
    throw fail(
      `${shown} is ambiguous in ${zone.label}: that wall time happens twice, at ${formatUtc(new Date(first))} ` +
        `and ${formatUtc(new Date(second))}; add an offset to choose, e.g. ${options}`,
    );
  }
  return new Date(first);
}

function readIn(zone: Zone): string {
  return zone.explicit ? '' : ` (read in ${zone.label})`;
}

/** Milliseconds to go back, undefined when the text is not relative at all. */
function readRelative(lower: string, shown: string): number | undefined {
  const past = /^-(.*)$/s.exec(lower) ?? /^(.+)\s+ago$/s.exec(lower);
  if (past !== null) {
    const result = readDuration(past[1] ?? '');
    if (!result.ok) {
      throw fail(
        `${shown} is not a valid relative time: ${result.reason}; units are ${DURATION_UNITS}, e.g. -15m, -1h30m or '2 hours ago'`,
      );
    }
    return result.ms;
  }
  const future = /^\+(.*)$/s.exec(lower) ?? /^in\s+(.+)$/s.exec(lower) ?? /^(.+)\s+from\s+now$/s.exec(lower);
  if (future !== null && readDuration(future[1] ?? '').ok) {
    throw fail(`${shown} points into the future; recovery targets are in the past, e.g. -15m or '15m ago'`);
  }
  // A bare `15m` could be read either way; forcing the direction avoids restoring to the wrong side of now.
  if (readDuration(lower).ok) throw fail(`${shown} has no direction; use -${lower} or '${lower} ago'`);
  return undefined;
}

/** Explanations for inputs that look like something we deliberately do not accept. */
function explainRejection(text: string, shown: string, zone: Zone): PitrError {
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    return fail(`${shown} has no time of day; add one, e.g. '${text} 14:03' (read in ${zone.label}) or '${text}T14:03Z'`);
  }
  const named = /^(?:\d{4}-\d{2}-\d{2}(?:t|\s+))?\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*([a-z][a-z_/+-]*)$/i.exec(text);
  if (named !== null) {
    // Abbreviations such as IST or CST each name several zones, so they are never guessed at.
    return fail(
      `${shown} names its zone as '${named[1]}', which is not accepted; write an offset such as +02:00, Z or UTC, ` +
        'or leave the zone off and set the time zone option',
    );
  }
  if (tryLsnToBigInt(text) !== undefined) {
    return fail(`${shown} is ambiguous: for an LSN write lsn:${text}; for a date write YYYY-MM-DD HH:MM`);
  }
  if (/^\d{1,4}\/\d{1,2}\/\d{1,4}\b/.test(text)) {
    return fail(`${shown} uses a slash date, which is ambiguous (day/month order); write YYYY-MM-DD HH:MM, e.g. '2026-11-25 14:03'`);
  }
  if (/^[+-]?\d+(?:\.\d+)?$/.test(text)) {
    return fail(`${shown} is a bare number; epochs are not accepted, ${examples(zone.label)}`);
  }
  return fail(`could not read ${shown} as a point in time; ${examples(zone.label)}`);
}

function withMicros(p: { kind: 'time'; at: Date; input: string }, fraction: string | undefined): PointInTime {
  const micros = Number((fraction ?? '').padEnd(6, '0').slice(3, 6));
  return micros > 0 ? { ...p, subMillisecondMicros: micros } : p;
}

/**
 * A transaction id: the 32-bit xid (pg_waldump's `tx:`), or a 64-bit one from pg_current_xact_id(),
 * whose low 32 bits are what recovery compares (the epoch is not part of the WAL's xid).
 */
function readXid(digits: string, shown: string): string {
  if (!/^\d{1,20}$/.test(digits)) {
    throw fail(`${shown} is not a valid transaction id; write xid: then the decimal id, e.g. xid:7342 (pg_waldump's tx:, or txid_current())`);
  }
  const xid = BigInt(digits) & 0xffff_ffffn;
  // 0-2 are Postgres' invalid, bootstrap and frozen ids: no commit record carries them.
  if (xid < 3n || BigInt(digits) > 0xffff_ffff_ffff_ffffn) throw fail(`${shown} is not a transaction id a commit can have; give a normal xid (3 or more)`);
  return xid.toString();
}

// ---------------------------------------------------------------------------------------------

/**
 * Reads a recovery target as a person would type it under pressure. Anything that could be read
 * two ways (date without time, slash dates, DST overlaps, `15m` without a direction) is refused
 * with a hint rather than guessed, because a wrong guess restores the wrong data.
 */
export function parsePointInTime(input: string, options: ParseTimeOptions = {}): PointInTime {
  const now = options.now ?? new Date();
  if (Number.isNaN(now.getTime())) throw new TypeError('parsePointInTime: options.now is an invalid Date');
  const text = input.trim();
  const shown = quote(text === '' ? input : text);

  // Checked even when the input carries its own zone: a bad zone setting is worth hearing about early.
  const timeZone = options.timeZone ?? 'UTC';
  // UTC (the default) needs no ICU zone data, whose first load is tens of ms of every start-up.
  const format = timeZone === 'UTC' ? null : zoneFormatter(timeZone);
  if (format === undefined) {
    throw fail(
      `unknown time zone ${quote(timeZone)} (reading ${shown}); use an IANA name such as UTC, Europe/Berlin or America/New_York`,
    );
  }
  const defaultZone = format ? ianaZone(format) : { ...fixedZone(0, 'UTC'), explicit: false };

  if (text === '') throw fail(`no point in time given (${shown}); ${examples(defaultZone.label)}`);

  const lower = text.toLowerCase();
  if (lower.startsWith('lsn:')) {
    const value = tryLsnToBigInt(text.slice(4));
    if (value === undefined) {
      throw fail(`${shown} is not a valid LSN; write lsn: then two groups of 1-8 hex digits, e.g. lsn:16/B374D848`);
    }
    if (value === 0n) throw fail(`${shown} is 0/0, which Postgres uses to mean "no LSN"; give a real WAL position`);
    return { kind: 'lsn', lsn: formatLsn(value), input: text };
  }

  if (lower.startsWith('xid:')) return { kind: 'xid', xid: readXid(text.slice(4), shown), input: text };

  if (lower.startsWith('snapshot:')) {
    const name = text.slice('snapshot:'.length);
    if (!SNAPSHOT_NAME.test(name)) {
      throw fail(`${shown} is not a valid snapshot reference; write snapshot: then the snapshot's name (letters, digits, . _ -), e.g. snapshot:pre-migration-0042`);
    }
    return { kind: 'snapshot', name, input: text };
  }

  const nowMs = now.getTime();
  if (lower === 'now') return { kind: 'time', at: new Date(nowMs), input: text };

  const back = readRelative(lower, shown);
  if (back !== undefined) {
    const at = new Date(nowMs - back);
    if (Number.isNaN(at.getTime())) throw fail(`${shown} reaches too far into the past; give a shorter span`);
    return { kind: 'time', at, input: text };
  }

  const full = DATE_TIME.exec(text);
  if (full?.groups !== undefined) {
    const g = full.groups;
    const date = readDate(g, shown);
    const clock = readClock(g, shown);
    const zone = readZone(g, shown, defaultZone);
    const at = resolveWall({ ...date, ...clock }, zone, shown, `${formatDate(date)} ${g.clock}`);
    if (at.getTime() > nowMs) {
      throw fail(`${shown}${readIn(zone)} is in the future: ${formatUtc(at)}, and now is ${formatUtc(now)}`);
    }
    return withMicros({ kind: 'time', at, input: text }, g.fraction);
  }

  const timeOnly = TIME_OF_DAY.exec(text);
  if (timeOnly?.groups !== undefined) {
    const g = timeOnly.groups;
    const clock = readClock(g, shown);
    const zone = readZone(g, shown, defaultZone);
    const today = zone.wallAt(nowMs);
    const at = resolveWall({ ...today, ...clock }, zone, shown, `${formatDate(today)} ${g.clock}`);
    if (at.getTime() > nowMs) {
      // Silently taking yesterday would turn a typo into a restore a whole day off; make it explicit.
      const yesterday = utcWall(wallAsUtcMs({ ...today, hour: 12, minute: 0, second: 0, ms: 0 }) - DAY_MS);
      throw fail(
        `${shown}${readIn(zone)} would be ${formatUtc(at)} today, which is in the future (now is ${formatUtc(now)}); ` +
          `for an earlier day give the full date, e.g. '${formatDate(yesterday)} ${text}'`,
      );
    }
    return withMicros({ kind: 'time', at, input: text }, g.fraction);
  }

  throw explainRejection(text, shown, defaultZone);
}

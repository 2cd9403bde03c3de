import { badInput } from '../errors.js';
import type { PointInTime } from '../time/index.js';
import type { Micros } from './bisect.js';

export function dateToMicros(d: Date, subMillisecondMicros = 0): Micros {
  return d.getTime() * 1000 + subMillisecondMicros;
}

export function pointToMicros(p: PointInTime): Micros {
  if (p.kind !== 'time') throw badInput('bad_time', `--since and --until take times, not ${p.input}`);
  return dateToMicros(p.at, p.subMillisecondMicros ?? 0);
}

export function microsToPointInTime(us: Micros): Extract<PointInTime, { kind: 'time' }> {
  const ms = Math.floor(us / 1000);
  const micros = us - ms * 1000;
  const at = new Date(ms);
  return { kind: 'time', at, input: microsToIso(us), ...(micros > 0 ? { subMillisecondMicros: micros } : {}) };
}

/** `2026-12-02T14:03:00.123456Z`: always six digits, so instants a microsecond apart differ. */
export function microsToIso(us: Micros): string {
  const second = Math.floor(us / 1_000_000);
  // A timeline formats every commit, hundreds in a second: the date part is made once per second.
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = new Date(second * 1000).toISOString().slice(0, -5);
  }
  return `${isoPrefix}.${String(us - second * 1_000_000).padStart(6, '0')}Z`;
}
let isoSecond = NaN;
let isoPrefix = '';

/** As recovery_target_time reads it: explicit +00 offset. */
export function microsToPostgres(us: Micros): string {
  return microsToIso(us).replace('T', ' ').replace(/Z$/, '+00');
}

/**
 * A timestamp as Postgres prints it in logs and pg_waldump (`2026-12-02 05:41:15.65755 UTC`,
 * `… +00`, `…+00:00`), to microseconds.
 */
export function parsePostgresMicros(text: string): Micros {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?\s*(UTC|[+-]\d{2}(?::?\d{2})?|Z)?$/.exec(text.trim());
  if (!m) throw new Error(`not a Postgres timestamp: ${text}`);
  const zone = !m[4] || m[4] === 'UTC' || m[4] === 'Z' ? 'Z' : m[4].length === 3 ? `${m[4]}:00` : m[4].includes(':') ? m[4] : `${m[4].slice(0, 3)}:${m[4].slice(3)}`;
  const seconds = Date.parse(`${m[1]}T${m[2]}${zone}`);
  return seconds * 1000 + Number((m[3] ?? '').padEnd(6, '0'));
}

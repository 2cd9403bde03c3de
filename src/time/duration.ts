import { badInput } from '../errors.js';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

/**
 * Unit spellings, largest first. No months or years on purpose: their length varies, and a
 * recovery window is never that long, so `-5y` is far more likely a typo than a wish.
 */
const UNITS: ReadonlyArray<{ ms: number; names: readonly string[] }> = [
  { ms: WEEK, names: ['w', 'wk', 'wks', 'week', 'weeks'] },
  { ms: DAY, names: ['d', 'day', 'days'] },
  { ms: HOUR, names: ['h', 'hr', 'hrs', 'hour', 'hours'] },
  { ms: MINUTE, names: ['m', 'min', 'mins', 'minute', 'minutes'] },
  { ms: SECOND, names: ['s', 'sec', 'secs', 'second', 'seconds'] },
];

export const DURATION_UNITS = 's, m, h, d and w';

export type DurationResult = { ok: true; ms: number } | { ok: false; reason: string };

/**
 * Reads `1h30m`, `15 minutes`, `1 hour 30 min` and the like. Returns a short reason instead of
 * throwing so that callers (durations, relative times) can word the error, examples and error
 * code for their own context. Zero is allowed here; whether zero makes sense is the caller's call.
 */
export function readDuration(text: string): DurationResult {
  const body = text.trim().toLowerCase();
  if (body === '') return { ok: false, reason: 'it is empty' };
  if (/^\d+$/.test(body)) return { ok: false, reason: `${body} has no unit` };
  if (/\d[.,]\d/.test(body)) return { ok: false, reason: 'use whole numbers (1h30m, not 1.5h)' };

  // Sticky: each term must start exactly where the previous one ended, so nothing is skipped.
  const term = /\s*(\d+)\s*([a-z]+)\s*/y;
  let total = 0;
  let previousUnit = -1;
  while (term.lastIndex < body.length) {
    const match = term.exec(body);
    if (match === null) return { ok: false, reason: 'expected numbers each followed by a unit' };
    const [, digits = '', unitName = ''] = match;
    const unitIndex = UNITS.findIndex((unit) => unit.names.includes(unitName));
    if (unitIndex === -1) return { ok: false, reason: `unknown unit '${unitName}'` };
    // `30m1h` or `1h1h` is almost certainly a typo; refusing it beats guessing what was meant.
    if (unitIndex <= previousUnit) return { ok: false, reason: 'give each unit once, largest first' };
    previousUnit = unitIndex;
    total += Number(digits) * (UNITS[unitIndex]?.ms ?? 0);
  }
  if (!Number.isSafeInteger(total)) return { ok: false, reason: 'it is too large' };
  return { ok: true, ms: total };
}

/** A positive span of time in milliseconds: `24h`, `90s`, `15m`, `7d`, `1h30m`, `2w`. */
export function parseDuration(input: string): number {
  const shown = JSON.stringify(input.trim() === '' ? input : input.trim());
  if (input.trim().startsWith('-')) {
    throw badInput('bad_duration', `duration ${shown} is negative; give a positive length such as 15m or 24h`);
  }
  const result = readDuration(input);
  if (!result.ok) {
    throw badInput(
      'bad_duration',
      `${shown} is not a valid duration: ${result.reason}; units are ${DURATION_UNITS}, e.g. 90s, 15m, 1h30m, 7d or 2w`,
    );
  }
  if (result.ms === 0) throw badInput('bad_duration', `duration ${shown} is zero; give a positive length such as 15m or 24h`);
  return result.ms;
}

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mulberry32 } from '../support/random.js';
import { PitrError } from '../../src/errors.js';
import {
  DEFAULT_RETENTION,
  RETENTION_RULES,
  parseRetentionPolicy,
  planRetention,
  type RetainedItem,
  type RetentionPolicy,
  type RetentionRule,
} from '../../src/retention/gfs.js';

interface Snap {
  id: number;
  at: Date;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T2019 = Date.UTC(2019, 0, 1);
const T2027 = Date.UTC(2027, 0, 1);
const ZONES = ['UTC', 'America/Los_Angeles', 'Europe/Berlin', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'Pacific/Apia', 'America/Santiago'];
const NONE: RetentionPolicy = { daily: 0, weekly: 0, monthly: 0, yearly: 0 };

const timeOf = (s: Snap): Date => s.at;
const snaps = (times: readonly (string | number)[]): Snap[] => times.map((t, id) => ({ id, at: new Date(t) }));
const plan = (items: Snap[], policy: Partial<RetentionPolicy>, timeZone?: string): RetainedItem<Snap>[] =>
  planRetention(items, timeOf, { ...NONE, ...policy }, timeZone === undefined ? {} : { timeZone });
const keptIds = (result: RetainedItem<Snap>[]): number[] => result.filter((r) => r.keep).map((r) => r.item.id);
const reasonsById = (result: RetainedItem<Snap>[]): Map<number, string[]> =>
  new Map(result.filter((r) => r.keep).map((r) => [r.item.id, r.reasons]));

function rejection(fn: () => unknown): PitrError {
  try {
    fn();
  } catch (error) {
    if (error instanceof PitrError) return error;
    throw error;
  }
  throw new Error('expected a PitrError');
}

// ---------------------------------------------------------------------------------------------
// Reference: a deliberately different implementation. Local dates come from an en-CA formatter
// ("2026-11-25"), ISO weeks from counting Mondays, and each rule groups every item by period first,
// then ranks whole periods by their newest item.

const isoDates = new Map<string, Intl.DateTimeFormat>();
const dateCache = new Map<string, string>(); // the reference asks once per rule; formatting is the slow part
function localDate(ms: number, timeZone: string): string {
  const cacheKey = `${timeZone} ${ms}`;
  let date = dateCache.get(cacheKey);
  if (date === undefined) {
    let f = isoDates.get(timeZone);
    if (!f) {
      f = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
      isoDates.set(timeZone, f);
    }
    date = f.format(ms);
    if (dateCache.size > 200_000) dateCache.clear();
    dateCache.set(cacheKey, date);
  }
  return date;
}

function referenceIsoWeek(date: string): string {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const dayNumber = Date.UTC(y, m - 1, d) / DAY;
  const mondayOf = (n: number): number => n - ((n + 3) % 7); // 1970-01-01 was a Thursday
  const monday = mondayOf(dayNumber);
  // Week 1 is the week holding January 4th.
  for (const year of [y + 1, y, y - 1]) {
    const week1 = mondayOf(Date.UTC(year, 0, 4) / DAY);
    if (week1 <= monday) return `${year}-W${String((monday - week1) / 7 + 1).padStart(2, '0')}`;
  }
  throw new Error('unreachable');
}

function referenceKey(rule: RetentionRule, date: string): string {
  switch (rule) {
    case 'daily':
      return date;
    case 'weekly':
      return referenceIsoWeek(date);
    case 'monthly':
      return date.slice(0, 7);
    case 'yearly':
      return date.slice(0, 4);
  }
}

/** Newer first; on equal times the earlier input position counts as newer. */
const newer = (a: Snap, b: Snap): boolean => a.at.getTime() > b.at.getTime() || (a.at.getTime() === b.at.getTime() && a.id < b.id);

/** period key -> newest item of that period, periods newest first. */
function periodsOf(items: Snap[], rule: RetentionRule, timeZone: string): [string, Snap][] {
  const groups = new Map<string, Snap[]>();
  for (const s of items) {
    const key = referenceKey(rule, localDate(s.at.getTime(), timeZone));
    const group = groups.get(key);
    if (group) group.push(s);
    else groups.set(key, [s]);
  }
  const newest = [...groups].map(([key, group]): [string, Snap] => [key, group.reduce((a, b) => (newer(b, a) ? b : a))]);
  return newest.sort(([, a], [, b]) => (newer(a, b) ? -1 : 1));
}

function referencePlan(items: Snap[], policy: RetentionPolicy, timeZone: string): Map<number, string[]> {
  const reasons = new Map<number, string[]>();
  const add = (s: Snap, reason: string): void => void reasons.set(s.id, [...(reasons.get(s.id) ?? []), reason]);
  if (items.length > 0) add(items.reduce((a, b) => (newer(b, a) ? b : a)), 'newest');
  for (const rule of RETENTION_RULES) {
    for (const [key, s] of periodsOf(items, rule, timeZone).slice(0, policy[rule])) add(s, `${rule} ${key}`);
  }
  return reasons;
}

// ---------------------------------------------------------------------------------------------
// Generators

const anyInstant = fc.integer({ min: T2019, max: T2027 - 1 });
// Whole days and noons collide often, which exercises ties and period boundaries.
const instant = fc.oneof(
  anyInstant,
  fc.integer({ min: 0, max: 2921 }).map((d) => T2019 + d * DAY),
  fc.integer({ min: 0, max: 2921 }).map((d) => T2019 + d * DAY + 12 * HOUR),
);
const randomSnaps = fc.array(instant, { maxLength: 400 }).map(snaps);
const count = fc.integer({ min: 0, max: 40 });
const policyArb = fc.record({ daily: count, weekly: count, monthly: count, yearly: count });
const zone = fc.constantFrom(...ZONES);

/** About one backup a day at a fixed hour with jitter, some days missed, some with extra runs. */
const realisticSnaps = fc
  .record({ startDay: fc.integer({ min: 0, max: 365 }), years: fc.integer({ min: 3, max: 8 }), hour: fc.integer({ min: 0, max: 23 }), seed: fc.integer() })
  .map(({ startDay, years, hour, seed }) => {
    const random = mulberry32(seed);
    const times: number[] = [];
    for (let d = 0; d < years * 365; d++) {
      const day = T2019 + (startDay + d) * DAY + hour * HOUR;
      if (random() < 0.05) continue;
      times.push(day + Math.round((random() - 0.5) * 3 * HOUR));
      while (random() < 0.1) times.push(day + Math.floor(random() * DAY));
    }
    return snaps(times);
  });

// ---------------------------------------------------------------------------------------------

describe('planRetention examples', () => {
  it('hourly backups over three days with daily 2 keep the last one of the two newest days', () => {
    const items = snaps(Array.from({ length: 72 }, (_, h) => Date.UTC(2026, 10, 23) + h * HOUR));
    const result = plan(items, { daily: 2 });
    expect(result.map((r) => r.item.id)).toEqual(Array.from({ length: 72 }, (_, i) => 71 - i));
    expect(keptIds(result)).toEqual([71, 47]);
    expect(result[0]!.reasons).toEqual(['newest', 'daily 2026-11-25']);
    expect(result[24]!.reasons).toEqual(['daily 2026-11-24']);
    expect(result[1]).toMatchObject({ keep: false, reasons: ['outside daily 2 / weekly 0 / monthly 0 / yearly 0'] });
  });

  it('lists every reason an item is kept for', () => {
    const result = plan(snaps(['2026-11-25T10:00:00Z']), DEFAULT_RETENTION);
    expect(result).toEqual([
      {
        item: expect.objectContaining({ id: 0 }),
        time: new Date('2026-11-25T10:00:00Z'),
        keep: true,
        reasons: ['newest', 'daily 2026-11-25', 'weekly 2026-W48', 'monthly 2026-11', 'yearly 2026'],
      },
    ]);
  });

  it.each([
    ['2025-12-28T12:00:00Z', '2025-W52'],
    ['2025-12-29T00:00:00Z', '2026-W01'], // a Monday in December that starts 2026's first week
    ['2026-01-04T23:59:59Z', '2026-W01'],
    ['2021-01-03T12:00:00Z', '2020-W53'], // a Sunday in January still in 2020's last week
    ['2026-12-31T12:00:00Z', '2026-W53'],
    ['2027-01-03T12:00:00Z', '2026-W53'],
    ['2027-01-04T00:00:00Z', '2027-W01'],
  ])('ISO week of %s is %s', (at, week) => {
    expect(plan(snaps([at]), { weekly: 1 })[0]!.reasons).toContain(`weekly ${week}`);
  });

  it('counts ISO weeks, not calendar years, across New Year', () => {
    // Sunday 2025-12-28 (W52), Monday 2025-12-29 and Sunday 2026-01-04 (both W01).
    const result = plan(snaps(['2025-12-28T12:00:00Z', '2025-12-29T12:00:00Z', '2026-01-04T12:00:00Z']), { weekly: 2 });
    expect(keptIds(result)).toEqual([2, 0]);
    expect(reasonsById(result).get(0)).toEqual(['weekly 2025-W52']);
  });

  it('reads periods in the given time zone', () => {
    const at = '2026-03-08T07:30:00Z';
    expect(plan(snaps([at]), { daily: 1 })[0]!.reasons).toContain('daily 2026-03-08');
    expect(plan(snaps([at]), { daily: 1 }, 'America/Los_Angeles')[0]!.reasons).toContain('daily 2026-03-07');
    // New Year's Eve in Los Angeles is already next year in UTC, and New Year in Berlin.
    expect(plan(snaps(['2027-01-01T03:00:00Z']), { ...DEFAULT_RETENTION }, 'America/Los_Angeles')[0]!.reasons).toEqual([
      'newest',
      'daily 2026-12-31',
      'weekly 2026-W53',
      'monthly 2026-12',
      'yearly 2026',
    ]);
    expect(plan(snaps(['2026-12-31T23:30:00Z']), { yearly: 1 }, 'Europe/Berlin')[0]!.reasons).toContain('yearly 2027');
  });

  it.each([
    // Spring forward: 2026-03-08 in Los Angeles runs 08:00Z (PST) to 07:00Z next day (PDT), 23 hours.
    ['2026-03-08T08:00:00Z', '2026-03-09T06:59:59Z', '2026-03-09T07:00:00Z', '2026-03-08', '2026-03-09'],
    // Fall back: 2026-11-01 runs 07:00Z (PDT) to 08:00Z next day (PST), 25 hours.
    ['2026-11-01T07:00:00Z', '2026-11-02T07:59:59Z', '2026-11-02T08:00:00Z', '2026-11-01', '2026-11-02'],
  ])('a DST day in Los Angeles starting %s is one day', (first, last, next, day, nextDay) => {
    const result = plan(snaps([first, last, next, new Date(new Date(first).getTime() - 1).toISOString()]), { daily: 10 }, 'America/Los_Angeles');
    expect(result.map((r) => [r.item.id, r.keep])).toEqual([
      [2, true],
      [1, true],
      [0, false],
      [3, true],
    ]);
    expect(result[0]!.reasons).toEqual(['newest', `daily ${nextDay}`]);
    expect(result[1]!.reasons).toEqual([`daily ${day}`]);
  });

  it('handles years before 100 and before year 1 the same with and without a zone', () => {
    const reasonsAt = (at: string, timeZone: string): string[] => plan(snaps([at]), { ...DEFAULT_RETENTION }, timeZone)[0]!.reasons;
    // The Gregorian calendar repeats every 400 years, weekdays and ISO weeks included.
    expect(reasonsAt('0050-06-15T12:00:00Z', 'UTC')).toEqual(reasonsAt('2450-06-15T12:00:00Z', 'UTC').map((r) => r.replace('2450', '0050')));
    for (const at of ['0050-06-15T12:00:00Z', '-000001-06-15T12:00:00Z']) {
      expect(reasonsAt(at, 'Asia/Kathmandu')).toEqual(reasonsAt(at, 'UTC'));
    }
    expect(reasonsAt('-000001-06-15T12:00:00Z', 'UTC')).toContain('yearly -0001');
  });

  it('a zero policy keeps only the newest; no items, no plan', () => {
    const result = plan(snaps(['2026-01-01T00:00:00Z', '2026-06-01T00:00:00Z', '2025-01-01T00:00:00Z']), NONE);
    expect(keptIds(result)).toEqual([1]);
    expect(result[0]!.reasons).toEqual(['newest']);
    expect(plan([], DEFAULT_RETENTION)).toEqual([]);
  });

  it('breaks ties by input order, the earlier item counting as newer', () => {
    const result = plan(snaps(['2026-01-01T00:00:00Z', '2026-05-05T00:00:00Z', '2026-05-05T00:00:00Z']), { daily: 5 });
    expect(result.map((r) => [r.item.id, r.reasons])).toEqual([
      [1, ['newest', 'daily 2026-05-05']],
      [2, ['outside daily 5 / weekly 0 / monthly 0 / yearly 0']],
      [0, ['daily 2026-01-01']],
    ]);
  });

  it('keeps the expected structure with the default policy over eight years of daily backups', () => {
    const start = Date.UTC(2018, 10, 26, 2);
    const items = snaps(Array.from({ length: (Date.UTC(2026, 10, 25) - Date.UTC(2018, 10, 26)) / DAY + 1 }, (_, d) => start + d * DAY));
    const kept = plan(items, DEFAULT_RETENTION)
      .filter((r) => r.keep)
      .map((r) => r.time.toISOString().slice(0, 10));
    const daily = Array.from({ length: 30 }, (_, i) => new Date(Date.UTC(2026, 10, 25 - i)).toISOString().slice(0, 10));
    // 2026-11-25 is a Wednesday; weeks 43..48 end inside the 30 daily ones, the 7 older weeks on Sundays.
    const weekly = ['2026-10-25', '2026-10-18', '2026-10-11', '2026-10-04', '2026-09-27', '2026-09-20', '2026-09-13'];
    const monthly = ['2026-09-30', '2026-08-31', '2026-07-31', '2026-06-30', '2026-05-31', '2026-04-30', '2026-03-31', '2026-02-28', '2026-01-31', '2025-12-31'];
    const yearly = ['2024-12-31', '2023-12-31', '2022-12-31', '2021-12-31', '2020-12-31'];
    expect(kept).toEqual([...daily, ...weekly, ...monthly, ...yearly].sort().reverse());
    expect(kept).toHaveLength(52);
  });
});

describe('retention input checks', () => {
  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '3' as unknown as number])('refuses a count of %s', (bad) => {
    const error = rejection(() => plan(snaps(['2026-01-01T00:00:00Z']), { monthly: bad }));
    expect(error.code).toBe('bad_retention');
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/^retention monthly must be a whole number of 0 or more, got /);
    expect(error.message).not.toContain('\n');
  });

  it('refuses invalid dates and unknown time zones', () => {
    const invalid = rejection(() => plan(snaps(['2026-01-01T00:00:00Z', 'not a date']), DEFAULT_RETENTION));
    expect(invalid).toMatchObject({ code: 'bad_time', exitClass: 'usage' });
    expect(invalid.message).toContain('backup 2 of 2');
    const zoneError = rejection(() => plan(snaps(['2026-01-01T00:00:00Z']), DEFAULT_RETENTION, 'Mars/Olympus'));
    expect(zoneError).toMatchObject({ code: 'bad_time', exitClass: 'usage' });
    expect(zoneError.message).toContain('"Mars/Olympus"');
  });

  it('parseRetentionPolicy reads numbers and digit strings, fills defaults, refuses the rest', () => {
    expect(parseRetentionPolicy({})).toEqual(DEFAULT_RETENTION);
    expect(parseRetentionPolicy({ daily: '7', yearly: 0 })).toEqual({ ...DEFAULT_RETENTION, daily: 7, yearly: 0 });
    expect(parseRetentionPolicy({ weekly: 4 }, NONE)).toEqual({ ...NONE, weekly: 4 });
    for (const bad of [{ daily: '-1' }, { daily: 'ten' }, { daily: '' }, { weekly: 2.5 }, { monthly: null }, { dayly: 3 }]) {
      expect(rejection(() => parseRetentionPolicy(bad)).code).toBe('bad_retention');
    }
    expect(rejection(() => parseRetentionPolicy({ dayly: 3 })).message).toBe('unknown retention rule "dayly"; use daily, weekly, monthly, yearly');
    expect(Object.isFrozen(DEFAULT_RETENTION)).toBe(true);
  });
});

describe('planRetention properties', () => {
  const checkAgainstReference = (items: Snap[], policy: RetentionPolicy, timeZone: string): void => {
    const result = planRetention(items, timeOf, policy, { timeZone });

    // Output is the input, newest first, each item once.
    expect(result.map((r) => r.item.id).sort((a, b) => a - b)).toEqual(items.map((s) => s.id));
    expect(result.every((r, i) => i === 0 || newer(result[i - 1]!.item, r.item))).toBe(true);

    // 1. The newest item is never deleted.
    if (items.length > 0) expect(result[0]).toMatchObject({ keep: true, reasons: expect.arrayContaining(['newest']) });

    // 2. Each item kept for a rule is the newest of its period, and min(N, periods) periods are kept.
    for (const rule of RETENTION_RULES) {
      const periods = new Map(periodsOf(items, rule, timeZone));
      const keptFor = result.flatMap((r) => r.reasons.filter((reason) => reason.startsWith(`${rule} `)).map((reason) => [reason.slice(rule.length + 1), r.item] as const));
      expect(keptFor.every(([key, item]) => periods.get(key) === item)).toBe(true);
      expect(new Set(keptFor.map(([key]) => key)).size).toBe(keptFor.length);
      expect(keptFor).toHaveLength(Math.min(policy[rule], periods.size));
    }

    // Same keeps and reasons as the reference, everything else deleted.
    expect(reasonsById(result)).toEqual(referencePlan(items, policy, timeZone));

    // 5. Never more than one item per kept period plus the newest.
    expect(keptIds(result).length).toBeLessThanOrEqual(1 + policy.daily + policy.weekly + policy.monthly + policy.yearly);

    // 3. Idempotent: planning again over what was kept keeps all of it, for the same reasons.
    const kept = result.filter((r) => r.keep);
    const again = planRetention(
      kept.map((r) => r.item),
      timeOf,
      policy,
      { timeZone },
    );
    expect(again.every((r) => r.keep)).toBe(true);
    expect(reasonsById(again)).toEqual(reasonsById(result));
  };

  it('match the reference on random timestamps, 2019-2026', () => {
    fc.assert(
      fc.property(randomSnaps, policyArb, zone, (items, policy, timeZone) => checkAgainstReference(items, policy, timeZone)),
      { numRuns: 150 },
    );
  });

  it('match the reference on realistic multi-year daily series', () => {
    fc.assert(
      fc.property(realisticSnaps, policyArb, fc.constantFrom('UTC', 'America/Los_Angeles'), (items, policy, timeZone) =>
        checkAgainstReference(items, policy, timeZone),
      ),
      { numRuns: 20 },
    );
  });

  it('4. are monotone: raising a count never deletes what was kept', () => {
    fc.assert(
      fc.property(
        fc.oneof(randomSnaps, realisticSnaps),
        policyArb,
        fc.constantFrom(...RETENTION_RULES),
        fc.integer({ min: 1, max: 40 }),
        zone,
        (items, policy, rule, extra, timeZone) => {
          const before = new Set(keptIds(planRetention(items, timeOf, policy, { timeZone })));
          const after = new Set(keptIds(planRetention(items, timeOf, { ...policy, [rule]: policy[rule] + extra }, { timeZone })));
          for (const id of before) expect(after.has(id)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('keep exactly the reference structure for the default policy over eight daily years', () => {
    fc.assert(
      fc.property(realisticSnaps, zone, (items, timeZone) => {
        const result = planRetention(items, timeOf, DEFAULT_RETENTION, { timeZone });
        expect(reasonsById(result)).toEqual(referencePlan(items, DEFAULT_RETENTION, timeZone));
        // Years of near-daily backups fill every rule, so at least the 30 daily ones and at most 1 + 61 survive.
        expect(keptIds(result).length).toBeGreaterThanOrEqual(30);
        expect(keptIds(result).length).toBeLessThanOrEqual(61);
      }),
      { numRuns: 15 },
    );
  });
});

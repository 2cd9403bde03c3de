// src/retention: which backups, exports and snapshots a GFS policy keeps, pure planning.
// Core: must not import src/cli, src/db or a provider implementation; it decides, callers delete.
// Pure: no clock and no I/O, so a plan can be shown (and tested) before anything is deleted.
import { badInput } from '../errors.js';
import { zoneFormatter } from '../time/zones.js';

/**
 * Grandfather-father-son retention, as restic and borg do it: keep the newest backup of each of
 * the last N days, ISO weeks, months and years. Pure, so a plan can be shown before anything is
 * deleted and tested without a clock.
 */
export interface RetentionPolicy {
  daily: number;
  weekly: number;
  monthly: number;
  yearly: number;
}

export type RetentionRule = keyof RetentionPolicy;

export const RETENTION_RULES: readonly RetentionRule[] = ['daily', 'weekly', 'monthly', 'yearly'];

// Frozen because it is shared: a caller tweaking "its" policy must not change everyone's default.
export const DEFAULT_RETENTION: Readonly<RetentionPolicy> = Object.freeze({ daily: 30, weekly: 12, monthly: 12, yearly: 7 });

export interface RetainedItem<T> {
  item: T;
  time: Date;
  keep: boolean;
  /** Why it is kept ("newest", "daily 2026-11-25", "weekly 2026-W48", ...), or why not. */
  reasons: string[];
}

export interface PlanRetentionOptions {
  /** IANA zone whose calendar decides where days, weeks, months and years begin; default UTC. */
  timeZone?: string;
}

/** "daily 30 / weekly 12 / monthly 12 / yearly 7" */
export function describeRetentionPolicy(policy: RetentionPolicy): string {
  return RETENTION_RULES.map((rule) => `${rule} ${policy[rule]}`).join(' / ');
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function checkCount(rule: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw badInput('bad_retention', `retention ${rule} must be a whole number of 0 or more, got ${show(value)}`);
  }
  return value;
}

/**
 * Reads counts from config or flags, where they may arrive as text ("30"); missing rules fall back
 * to `defaults`. Unknown rules are refused because a typo ("dayly") would otherwise silently keep
 * the default and delete more than the user asked for.
 */
export function parseRetentionPolicy(
  input: Readonly<Record<string, unknown>>,
  defaults: RetentionPolicy = DEFAULT_RETENTION,
): RetentionPolicy {
  for (const key of Object.keys(input)) {
    if (!(RETENTION_RULES as readonly string[]).includes(key)) {
      throw badInput('bad_retention', `unknown retention rule ${show(key)}; use ${RETENTION_RULES.join(', ')}`);
    }
  }
  const policy = { ...defaults };
  for (const rule of RETENTION_RULES) {
    const raw = input[rule];
    if (raw === undefined) continue;
    policy[rule] = checkCount(rule, typeof raw === 'string' && /^\s*\d+\s*$/.test(raw) ? Number(raw) : raw);
  }
  return policy;
}

// ---------------------------------------------------------------------------------------------
// Calendar periods

interface CalendarDay {
  year: number;
  month: number;
  day: number;
}

const DAY_MS = 86_400_000;
/** The zone's calendar date parts (the shared formatter of src/time; extra time parts are ignored). */
function zoneFormatterOrFail(timeZone: string): Intl.DateTimeFormat {
  const format = zoneFormatter(timeZone);
  if (!format) throw badInput('bad_time', `unknown time zone ${show(timeZone)}; use an IANA name such as UTC, Europe/Berlin or America/New_York`);
  return format;
}

// Calendar fields, not offsets: a DST day has 23 or 25 hours, and only the zone's own calendar knows.
function calendarDay(ms: number, format: Intl.DateTimeFormat | null): CalendarDay {
  if (format === null) {
    // UTC needs no zone data, and skipping Intl keeps plans over years of backups fast.
    const d = new Date(ms);
    return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
  }
  const parts: Record<string, string> = {};
  for (const part of format.formatToParts(ms)) parts[part.type] = part.value;
  const year = Number(parts.year);
  return { year: parts.era === 'BC' ? 1 - year : year, month: Number(parts.month), day: Number(parts.day) };
}

/** Midnight UTC of a calendar date; Date.UTC would read years 0-99 as 1900-1999. */
function utcMidnight(year: number, month: number, day: number): Date {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return date;
}

// ISO 8601: a week belongs to the year holding its Thursday, so 2025-12-29 (a Monday) is 2026-W01.
function isoWeek({ year, month, day }: CalendarDay): { year: number; week: number } {
  const thursday = utcMidnight(year, month, day);
  thursday.setUTCDate(thursday.getUTCDate() + 4 - (thursday.getUTCDay() || 7));
  const weekYear = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - utcMidnight(weekYear, 1, 1).getTime()) / DAY_MS / 7) + 1;
  return { year: weekYear, week };
}

const pad2 = (n: number): string => String(n).padStart(2, '0');
const yearText = (y: number): string => (y < 0 ? `-${String(-y).padStart(4, '0')}` : String(y).padStart(4, '0'));

function periodKeys(date: CalendarDay): Record<RetentionRule, string> {
  const year = yearText(date.year);
  const week = isoWeek(date);
  return {
    daily: `${year}-${pad2(date.month)}-${pad2(date.day)}`,
    weekly: `${yearText(week.year)}-W${pad2(week.week)}`,
    monthly: `${year}-${pad2(date.month)}`,
    yearly: year,
  };
}

// ---------------------------------------------------------------------------------------------
// Planning

/**
 * Decides which items to keep, newest first. For each rule the newest item of each period is kept
 * until `policy[rule]` distinct periods are covered; the newest item overall is always kept, so a
 * zero policy can never delete the last backup. Items with equal times keep their input order (the
 * earlier one counts as newer), so the plan is deterministic.
 */
export function planRetention<T>(
  items: readonly T[],
  timeOf: (item: T) => Date,
  policy: RetentionPolicy,
  options: PlanRetentionOptions = {},
): RetainedItem<T>[] {
  for (const rule of RETENTION_RULES) checkCount(rule, policy[rule]);
  const timeZone = options.timeZone ?? 'UTC';
  const format = timeZone === 'UTC' ? null : zoneFormatterOrFail(timeZone);

  const dated = items.map((item, index) => {
    const ms = timeOf(item).getTime();
    if (Number.isNaN(ms)) {
      throw badInput('bad_time', `backup ${index + 1} of ${items.length} has an invalid time; cannot decide what to keep`);
    }
    return { item, ms, index };
  });
  dated.sort((a, b) => b.ms - a.ms || a.index - b.index);

  // A set rather than "last period seen": it stays right even if a zone's calendar ever steps back.
  const kept = Object.fromEntries(RETENTION_RULES.map((rule) => [rule, new Set<string>()])) as Record<RetentionRule, Set<string>>;
  const isFull = (rule: RetentionRule): boolean => kept[rule].size >= policy[rule];
  const outside = `outside ${describeRetentionPolicy(policy)}`;

  return dated.map(({ item, ms }, rank) => {
    const reasons = rank === 0 ? ['newest'] : [];
    // Once every rule is full nothing older can be kept, so long histories skip the calendar work.
    if (!RETENTION_RULES.every(isFull)) {
      const keys = periodKeys(calendarDay(ms, format));
      for (const rule of RETENTION_RULES) {
        if (!isFull(rule) && !kept[rule].has(keys[rule])) {
          kept[rule].add(keys[rule]);
          reasons.push(`${rule} ${keys[rule]}`);
        }
      }
    }
    const keep = reasons.length > 0;
    return { item, time: new Date(ms), keep, reasons: keep ? reasons : [outside] };
  });
}

/**
 * Wall-clock times and time zones for the time parser: fixed offsets and IANA zones (through
 * Intl), with every instant a wall time can stand for (DST gaps and overlaps). No parsing here.
 */

export const DAY_MS = 24 * 60 * 60 * 1000;

export interface WallTime {
  year: number;
  month: number; // 1-12
  day: number;
  hour: number;
  minute: number;
  second: number;
  ms: number;
}

/** Epoch milliseconds of a wall time read as if it were UTC. */
export function wallAsUtcMs(w: WallTime): number {
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear does not.
  const d = new Date(0);
  d.setUTCFullYear(w.year, w.month - 1, w.day);
  d.setUTCHours(w.hour, w.minute, w.second, w.ms);
  return d.getTime();
}

export function utcWall(epochMs: number): WallTime {
  const d = new Date(epochMs);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
    ms: d.getUTCMilliseconds(),
  };
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

export function formatDate(w: Pick<WallTime, 'year' | 'month' | 'day'>): string {
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}`;
}

export function formatOffset(offsetMs: number): string {
  const minutes = Math.round(Math.abs(offsetMs) / 60_000);
  return `${offsetMs < 0 ? '-' : '+'}${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`;
}

export interface Zone {
  /** For messages: `UTC`, `+02:00`, `Europe/Berlin`. */
  label: string;
  /** Written in the input (Z, UTC, +02:00) rather than taken from options.timeZone. */
  explicit: boolean;
  wallAt(epochMs: number): WallTime;
  /** Every instant showing this wall time: none inside a DST gap, two inside a DST overlap. */
  instantsAt(wall: WallTime): number[];
  /** The zone's offsets (ms) a day either side of a wall time, to explain a gap. */
  offsetsAround(wall: WallTime): [before: number, after: number];
}

export function fixedZone(offsetMinutes: number, label: string): Zone {
  const offsetMs = offsetMinutes * 60_000;
  return {
    label,
    explicit: true,
    wallAt: (epochMs) => utcWall(epochMs + offsetMs),
    instantsAt: (wall) => [wallAsUtcMs(wall) - offsetMs],
    offsetsAround: () => [offsetMs, offsetMs],
  };
}

const formatters = new Map<string, Intl.DateTimeFormat>();

export function zoneFormatter(timeZone: string): Intl.DateTimeFormat | undefined {
  let format = formatters.get(timeZone);
  if (format === undefined) {
    try {
      // Pinned calendar and digits so the parts parse as Gregorian numbers whatever the host locale.
      format = new Intl.DateTimeFormat('en-US-u-ca-gregory-nu-latn', {
        timeZone,
        // era lets us tell 1 BC from AD 1; hourCycle h23 avoids the "24:00" some ICU builds emit at midnight.
        era: 'short',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
        hourCycle: 'h23',
      });
    } catch {
      return undefined; // RangeError: unknown time zone
    }
    formatters.set(timeZone, format);
  }
  return format;
}

export function ianaZone(format: Intl.DateTimeFormat): Zone {
  const wallAt = (epochMs: number): WallTime => {
    const parts: Record<string, string> = {};
    for (const part of format.formatToParts(new Date(epochMs))) parts[part.type] = part.value;
    const year = Number(parts.year);
    return {
      year: parts.era === 'BC' ? 1 - year : year,
      month: Number(parts.month),
      day: Number(parts.day),
      hour: Number(parts.hour) % 24,
      minute: Number(parts.minute),
      second: Number(parts.second),
      // Intl does not print milliseconds, and zone offsets are whole seconds, so carry them over.
      ms: ((epochMs % 1000) + 1000) % 1000,
    };
  };
  const offsetAt = (epochMs: number): number => wallAsUtcMs(wallAt(epochMs)) - epochMs;
  return {
    label: format.resolvedOptions().timeZone,
    explicit: false,
    wallAt,
    instantsAt(wall) {
      // Intl only maps instant -> wall time, so invert it: try each offset the zone uses around
      // that day and keep the ones that map back. Zones never change offset twice within a day.
      const local = wallAsUtcMs(wall);
      const offsets = new Set([local - DAY_MS, local, local + DAY_MS].map(offsetAt));
      const instants = [...offsets].map((offset) => local - offset).filter((t) => offsetAt(t) === local - t);
      return [...new Set(instants)].sort((a, b) => a - b);
    },
    offsetsAround(wall) {
      const local = wallAsUtcMs(wall);
      return [offsetAt(local - DAY_MS), offsetAt(local + DAY_MS)];
    },
  };
}

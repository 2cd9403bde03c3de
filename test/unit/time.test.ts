import { describe, expect, it } from 'vitest';
import { PitrError } from '../../src/errors.js';
import {
  compareLsn,
  describePointInTime,
  formatCompactUtc,
  formatUtc,
  lsnToBigInt,
  parseDuration,
  parsePointInTime,
  type ParseTimeOptions,
  type PointInTime,
} from '../../src/time/index.js';

const NOW = new Date('2026-11-25T15:00:00Z');

function at(input: string, options: Omit<ParseTimeOptions, 'now'> = {}): string {
  const p = parsePointInTime(input, { now: NOW, ...options });
  if (p.kind !== 'time') throw new Error(`expected a time for ${input}, got ${p.kind}`);
  return formatUtc(p.at);
}

/** Runs fn, expecting a usage PitrError with the given code; returns it for further checks. */
function rejection(fn: () => unknown, code = 'bad_time'): PitrError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(PitrError);
  const error = caught as PitrError;
  expect(error.code).toBe(code);
  expect(error.exitCode).toBe(2);
  expect(error.message).not.toContain('\n');
  return error;
}

function rejectTime(input: string, options: Omit<ParseTimeOptions, 'now'> = {}): string {
  const error = rejection(() => parsePointInTime(input, { now: NOW, ...options }));
  expect(error.message).toContain(input.trim() === '' ? JSON.stringify(input) : input.trim());
  return error.message;
}

describe('parsePointInTime: ISO 8601 with a zone', () => {
  it.each([
    ['2026-11-25T14:03:00Z', '2026-11-25T14:03:00Z'],
    ['2026-11-25T14:03Z', '2026-11-25T14:03:00Z'],
    ['2026-11-25 14:03Z', '2026-11-25T14:03:00Z'],
    ['2026-11-25t14:03:00z', '2026-11-25T14:03:00Z'],
    ['2026-11-25 14:03 UTC', '2026-11-25T14:03:00Z'],
    ['2026-11-25 14:03 utc', '2026-11-25T14:03:00Z'],
    ['2026-11-25 14:03 Z', '2026-11-25T14:03:00Z'],
    ['  2026-11-25T14:03:00Z  ', '2026-11-25T14:03:00Z'],
    ['2026-11-25T14:03:00.12Z', '2026-11-25T14:03:00.120Z'],
    ['2026-11-25T14:03:00.5Z', '2026-11-25T14:03:00.500Z'],
    // Microseconds are truncated to milliseconds, never rounded up past what was written.
    ['2026-11-25T14:03:00.123999Z', '2026-11-25T14:03:00.123Z'],
    ['2026-11-25T14:03:00,250Z', '2026-11-25T14:03:00.250Z'],
  ])('%j -> %s', (input, expected) => {
    expect(at(input)).toBe(expected);
  });

  it.each([
    ['2026-11-25T14:03:00+02:00', '2026-11-25T12:03:00Z'],
    ['2026-11-25T09:03:00-05:30', '2026-11-25T14:33:00Z'],
    ['2026-11-25T14:03+0200', '2026-11-25T12:03:00Z'],
    ['2026-11-25 14:03:00.123+02', '2026-11-25T12:03:00.123Z'],
    ['2026-11-25 14:03 +02:00', '2026-11-25T12:03:00Z'],
    ['2026-11-25 14:03-00:00', '2026-11-25T14:03:00Z'],
    ['2026-11-26T04:03+14:00', '2026-11-25T14:03:00Z'],
    ['2026-11-25T02:03-12:00', '2026-11-25T14:03:00Z'],
  ])('offset %j -> %s', (input, expected) => {
    expect(at(input)).toBe(expected);
  });

  it('ignores options.timeZone when the input has its own zone', () => {
    expect(at('2026-11-25T14:03:00Z', { timeZone: 'Europe/Berlin' })).toBe('2026-11-25T14:03:00Z');
    expect(at('2026-11-25 14:03 UTC', { timeZone: 'America/New_York' })).toBe('2026-11-25T14:03:00Z');
    expect(at('2026-11-25 14:03+01:00', { timeZone: 'Asia/Tokyo' })).toBe('2026-11-25T13:03:00Z');
  });

  it('keeps the trimmed input on the result', () => {
    expect(parsePointInTime(' 2026-11-25T14:03Z ', { now: NOW })).toEqual({
      kind: 'time',
      at: new Date('2026-11-25T14:03:00Z'),
      input: '2026-11-25T14:03Z',
    });
  });
});

describe('parsePointInTime: wall-clock times without a zone', () => {
  it('reads them as UTC by default', () => {
    expect(at('2026-11-25 14:03')).toBe('2026-11-25T14:03:00Z');
    expect(at('2026-11-25T14:03:30')).toBe('2026-11-25T14:03:30Z');
    expect(at('2026-11-25 09:05:07.25')).toBe('2026-11-25T09:05:07.250Z');
    expect(at('2026-11-25 9:05')).toBe('2026-11-25T09:05:00Z');
  });

  it('reads them in options.timeZone', () => {
    expect(at('2026-11-25 14:03', { timeZone: 'Europe/Berlin' })).toBe('2026-11-25T13:03:00Z'); // CET, +01
    expect(at('2026-07-01 14:03', { timeZone: 'Europe/Berlin' })).toBe('2026-07-01T12:03:00Z'); // CEST, +02
    expect(at('2026-11-25 09:03', { timeZone: 'America/New_York' })).toBe('2026-11-25T14:03:00Z'); // EST, -05
    expect(at('2026-07-01 09:03', { timeZone: 'America/New_York' })).toBe('2026-07-01T13:03:00Z'); // EDT, -04
    expect(at('2026-11-25 19:33', { timeZone: 'Asia/Kolkata' })).toBe('2026-11-25T14:03:00Z'); // +05:30
    expect(at('2026-11-25 14:03', { timeZone: 'UTC' })).toBe('2026-11-25T14:03:00Z');
  });

  it('accepts zone names in any case', () => {
    expect(at('2026-11-25 14:03', { timeZone: 'europe/berlin' })).toBe('2026-11-25T13:03:00Z');
  });

  it('rejects an unknown time zone, naming it', () => {
    const message = rejectTime('2026-11-25 14:03', { timeZone: 'Mars/Olympus_Mons' });
    expect(message).toContain('Mars/Olympus_Mons');
    expect(message).toMatch(/IANA/);
    rejectTime('2026-11-25T14:03Z', { timeZone: 'Nowhere/Special' });
    rejectTime('-15m', { timeZone: '' });
  });
});

describe('parsePointInTime: daylight saving edges', () => {
  describe('Europe/Berlin (2026: +01 -> +02 on 29 March at 01:00Z, back on 25 October at 01:00Z)', () => {
    const timeZone = 'Europe/Berlin';

    it('maps times either side of spring-forward to the right instant', () => {
      expect(at('2026-03-29 01:59:59', { timeZone })).toBe('2026-03-29T00:59:59Z');
      expect(at('2026-03-29 03:00', { timeZone })).toBe('2026-03-29T01:00:00Z');
    });

    it('rejects a wall time inside the spring-forward gap', () => {
      for (const input of ['2026-03-29 02:00', '2026-03-29 02:30', '2026-03-29 02:59:59.999']) {
        const message = rejectTime(input, { timeZone });
        expect(message).toContain('does not exist in Europe/Berlin');
        expect(message).toContain('+01:00');
      }
    });

    it('rejects a wall time repeated at fall-back as ambiguous, listing both instants', () => {
      const message = rejectTime('2026-10-25 02:30', { timeZone });
      expect(message).toContain('ambiguous');
      expect(message).toContain('2026-10-25T00:30:00Z');
      expect(message).toContain('2026-10-25T01:30:00Z');
      expect(message).toContain("'2026-10-25 02:30+02:00'");
      expect(message).toContain("'2026-10-25 02:30+01:00'");
      rejectTime('2026-10-25 02:00', { timeZone });
      rejectTime('2026-10-25 02:59:59', { timeZone });
    });

    it('maps times either side of fall-back to the right instant', () => {
      expect(at('2026-10-25 01:59:59', { timeZone })).toBe('2026-10-24T23:59:59Z');
      expect(at('2026-10-25 03:00', { timeZone })).toBe('2026-10-25T02:00:00Z');
    });

    it('resolves the overlap once an offset is given', () => {
      expect(at('2026-10-25 02:30+02:00', { timeZone })).toBe('2026-10-25T00:30:00Z');
      expect(at('2026-10-25 02:30+01:00', { timeZone })).toBe('2026-10-25T01:30:00Z');
    });
  });

  describe('America/New_York (2026: -05 -> -04 on 8 March at 07:00Z, back on 1 November at 06:00Z)', () => {
    const timeZone = 'America/New_York';

    it('handles spring-forward', () => {
      expect(at('2026-03-08 01:59', { timeZone })).toBe('2026-03-08T06:59:00Z');
      expect(at('2026-03-08 03:00', { timeZone })).toBe('2026-03-08T07:00:00Z');
      expect(rejectTime('2026-03-08 02:30', { timeZone })).toContain('does not exist in America/New_York');
    });

    it('handles fall-back', () => {
      expect(at('2026-11-01 00:59', { timeZone })).toBe('2026-11-01T04:59:00Z');
      expect(at('2026-11-01 02:00', { timeZone })).toBe('2026-11-01T07:00:00Z');
      const message = rejectTime('2026-11-01 01:30', { timeZone });
      expect(message).toContain('ambiguous');
      expect(message).toContain('2026-11-01T05:30:00Z');
      expect(message).toContain('2026-11-01T06:30:00Z');
      expect(at('2026-11-01 01:30-04:00', { timeZone })).toBe('2026-11-01T05:30:00Z');
      expect(at('2026-11-01 01:30-05:00', { timeZone })).toBe('2026-11-01T06:30:00Z');
    });
  });
});

describe('parsePointInTime: time of day', () => {
  it.each([
    ['14:03', '2026-11-25T14:03:00Z'],
    ['14:03:30', '2026-11-25T14:03:30Z'],
    ['9:15', '2026-11-25T09:15:00Z'],
    ['14:03 UTC', '2026-11-25T14:03:00Z'],
    ['14:03Z', '2026-11-25T14:03:00Z'],
    ['14:03:30.5z', '2026-11-25T14:03:30.500Z'],
    ['16:03+02:00', '2026-11-25T14:03:00Z'],
    ['15:00', '2026-11-25T15:00:00Z'], // exactly now is not the future
  ])('%j is today in UTC -> %s', (input, expected) => {
    expect(at(input)).toBe(expected);
  });

  it('takes "today" from the zone, not from UTC', () => {
    expect(at('15:30', { timeZone: 'Europe/Berlin' })).toBe('2026-11-25T14:30:00Z');
    // 15:00Z is already 04:00 on 26 November in Auckland (+13 in their summer).
    expect(at('03:00', { timeZone: 'Pacific/Auckland' })).toBe('2026-11-25T14:00:00Z');
    // ...and still 25 November in Los Angeles (07:00, -08).
    expect(at('06:30', { timeZone: 'America/Los_Angeles' })).toBe('2026-11-25T14:30:00Z');
  });

  it('rejects a time later today instead of silently using yesterday', () => {
    const message = rejectTime('16:00');
    expect(message).toContain('future');
    expect(message).toContain("'2026-11-24 16:00'");
    // An explicit zone picks both "today" and the suggestion's zone.
    expect(rejectTime('16:00 UTC', { timeZone: 'Asia/Tokyo' })).toContain("'2026-11-24 16:00 UTC'");
  });

  it('rejects a time of day that is later today in the zone', () => {
    const message = rejectTime('16:30', { timeZone: 'Europe/Berlin' }); // 15:30Z
    expect(message).toContain('Europe/Berlin');
    expect(message).toContain("'2026-11-24 16:30'");
  });
});

describe('parsePointInTime: relative times and now', () => {
  it.each([
    ['now', '2026-11-25T15:00:00Z'],
    ['NOW', '2026-11-25T15:00:00Z'],
    ['-15m', '2026-11-25T14:45:00Z'],
    ['-2h', '2026-11-25T13:00:00Z'],
    ['-90s', '2026-11-25T14:58:30Z'],
    ['-1d', '2026-11-24T15:00:00Z'],
    ['-1h30m', '2026-11-25T13:30:00Z'],
    ['-1w', '2026-11-18T15:00:00Z'],
    ['- 15m', '2026-11-25T14:45:00Z'],
    ['-15 minutes', '2026-11-25T14:45:00Z'],
    ['15m ago', '2026-11-25T14:45:00Z'],
    ['2h ago', '2026-11-25T13:00:00Z'],
    ['90s ago', '2026-11-25T14:58:30Z'],
    ['1h30m ago', '2026-11-25T13:30:00Z'],
    ['1h 30m ago', '2026-11-25T13:30:00Z'],
    ['15 minutes ago', '2026-11-25T14:45:00Z'],
    ['2 hours ago', '2026-11-25T13:00:00Z'],
    ['1 day ago', '2026-11-24T15:00:00Z'],
    ['30 sec ago', '2026-11-25T14:59:30Z'],
    ['10 mins ago', '2026-11-25T14:50:00Z'],
    ['1 hour 30 minutes ago', '2026-11-25T13:30:00Z'],
    ['2H AGO', '2026-11-25T13:00:00Z'],
    // Zero back is simply now: harmless, and scripts computing an offset may produce it.
    ['-0m', '2026-11-25T15:00:00Z'],
    ['0s ago', '2026-11-25T15:00:00Z'],
  ])('%j -> %s', (input, expected) => {
    expect(at(input)).toBe(expected);
  });

  it('is unaffected by the time zone', () => {
    expect(at('-15m', { timeZone: 'Asia/Tokyo' })).toBe('2026-11-25T14:45:00Z');
  });

  it('tells the user how to fix a duration without a direction', () => {
    expect(rejectTime('15m')).toContain("use -15m or '15m ago'");
    expect(rejectTime('2h')).toContain("use -2h or '2h ago'");
  });

  it('uses the real clock when now is not given', () => {
    const before = Date.now();
    const p = parsePointInTime('-1m');
    const after = Date.now();
    expect(p.kind).toBe('time');
    if (p.kind === 'time') {
      expect(p.at.getTime()).toBeGreaterThanOrEqual(before - 60_000);
      expect(p.at.getTime()).toBeLessThanOrEqual(after - 60_000);
    }
  });
});

describe('parsePointInTime: LSN', () => {
  it.each([
    ['lsn:16/B374D848', '16/B374D848'],
    ['LSN:0/16B3748', '0/16B3748'],
    ['lsn:16/b374d848', '16/B374D848'],
    ['lsn:0016/00B374D8', '16/B374D8'],
    ['lsn: FFFFFFFF/FFFFFFFF', 'FFFFFFFF/FFFFFFFF'],
    ['  lsn:0/1  ', '0/1'],
  ])('%j -> %s', (input, lsn) => {
    expect(parsePointInTime(input, { now: NOW })).toEqual({ kind: 'lsn', lsn, input: input.trim() });
  });
});

describe('parsePointInTime: rejections', () => {
  it.each([
    // garbage
    'yesterday-ish',
    'abc',
    '',
    '   ',
    'yesterday',
    '2026-11-25 14:03 PST',
    '14:03 CET',
    '14:3',
    // future
    '2026-11-25T15:00:01Z',
    '2027-01-01 00:00',
    '2026-11-25 16:00+00:00',
    '2026-11-25 14:03 -05:30',
    '16:00',
    '+15m',
    'in 5m',
    '5m from now',
    // calendar and clock
    '2026-02-30 10:00',
    '2026-02-29 10:00',
    '2026-13-01 10:00',
    '2026-00-10 10:00',
    '2026-04-31 10:00',
    '2026-11-25 24:00',
    '25:00',
    '14:60',
    '14:03:61',
    '14:03:60',
    '2026-11-25T14:03:00.1234567Z',
    // ambiguous shapes
    '2026-11-25',
    '11/25/2026 10:00',
    '25/11/2026 10:00',
    '1732543380',
    '1732543380000',
    '16/B374D848',
    // relative
    '15m',
    '2h',
    '-15',
    '-5y',
    '-5x',
    '5 years ago',
    '-1.5h',
    '-30m1h',
    '-1h1h',
    '-',
    '-99999999999999w',
    // LSN
    'lsn:',
    'lsn:xyz',
    'lsn:1/',
    'lsn:/1',
    'lsn:123456789/0',
    'lsn:0/123456789',
    'lsn:0/0',
    'lsn:1-2',
    // offsets
    '2026-11-25 14:03+14:30',
    '2026-11-25 14:03+15:00',
    '2026-11-25 14:03-1500',
    '2026-11-25 14:03+02:60',
  ])('rejects %j', (input) => {
    rejectTime(input);
  });

  it('explains the common mistakes', () => {
    expect(rejectTime('2026-11-25')).toMatch(/no time of day/);
    expect(rejectTime('11/25/2026 10:00')).toMatch(/YYYY-MM-DD/);
    expect(rejectTime('2026-11-25 14:03 PST')).toContain("'PST'");
    expect(rejectTime('14:03 Europe/Berlin')).toContain('time zone option');
    expect(rejectTime('1732543380')).toMatch(/epoch/);
    expect(rejectTime('16/B374D848')).toContain('lsn:16/B374D848');
    expect(rejectTime('2026-02-30 10:00')).toContain('28 days');
    expect(rejectTime('-5y')).toContain("unknown unit 'y'");
    expect(rejectTime('+15m')).toContain('future');
    expect(rejectTime('2026-11-25 14:03+14:30')).toContain('-14:00 to +14:00');
    expect(rejectTime('2027-01-01 00:00')).toContain('2027-01-01T00:00:00Z');
  });

  it('keeps very long input readable on one line', () => {
    const input = `garbage\n${'x'.repeat(500)}`;
    const error = rejection(() => parsePointInTime(input, { now: NOW }));
    expect(error.message.length).toBeLessThan(400);
  });
});

describe('parseDuration', () => {
  it.each([
    ['24h', 86_400_000],
    ['90s', 90_000],
    ['15m', 900_000],
    ['7d', 604_800_000],
    ['1h30m', 5_400_000],
    ['2w', 1_209_600_000],
    ['1h 30m', 5_400_000],
    ['1d2h3m4s', 93_784_000],
    ['15 minutes', 900_000],
    ['2 hours', 7_200_000],
    ['1 day', 86_400_000],
    ['30 sec', 30_000],
    [' 10 MINS ', 600_000],
    ['1 week', 604_800_000],
  ])('%j -> %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(['0m', '0s', '-5m', '-1h', '', '   ', 'abc', '15', '5y', '5x', '1.5h', '30m1h', '1h1h', 'h', '99999999999999w', '1h ago'])(
    'rejects %j',
    (input) => {
      const error = rejection(() => parseDuration(input), 'bad_duration');
      expect(error.message).toContain(input.trim() === '' ? JSON.stringify(input) : input.trim());
    },
  );
});

describe('formatting', () => {
  it('formatUtc shows milliseconds only when there are some', () => {
    expect(formatUtc(new Date('2026-11-25T14:03:00Z'))).toBe('2026-11-25T14:03:00Z');
    expect(formatUtc(new Date('2026-11-25T14:03:00.120Z'))).toBe('2026-11-25T14:03:00.120Z');
    expect(formatUtc(new Date('2026-11-25T14:03:00.001Z'))).toBe('2026-11-25T14:03:00.001Z');
  });

  it('formatCompactUtc is safe for branch names and drops milliseconds', () => {
    expect(formatCompactUtc(new Date('2026-11-25T14:03:00Z'))).toBe('20261125T140300Z');
    expect(formatCompactUtc(new Date('2026-01-02T03:04:05.999Z'))).toBe('20260102T030405Z');
  });

  it('refuses invalid dates', () => {
    expect(() => formatUtc(new Date(Number.NaN))).toThrow(RangeError);
    expect(() => formatCompactUtc(new Date(Number.NaN))).toThrow(RangeError);
  });

  it('describePointInTime', () => {
    const time: PointInTime = { kind: 'time', at: new Date('2026-11-25T14:03:00Z'), input: '14:03' };
    const lsn: PointInTime = { kind: 'lsn', lsn: '16/B374D848', input: 'lsn:16/b374d848' };
    expect(describePointInTime(time)).toBe('2026-11-25T14:03:00Z');
    expect(describePointInTime(lsn)).toBe('LSN 16/B374D848');
    expect(describePointInTime(parsePointInTime('lsn:0016/b374d848', { now: NOW }))).toBe('LSN 16/B374D848');
  });

  it('round-trips: formatUtc output parses back to the same instant', () => {
    for (const iso of ['2026-11-25T14:03:00Z', '2026-11-25T14:03:00.120Z']) {
      expect(at(formatUtc(new Date(iso)))).toBe(iso);
    }
  });
});

describe('LSN arithmetic', () => {
  it('lsnToBigInt combines the high and low halves', () => {
    expect(lsnToBigInt('0/0')).toBe(0n);
    expect(lsnToBigInt('0/16B3748')).toBe(0x16b3748n);
    expect(lsnToBigInt('16/B374D848')).toBe((0x16n << 32n) + 0xb374d848n);
    expect(lsnToBigInt('FFFFFFFF/FFFFFFFF')).toBe(2n ** 64n - 1n);
  });

  it('lsnToBigInt rejects non-LSNs', () => {
    for (const bad of ['', 'xyz', '1/', '123456789/0', 'lsn:0/1']) {
      rejection(() => lsnToBigInt(bad));
    }
  });

  it.each([
    ['0/1', '0/2', -1],
    ['0/2', '0/1', 1],
    ['16/B374D848', '16/b374d848', 0],
    ['0016/0B374D84', '16/B374D84', 0],
    // Text comparison gets these wrong.
    ['9/0', '10/0', -1],
    ['0/FF', '0/100', -1],
    ['1/0', '0/FFFFFFFF', 1],
  ])('compareLsn(%s, %s) = %d', (a, b, expected) => {
    expect(compareLsn(a, b)).toBe(expected);
  });
});

describe('microsecond targets', () => {
  it('keeps microseconds a Date cannot hold, for Postgres and for people', async () => {
    const { parsePointInTime, describePointInTime, formatPostgresTimestamp } = await import('../../src/time/index.js');
    const p = parsePointInTime('2026-11-25 10:00:00.630244+00', { now: new Date('2026-11-25T15:00:00Z') });
    expect(p.kind === 'time' && p.subMillisecondMicros).toBe(244);
    expect(describePointInTime(p)).toBe('2026-11-25T10:00:00.630244Z');
    expect(p.kind === 'time' && formatPostgresTimestamp(p)).toBe('2026-11-25 10:00:00.630244+00');
    const plain = parsePointInTime('2026-11-25T10:00:00.5Z', { now: new Date('2026-11-25T15:00:00Z') });
    expect(describePointInTime(plain)).toBe('2026-11-25T10:00:00.500Z');
  });
});

describe('snapshot references', () => {
  it('reads snapshot:<name> as a snapshot, for the provider to resolve', () => {
    expect(parsePointInTime('snapshot:pre-migration-0042', { now: NOW })).toEqual({ kind: 'snapshot', name: 'pre-migration-0042', input: 'snapshot:pre-migration-0042' });
    expect(describePointInTime(parsePointInTime('snapshot:a.b_c', { now: NOW }))).toBe('snapshot a.b_c');
  });

  it('refuses snapshot references without a valid name', () => {
    for (const bad of ['snapshot:', 'snapshot: x', 'snapshot:-x', 'snapshot:a/b', `snapshot:${'x'.repeat(64)}`]) {
      expect(rejection(() => parsePointInTime(bad, { now: NOW })).message).toMatch(/not a valid snapshot reference/);
    }
  });
});


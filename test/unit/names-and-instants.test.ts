import { describe, expect, it } from 'vitest';
import { parseTableName, qualifiedName, quoteIdent, quoteLiteral, whereRejected } from '../../src/db/sql.js';
import { PitrError } from '../../src/errors.js';
import { targetString, uniqueName } from '../../src/providers/naming.js';
import { dateToMicros, microsToIso, microsToPointInTime, microsToPostgres, parsePostgresMicros, pointToMicros } from '../../src/when/instants.js';

describe('uniqueName', () => {
  it('keeps a free name, else counts up from -2 past every taken one', () => {
    expect(uniqueName('fix', [])).toBe('fix');
    expect(uniqueName('fix', ['fix'])).toBe('fix-2');
    expect(uniqueName('fix', new Set(['fix', 'fix-2', 'fix-3', 'fix-5']))).toBe('fix-4');
    expect(uniqueName('fix', ['fix-2'])).toBe('fix');
  });
});

describe('targetString', () => {
  it('writes a target down as lsn:, xid:, or the UTC instant to the microsecond', () => {
    expect(targetString({ kind: 'lsn', lsn: '16/B374D848', input: '' })).toBe('lsn:16/B374D848');
    expect(targetString({ kind: 'xid', xid: '7342', input: '' } as never)).toBe('xid:7342');
    expect(targetString({ kind: 'time', at: new Date('2026-11-25T14:03:00Z'), input: '' })).toBe('2026-11-25T14:03:00Z');
    expect(targetString({ kind: 'time', at: new Date('2026-11-25T14:03:00.123Z'), input: '', subMillisecondMicros: 45 })).toBe('2026-11-25T14:03:00.123045Z');
  });
});

describe('SQL quoting and table names', () => {
  it('quotes identifiers and literals by doubling their quote character', () => {
    expect(quoteIdent('My "odd" Table')).toBe('"My ""odd"" Table"');
    expect(qualifiedName('s p', 't')).toBe('"s p"."t"');
    expect(quoteLiteral("it's")).toBe("'it''s'");
    // Backslashes are data under standard_conforming_strings, never escapes.
    expect(quoteLiteral('a\\')).toBe("'a\\'");
  });

  it('reads names as SQL does: unquoted parts fold to lower case, quoted ones keep case, dots and doubled quotes', () => {
    expect(parseTableName('Orders')).toEqual({ schema: null, name: 'orders' });
    expect(parseTableName(' Sales.Orders ')).toEqual({ schema: 'sales', name: 'orders' });
    expect(parseTableName('"My Schema"."Order.Lines"')).toEqual({ schema: 'My Schema', name: 'Order.Lines' });
    expect(parseTableName('"say ""hi"""')).toEqual({ schema: null, name: 'say "hi"' });
    expect(parseTableName('public."Mixed"')).toEqual({ schema: 'public', name: 'Mixed' });
  });

  it('refuses three-part names and unterminated quotes', () => {
    expect(() => parseTableName('db.sales.orders')).toThrow(/not a table name/);
    expect(() => parseTableName('"open')).toThrow(/unterminated quote/);
  });

  it('turns Postgres errors a --where can cause into a usage error, and leaves other failures alone', () => {
    for (const code of ['42703', '25006', '22012']) {
      const e = whereRejected({ code, message: 'column "nope" does not exist' }) as PitrError;
      expect(e).toBeInstanceOf(PitrError);
      expect([e.code, e.exitCode, e.message]).toEqual(['bad_where', 2, '--where was rejected by Postgres: column "nope" does not exist']);
    }
    const lost = Object.assign(new Error('connection terminated'), { code: '57P01' });
    expect(whereRejected(lost)).toBe(lost);
    const plain = new Error('ECONNRESET');
    expect(whereRejected(plain)).toBe(plain);
    expect(whereRejected(undefined)).toBeUndefined();
  });
});

describe('instants to the microsecond', () => {
  it('round-trips microseconds a Date cannot hold', () => {
    const us = dateToMicros(new Date('2026-12-02T14:03:00.123Z'), 456);
    expect(microsToIso(us)).toBe('2026-12-02T14:03:00.123456Z');
    expect(microsToPostgres(us)).toBe('2026-12-02 14:03:00.123456+00');
    const p = microsToPointInTime(us);
    expect(p).toMatchObject({ kind: 'time', subMillisecondMicros: 456, input: '2026-12-02T14:03:00.123456Z' });
    expect(pointToMicros(p)).toBe(us);
  });

  it('prints six digits always, so instants a microsecond apart print differently', () => {
    const us = dateToMicros(new Date('2026-12-02T14:03:00Z'));
    expect(microsToIso(us)).toBe('2026-12-02T14:03:00.000000Z');
    expect(microsToIso(us + 1)).toBe('2026-12-02T14:03:00.000001Z');
    expect(microsToPointInTime(us)).not.toHaveProperty('subMillisecondMicros');
  });

  it('handles instants before 1970 (negative microseconds) without borrowing wrongly', () => {
    const us = dateToMicros(new Date('1969-12-31T23:59:59.999Z'), 5);
    expect(microsToIso(us)).toBe('1969-12-31T23:59:59.999005Z');
  });

  it('--since/--until take times only', () => {
    const e = (() => {
      try {
        pointToMicros({ kind: 'lsn', lsn: '0/1', input: 'lsn:0/1' });
      } catch (err) {
        return err as PitrError;
      }
    })();
    expect([e?.code, e?.exitCode]).toEqual(['bad_time', 2]);
  });

  it('reads every way Postgres prints a timestamp in logs and pg_waldump', () => {
    const expected = dateToMicros(new Date('2026-12-02T05:41:15.657Z'), 550);
    for (const text of ['2026-12-02 05:41:15.65755 UTC', '2026-12-02 05:41:15.65755+00', '2026-12-02 05:41:15.65755 +00:00', '2026-12-02T05:41:15.65755Z', '2026-12-02 07:41:15.65755+0200', '2026-12-02 00:41:15.65755-05']) {
      expect(parsePostgresMicros(text), text).toBe(expected);
    }
    expect(parsePostgresMicros('2026-12-02 05:41:15')).toBe(dateToMicros(new Date('2026-12-02T05:41:15Z')));
    expect(() => parsePostgresMicros('yesterday')).toThrow(/not a Postgres timestamp/);
  });
});

import { describe, expect, it } from 'vitest';
import { describePointInTime, parsePointInTime } from '../../src/time/index.js';
import { PitrError } from '../../src/errors.js';

function reject(input: string): string {
  try {
    parsePointInTime(input);
  } catch (err) {
    expect(err).toBeInstanceOf(PitrError);
    expect((err as PitrError).exitCode).toBe(2);
    return (err as Error).message;
  }
  throw new Error(`accepted ${input}`);
}

describe('xid: targets', () => {
  it('reads a decimal transaction id', () => {
    expect(parsePointInTime('xid:7342')).toEqual({ kind: 'xid', xid: '7342', input: 'xid:7342' });
    expect(parsePointInTime(' XID:0042 ')).toMatchObject({ kind: 'xid', xid: '42' });
    expect(describePointInTime(parsePointInTime('xid:7342'))).toBe('just before transaction 7342');
  });

  it('keeps the low 32 bits of a 64-bit id from pg_current_xact_id()', () => {
    expect(parsePointInTime(`xid:${(5n << 32n) + 900n}`)).toMatchObject({ kind: 'xid', xid: '900' });
  });

  it('refuses what no commit can carry, with one line', () => {
    expect(reject('xid:')).toContain('not a valid transaction id');
    expect(reject('xid:12ab')).toContain('not a valid transaction id');
    expect(reject('xid:-5')).toContain('not a valid transaction id');
    expect(reject('xid:2')).toContain('3 or more');
    expect(reject('xid:99999999999999999999')).toContain('3 or more');
  });
});

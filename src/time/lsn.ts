import { badInput } from '../errors.js';

/**
 * A WAL location as Postgres prints it (`%X/%X`): the high and low 32 bits of a 64-bit byte
 * position. Postgres itself accepts 1-8 hex digits on each side, so we do too.
 */
const LSN_PATTERN = /^([0-9a-f]{1,8})\/([0-9a-f]{1,8})$/i;

/** The LSN as a 64-bit number, or undefined when the text is not an LSN. */
export function tryLsnToBigInt(text: string): bigint | undefined {
  const match = LSN_PATTERN.exec(text.trim());
  if (match === null) return undefined;
  const [, high = '', low = ''] = match;
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

/** The spelling Postgres uses (upper-case, no leading zeros), so equal LSNs compare equal as text. */
export function formatLsn(value: bigint): string {
  const high = value >> 32n;
  const low = value & 0xffff_ffffn;
  return `${high.toString(16).toUpperCase()}/${low.toString(16).toUpperCase()}`;
}

export function lsnToBigInt(lsn: string): bigint {
  const value = tryLsnToBigInt(lsn);
  if (value === undefined) {
    throw badInput('bad_time', `${JSON.stringify(lsn)} is not an LSN; expected two groups of 1-8 hex digits like 16/B374D848`);
  }
  return value;
}

/**
 * Numeric comparison: text comparison gets `9/0` vs `10/0` and `0/FF` vs `0/100` wrong, which
 * would pick the wrong side of a recovery target.
 */
export function compareLsn(a: string, b: string): number {
  const left = lsnToBigInt(a);
  const right = lsnToBigInt(b);
  return left < right ? -1 : left > right ? 1 : 0;
}

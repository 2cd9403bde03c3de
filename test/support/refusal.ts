import { expect } from 'vitest';
import { PitrError } from '../../src/errors.js';

/** The PitrError `fn` throws; fails the test when it throws something else or nothing at all. */
export function refusal(fn: () => unknown): PitrError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PitrError);
    return err as PitrError;
  }
  throw new Error('expected a refusal');
}

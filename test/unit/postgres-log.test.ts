import { describe, expect, it } from 'vitest';
import { logReason } from '../../src/system/postgres-server.js';

describe('logReason', () => {
  it('names the server failure, not the clients it turned away meanwhile', () => {
    const log = [
      '2026-11-25 19:47:07.101 UTC [10] LOG:  redo done at 0/5000110 system usage: CPU: user: 0.00 s',
      '2026-11-25 19:47:07.101 UTC [10] FATAL:  recovery ended before configured recovery target was reached',
      '2026-11-25 19:47:07.102 UTC [11] FATAL:  the database system is in recovery mode',
      '2026-11-25 19:47:07.103 UTC [12] FATAL:  the database system is shutting down',
      '2026-11-25 19:47:07.110 UTC [9] LOG:  database system is shut down',
    ].join('\n');
    expect(logReason(log)).toBe('recovery ended before configured recovery target was reached');
  });

  it('falls back to ERROR lines, then the last line', () => {
    expect(logReason('x ERROR:  boom\nLOG: later')).toBe('boom');
    expect(logReason('LOG: only this')).toBe('LOG: only this');
    expect(logReason('')).toBe('no log output');
  });
});

import { describe, expect, it } from 'vitest';
import { renderFields, renderTable } from '../../src/report/format.js';

describe('report formatting', () => {
  it('aligns a table of any length (a one-hour WAL timeline has hundreds of thousands of rows)', () => {
    const rows = [['committed at', 'xid'], ...Array.from({ length: 300_000 }, (_, i) => [`t${i}`, String(i)])];
    const text = renderTable(rows);
    const lines = text.split('\n');
    expect(lines).toHaveLength(300_001);
    expect(lines[0]).toBe('committed at  xid');
    expect(lines[300_000]).toBe('t299999       299999');
  });

  it('aligns label/value lines and leaves out undefined values', () => {
    expect(renderFields([['a', 1], ['long label', null], ['gone', undefined]])).toBe('  a           1\n  long label  -');
  });
});

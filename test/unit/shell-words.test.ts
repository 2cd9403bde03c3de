import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { commandLine, splitShellWords, typedTable } from '../../src/cli/hints.js';

describe('hint command lines', () => {
  it('every list of words printed with commandLine splits back into the same words, as a shell would', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ minLength: 1 }), { minLength: 1, maxLength: 5 }), (words) => {
        expect(splitShellWords(commandLine(...words))).toEqual(words);
      }),
      { numRuns: 500 },
    );
  });

  it('reads double quotes as a shell does: backslash escapes only $ ` " \\, no expansion allowed', () => {
    expect(splitShellWords('pitr preview "Order \\"Items\\"" "a\\b" x"y z"')).toEqual(['pitr', 'preview', 'Order "Items"', 'a\\b', 'xy z']);
    expect(splitShellWords('pitr a\\ b # a comment')).toEqual(['pitr', 'a b']);
    expect(() => splitShellWords('pitr "$HOME"')).toThrow(/expansion inside/);
    expect(() => splitShellWords('pitr "open')).toThrow(/unterminated "/);
    expect(() => splitShellWords("pitr 'open")).toThrow(/unterminated '/);
    expect(() => splitShellWords('pitr x; rm -rf /')).toThrow(/shell metacharacter ;/);
  });

  it('prints a table the way pitr reads it back: public implied, quotes only where needed', () => {
    expect(typedTable('public.orders')).toBe('orders');
    expect(typedTable('public.Order Items')).toBe('"Order Items"');
    expect(typedTable('Sales."x"')).toBe('"Sales"."""x"""');
    expect(typedTable('orders')).toBe('orders');
  });
});

import { describe, expect, it } from 'vitest';
import { commandLine, shellWord, splitShellWords, typedTable } from '../../src/cli/hints.js';
import { parseTableName } from '../../src/db/sql.js';
import { hintCommands, hintProblem } from '../support/hints.js';

describe('hints print names as they must be typed', () => {
  it.each([
    ['public.comics', 'comics'],
    ['public.Order Items', '"Order Items"'],
    ['sales.orders', 'sales.orders'],
    ['My Schema.Weird"Name', '"My Schema"."Weird""Name"'],
    ['public.order', 'order'],
  ])('table %s → %s, which pitr reads back as the same table', (qualified, typed) => {
    expect(typedTable(qualified)).toBe(typed);
    const back = parseTableName(typed);
    const dot = qualified.indexOf('.');
    expect(back).toEqual({ schema: qualified.startsWith('public.') ? null : qualified.slice(0, dot), name: qualified.slice(dot + 1) });
  });

  it.each(["it's", 'a b', '$HOME', 'x;y', '"q"', 'plain-name_1', 'snapshot:pre-1', '*', '~x'])('shell word %s splits back to itself', (word) => {
    expect(splitShellWords(`pitr x ${shellWord(word)}`)).toEqual(['pitr', 'x', word]);
  });

  it('the issue example: the preview hint for "Order Items" is a valid command', async () => {
    const hint = `Next: ${commandLine('pitr', 'diff', typedTable('public.Order Items'))}   # the rows`;
    expect(hint).toBe(`Next: pitr diff '"Order Items"'   # the rows`);
    const [command] = hintCommands(hint);
    expect(splitShellWords(command!)).toEqual(['pitr', 'diff', '"Order Items"']);
    expect(await hintProblem(command!)).toBeUndefined();
  });

  it('a hint that would not run is caught', async () => {
    expect(await hintProblem('pitr diff public.Order Items')).toMatch(/too many arguments/);
    expect(await hintProblem('pitr undo run-1 (with --keep)')).toMatch(/metacharacter/);
    expect(await hintProblem('pitr branches remove x')).toMatch(/unknown command/);
    expect(await hintProblem("pitr recover comics --cascade --where 'author_id = 7'")).toBeUndefined();
  });
});

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as cliHints from '../../src/cli/hints.js';
import { commandLine, shellWord, splitShellWords, sqlIdentifier, typedTable } from '../../src/system/shell-quote.js';
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

describe('the quoting lives in core, shared by the CLI and core messages', () => {
  it('src/cli/hints.ts hands out the same functions as src/system/shell-quote.ts', () => {
    expect(cliHints.commandLine).toBe(commandLine);
    expect(cliHints.shellWord).toBe(shellWord);
    expect(cliHints.typedTable).toBe(typedTable);
  });

  it.each([
    ['a plain name', ['pitr', 'branches', 'delete', 'pitr-2026-01-01'], 'pitr branches delete pitr-2026-01-01'],
    ['a name with a space', ['pitr', 'snapshot', 'delete', 'before deploy'], "pitr snapshot delete 'before deploy'"],
    ['a name with a quote', ['pitr', 'branches', 'delete', "bob's"], "pitr branches delete 'bob'\\''s'"],
    ['a name with $', ['pitr', 'branches', 'delete', '$x'], "pitr branches delete '$x'"],
  ])('commandLine with %s splits back to the same words', (_label, words, line) => {
    expect(commandLine(...words)).toBe(line);
    expect(splitShellWords(line)).toEqual(words);
  });

  it('sqlIdentifier quotes only what does not fold to itself', () => {
    expect(sqlIdentifier('comics')).toBe('comics');
    expect(sqlIdentifier('Comics')).toBe('"Comics"');
    expect(sqlIdentifier('a"b')).toBe('"a""b"');
  });

  it('no core module imports src/cli', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) {
          if (path !== join('src', 'cli')) walk(path);
        } else if (entry.name.endsWith('.ts') && /from '(\.\.\/)+cli\//.test(readFileSync(path, 'utf8'))) offenders.push(path);
      }
    };
    walk('src');
    expect(offenders).toEqual([]);
  });
});

/**
 * Hints print commands exactly as the user must type them: names shell-quoted, tables
 * SQL-quoted where case or characters need it. A hint line is `Label: pitr …`, optionally
 * followed by a `# comment`, so the whole line after the label is a valid shell command
 * (test/support/hints.ts parses and checks every one the test suite prints).
 * The quoting itself lives in core (src/system/shell-quote.ts), which error messages use too.
 */
export { commandLine, shellWord, splitShellWords, sqlIdentifier, typedTable } from '../system/shell-quote.js';

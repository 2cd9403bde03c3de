/**
 * Names as the user must type them: shell-quoted words, SQL-quoted identifiers. Pure, so core
 * messages (errors with a command to run next) and the CLI's hints quote the same way.
 */

/** A word as a POSIX shell must see it: unchanged when plainly safe, else single-quoted. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function commandLine(...words: string[]): string {
  return words.map(shellWord).join(' ');
}

/** An identifier as pitr's table arguments read it: bare when it folds to itself, else double-quoted. */
export function sqlIdentifier(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/** `schema.table` as pitr prints it → the argument that names it (public is the default schema). */
export function typedTable(qualified: string): string {
  const dot = qualified.indexOf('.');
  if (dot < 0) return sqlIdentifier(qualified);
  const schema = qualified.slice(0, dot);
  const name = qualified.slice(dot + 1);
  return schema === 'public' ? sqlIdentifier(name) : `${sqlIdentifier(schema)}.${sqlIdentifier(name)}`;
}

/**
 * Splits a command line into words as a POSIX shell would, for plain commands only: quotes,
 * backslashes and a trailing # comment; anything that would make the shell do more than run one
 * command (;, |, &, <, >, $, `, parentheses) is an error.
 */
export function splitShellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '#' && word === undefined) {
      break;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      let part = '';
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && /[$`"\\]/.test(line[j + 1] ?? '')) part += line[++j];
        else if (line[j] === '$' || line[j] === '`') throw new Error(`expansion inside "…" in: ${line}`);
        else part += line[j];
      }
      if (j >= line.length) throw new Error(`unterminated " in: ${line}`);
      word = (word ?? '') + part;
      i = j;
    } else if (c === '\\') {
      word = (word ?? '') + (line[++i] ?? '');
    } else if (/[;&|<>$`()]/.test(c)) {
      throw new Error(`shell metacharacter ${c} in: ${line}`);
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

import type pg from 'pg';
import { badInput } from '../errors.js';
import { checkWhereSyntax, queryPrepared } from './user-sql.js';

/** Identifiers are always quoted: mixed case, spaces and reserved words must just work. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function qualifiedName(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/** A SQL string literal (standard_conforming_strings on, as since Postgres 9.1). */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * A Postgres array literal of text values, cast to `type[]`: exact for every type's text form,
 * and usable where no parameters are (COPY, a statement built once for many rows).
 */
export function arrayLiteral(values: string[], type: string): string {
  return `${quoteLiteral(`{${values.map((v) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`)}::${type}[]`;
}

/** `schema.table` or `table` (public) as typed by a user, quotes allowed: `"My Schema"."Orders"`. */
export function parseTableName(input: string): { schema: string | null; name: string } {
  const parts: string[] = [];
  let i = 0;
  const s = input.trim();
  while (i < s.length) {
    if (s[i] === '"') {
      let j = i + 1;
      let part = '';
      for (;;) {
        if (j >= s.length) throw new Error(`unterminated quote in table name ${input}`);
        if (s[j] === '"') {
          if (s[j + 1] === '"') {
            part += '"';
            j += 2;
            continue;
          }
          break;
        }
        part += s[j++];
      }
      parts.push(part);
      i = j + 1;
    } else {
      let j = i;
      while (j < s.length && s[j] !== '.') j++;
      // Unquoted identifiers fold to lower case, as in SQL.
      parts.push(s.slice(i, j).toLowerCase());
      i = j;
    }
    if (s[i] === '.') i++;
  }
  if (parts.length === 1) return { schema: null, name: parts[0]! };
  if (parts.length === 2) return { schema: parts[0]!, name: parts[1]! };
  throw new Error(`not a table name: ${input}`);
}

/**
 * A user's --where must be one boolean condition, nothing more. PostgreSQL's own parser proves
 * that first (parseWhere: no parenthesis escaping pitr's `(…)`, no second statement, no writes or
 * lasting side effects); then the server resolves it against the table through a named
 * prepared statement, a real Parse on both drivers, which refuses several commands in one string.
 */
export async function checkWhere(client: Pick<pg.ClientBase, 'query'>, table: string, where: string): Promise<void> {
  await checkWhereSyntax(where);
  try {
    await queryPrepared(client, `select 1 from ${table} where (${where}) limit 0`);
  } catch (err) {
    throw badInput('bad_where', `--where was rejected by Postgres: ${(err as { message?: string }).message ?? String(err)}`);
  }
}

/**
 * A Postgres error raised while a filter that passed checkWhere ran (an error only some rows
 * trigger, a write, a lock in a read-only transaction) becomes the same one-line usage error.
 */
export function whereRejected(err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  return typeof e?.code === 'string' && /^(42|25|22)/.test(e.code) ? badInput('bad_where', `--where was rejected by Postgres: ${e.message}`) : err;
}

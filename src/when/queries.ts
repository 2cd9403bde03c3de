import type pg from 'pg';
import { badInput } from '../errors.js';
import { checkWhere, parseTableName, qualifiedName, quoteIdent } from '../db/sql.js';
import { normalizeSession } from '../db/session.js';
import type { Question } from './bisect.js';

/** What `when` asks of each past state: one read-only query and how to judge its answers. */
export interface WhenQuery {
  question: Question;
  /** For people and --json: the SQL, the table and key, or the table and filter. */
  label: string;
  read(client: pg.ClientBase): Promise<unknown>;
  /** Production's tables the question is about (the timeline maps their relfilenodes). */
  tables: string[];
}

function tableSql(input: string): { sql: string; shown: string } {
  let parsed: { schema: string | null; name: string };
  try {
    parsed = parseTableName(input);
  } catch (err) {
    throw badInput('bad_table', (err as Error).message);
  }
  // pitr's sessions search only pg_catalog: a table without a schema is the application's, in public.
  return { sql: qualifiedName(parsed.schema ?? 'public', parsed.name), shown: input };
}

/** Runs the read in a read-only transaction with pitr's session settings (one statement only). */
async function readOnly<T>(client: pg.ClientBase, fn: () => Promise<T>): Promise<T> {
  await client.query('begin transaction isolation level repeatable read read only');
  try {
    await normalizeSession(client, 'pitr when');
    return await fn();
  } finally {
    await client.query('rollback').catch(() => undefined);
  }
}

function rejected(what: string, err: unknown): never {
  const e = err as { code?: string; message?: string };
  if (typeof e?.code === 'string') throw badInput('bad_query', `${what} was rejected by Postgres: ${e.message}`);
  throw err;
}

/** --sql: the rows of any one read-only query; the answer is the instant they first differ. */
export function sqlQuery(sql: string): WhenQuery {
  if (sql.trim() === '') throw badInput('bad_query', '--sql is empty: give one SELECT');
  return {
    question: 'changed',
    label: sql,
    tables: [],
    read: (client) =>
      readOnly(client, async () => {
        // The extended protocol refuses several statements in one string.
        const result = await client.query({ text: sql, queryMode: 'extended' } as pg.QueryConfig).catch((err: unknown) => rejected('--sql', err));
        return (result as pg.QueryResult).rows;
      }),
  };
}

/** --count: when the table's row count (optionally filtered) dropped. */
export function countQuery(table: string, where: string | undefined): WhenQuery {
  const t = tableSql(table);
  return {
    question: 'dropped',
    label: `count(*) of ${t.shown}${where ? ` where ${where}` : ''}`,
    tables: [table],
    read: (client) =>
      readOnly(client, async () => {
        if (where !== undefined) await checkWhere(client as never, t.sql, where);
        const result = await client
          .query<{ n: string }>({ text: `select count(*)::bigint as n from ${t.sql}${where !== undefined ? ` where (${where})` : ''}`, queryMode: 'extended' } as pg.QueryConfig)
          .catch((err: unknown) => rejected(`counting ${t.shown}`, err));
        return Number(result.rows[0]!.n);
      }),
  };
}

/** --row: when the row with this primary key last looked as it does now (or disappeared). */
export function rowQuery(table: string, key: string[]): WhenQuery {
  const t = tableSql(table);
  return {
    question: 'reached',
    label: `row ${t.shown} (${key.join(', ')})`,
    tables: [table],
    read: (client) =>
      readOnly(client, async () => {
        const { rows } = await client
          .query<{ a: string }>(
            `select a.attname as a from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
              where i.indrelid = $1::regclass and i.indisprimary order by array_position(i.indkey::int2[], a.attnum)`,
            [t.sql],
          )
          .catch((err: unknown) => rejected(`table ${t.shown}`, err));
        if (rows.length === 0) throw badInput('no_primary_key', `${t.shown} has no primary key: use --sql with a condition that picks the row`);
        if (rows.length !== key.length) {
          throw badInput('bad_key', `${t.shown}'s primary key has ${rows.length} column(s) (${rows.map((r) => r.a).join(', ')}); ${key.length} value(s) given`);
        }
        const cond = rows.map((r, i) => `${quoteIdent(r.a)} = $${i + 1}`).join(' and ');
        const found = await client
          .query<{ row: unknown }>(`select to_jsonb(x) as row from ${t.sql} x where ${cond}`, key)
          .catch((err: unknown) => rejected(`reading the row of ${t.shown}`, err));
        return found.rows[0]?.row ?? null;
      }),
  };
}

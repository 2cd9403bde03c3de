import { randomBytes } from 'node:crypto';
import { loadModule, parseSync, scanSync } from 'libpg-query';
import type pg from 'pg';
import { badInput, PitrError } from '../errors.js';
import { PINNED_SEARCH_PATH, withClient, type ConnectOptions } from './connect.js';

/**
 * User SQL (`--where`, playbook `check` steps, `drill --check`) is checked with PostgreSQL's own
 * parser (libpg-query, the server's grammar compiled to WASM) before pitr sends it anywhere, and
 * runs only in read-only transactions through a named prepared statement, which makes both
 * drivers send a Parse message: the server then refuses a second statement in the string. The
 * Neon serverless driver ignores `queryMode: 'extended'` for a query without parameters, so
 * that flag alone guarantees nothing on `--driver ws`.
 */

let loaded: Promise<void> | undefined;

/** Loads the WASM parser once (about 60 ms); parseWhere and parseReadOnlyQuery need it. */
export function loadSqlParser(): Promise<void> {
  loaded ??= loadModule();
  return loaded;
}

interface ParsedStatement {
  stmt: Record<string, Record<string, unknown>>;
}

function parseOrThrow(sql: string, code: string, what: string): ParsedStatement[] {
  try {
    return (parseSync(sql) as { stmts?: ParsedStatement[] }).stmts ?? [];
  } catch (err) {
    if (/not loaded|loadModule/i.test((err as Error).message)) throw new Error('the SQL parser is not loaded: await loadSqlParser() first');
    throw badInput(code, `${what} is not valid SQL: ${oneLine((err as Error).message)}`);
  }
}

const oneLine = (text: string) => text.split('\n')[0]!.trim();

/**
 * Functions whose side effects survive a read-only transaction or change how pitr's own SQL in
 * the same transaction behaves (search_path, session_replication_role), or that reach outside
 * the database. Writes are refused by READ ONLY anyway; these are the ones it does not stop.
 */
const FORBIDDEN_FUNCTIONS = new Set([
  'set_config',
  'nextval',
  'setval',
  'pg_notify',
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_switch_wal',
  'pg_create_restore_point',
  'pg_read_file',
  'pg_read_binary_file',
  'pg_ls_dir',
  'pg_stat_file',
  'lo_import',
  'lo_export',
  'dblink',
  'dblink_exec',
  'dblink_connect',
  'dblink_send_query',
]);

const WRITE_STATEMENTS = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** Walks a parse tree and throws on anything user SQL may not contain, wherever it is nested. */
function refuseSideEffects(node: unknown, code: string, what: string): void {
  if (Array.isArray(node)) {
    for (const n of node) refuseSideEffects(n, code, what);
    return;
  }
  if (!node || typeof node !== 'object') return;
  for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
    if (WRITE_STATEMENTS.has(key)) throw badInput(code, `${what} may only read: it contains ${key.replace(/Stmt$/, '').toUpperCase()}`);
    if (key === 'lockingClause') throw badInput(code, `${what} may only read: it contains a row-locking clause (FOR UPDATE/SHARE)`);
    if (key === 'intoClause') throw badInput(code, `${what} may only read: it contains SELECT INTO`);
    if (key === 'FuncCall') {
      const names = ((value as { funcname?: { String?: { sval?: string } }[] }).funcname ?? []).map((n) => n.String?.sval ?? '');
      const name = names.at(-1)?.toLowerCase() ?? '';
      if (FORBIDDEN_FUNCTIONS.has(name) || name.startsWith('pg_advisory') || name.startsWith('dblink')) {
        throw badInput(code, `${what} may not call ${names.join('.')}(): it has side effects a read-only transaction does not stop`);
      }
    }
    refuseSideEffects(value, code, what);
  }
}

/** Line comments would swallow the rest of the line of pitr's SQL that surrounds a --where. */
function refuseLineComments(sql: string, code: string, what: string): void {
  let tokens: { tokenName: string }[] = [];
  try {
    tokens = (scanSync(sql) as { tokens: { tokenName: string }[] }).tokens;
  } catch (err) {
    throw badInput(code, `${what} is not valid SQL: ${oneLine((err as Error).message)}`);
  }
  if (tokens.some((t) => t.tokenName === 'SQL_COMMENT')) throw badInput(code, `${what} may not contain a -- comment (use /* … */)`);
}

const WHERE_ONLY_KEYS = new Set(['targetList', 'fromClause', 'whereClause', 'limitOption', 'op']);

/**
 * A --where must be exactly one boolean expression and nothing else: no second statement, no
 * closing parenthesis that escapes pitr's `(…)`, no ORDER BY/LIMIT/UNION after it, no writes,
 * no row locks, no functions with lasting side effects. Returns the expression, trimmed, safe
 * to embed as `(${where})`. Throws a one-line usage error (exit 2); needs loadSqlParser().
 */
export function parseWhere(where: string): string {
  try {
    return parseWhereOrThrow(where);
  } catch (err) {
    if (!(err instanceof PitrError) || err.code !== 'bad_where') throw err;
    // One wording for every refusal, whether the parser or a rule on its parse tree said no.
    throw badInput('bad_where', err.message.replace(/^--where /, "--where was rejected by Postgres's parser: it "));
  }
}

function parseWhereOrThrow(where: string): string {
  const what = '--where';
  const text = where.trim();
  if (text === '') throw badInput('bad_where', '--where is empty');
  refuseLineComments(text, 'bad_where', what);
  const stmts = parseOrThrow(`select 1 from t where ${text}`, 'bad_where', what);
  const select = stmts.length === 1 ? stmts[0]!.stmt.SelectStmt : undefined;
  if (!select || select.op !== 'SETOP_NONE' || !select.whereClause || Object.keys(select).some((k) => !WHERE_ONLY_KEYS.has(k))) {
    throw badInput('bad_where', `--where must be one condition (what follows WHERE), not ${stmts.length > 1 ? 'several statements' : 'more SQL around it'}`);
  }
  refuseSideEffects(select.whereClause, 'bad_where', what);
  // The embedded form must parse to the same single condition as well.
  const wrapped = parseOrThrow(`select 1 from t where (${text}) and true`, 'bad_where', what);
  if (wrapped.length !== 1 || Object.keys(wrapped[0]!.stmt.SelectStmt ?? {}).some((k) => !WHERE_ONLY_KEYS.has(k))) {
    throw badInput('bad_where', '--where must be one condition (what follows WHERE)');
  }
  return text;
}

/** Loads the parser and checks a --where: the form for callers outside a hot loop. */
export async function checkWhereSyntax(where: string): Promise<string> {
  await loadSqlParser();
  return parseWhere(where);
}

/**
 * A check query: exactly one SELECT (VALUES and TABLE count), reading only. Returns it trimmed,
 * without a trailing semicolon. Throws a one-line usage error; needs loadSqlParser().
 */
export function parseReadOnlyQuery(sql: string, what = 'check SQL'): string {
  const text = sql.trim().replace(/;\s*$/, '');
  const stmts = parseOrThrow(text, 'bad_check_sql', what);
  if (stmts.length !== 1) throw badInput('bad_check_sql', `${what} must be exactly one statement (got ${stmts.length})`);
  const kind = Object.keys(stmts[0]!.stmt)[0] ?? 'nothing';
  if (kind !== 'SelectStmt') throw badInput('bad_check_sql', `${what} must be a SELECT (got ${kind.replace(/Stmt$/, '').toUpperCase()})`);
  refuseSideEffects(stmts[0]!.stmt, 'bad_check_sql', what);
  return text;
}

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * Runs a statement as a named prepared statement: both drivers then use the extended protocol
 * (Parse/Bind/Execute), where the server refuses more than one command. The name is unique so
 * the drivers' per-connection statement caches never mix two texts.
 */
export async function queryPrepared<R extends pg.QueryResultRow = Record<string, unknown>>(
  client: Queryable,
  text: string,
  values: unknown[] = [],
  rowMode?: 'array',
): Promise<pg.QueryResult<R>> {
  const name = `pitr_${randomBytes(8).toString('hex')}`;
  return client.query({ name, text, values, ...(rowMode && { rowMode }) } as pg.QueryConfig) as unknown as Promise<pg.QueryResult<R>>;
}

/**
 * The one way pitr runs a user's query: parsed (one read-only SELECT), on its own session with
 * the pinned search_path, inside READ ONLY, through a real Parse, always rolled back. Returns the
 * first column of the first row (null when there is none).
 */
export async function runUserQuery(url: string, sql: string, options: ConnectOptions & { what?: string } = {}): Promise<unknown> {
  await loadSqlParser();
  const text = parseReadOnlyQuery(sql, options.what);
  return withClient(
    url,
    async (c) => {
      await c.query('begin transaction isolation level repeatable read read only');
      try {
        const { rows } = await queryPrepared<unknown[] & pg.QueryResultRow>(c, text, [], 'array');
        const first = (rows[0] as unknown[] | undefined)?.[0];
        return first === undefined ? null : first;
      } catch (err) {
        const e = err as { code?: string; message?: string };
        // Unqualified names no longer resolve through the role's search_path: say how to write them.
        const hint = e.code === '42P01' || e.code === '42883' ? ` (pitr runs user SQL with search_path ${PINNED_SEARCH_PATH}: write schema.table, e.g. public.orders)` : '';
        throw new PitrError('user_sql_failed', `${e.message ?? String(err)}${hint}`, { cause: err });
      } finally {
        await c.query('rollback').catch(() => undefined);
      }
    },
    options,
  );
}

import type pg from 'pg';
import { quoteLiteral } from './sql.js';

/**
 * Every session that reads or writes rows for pitr renders values the same way (UTC, ISO dates,
 * full float precision, hex bytea), so equal rows hash equally and text round-trips exactly.
 * Transaction-local: the caller is inside a transaction.
 */
export async function normalizeSession(client: pg.ClientBase, applicationName = 'pitr'): Promise<void> {
  await client.query(normalSessionSql(applicationName));
}

/** The statement normalizeSession runs, for callers that send it with others in one round trip. */
export function normalSessionSql(applicationName: string): string {
  return `select set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true), set_config('IntervalStyle', 'postgres', true),
            set_config('extra_float_digits', '3', true), set_config('bytea_output', 'hex', true), set_config('application_name', ${quoteLiteral(applicationName)}, true),
            set_config('search_path', 'pg_catalog, pg_temp', true)`;
}

import { readFileSync } from 'node:fs';
import pg from 'pg';

/**
 * The public "pagila" sample schema (test/fixtures/pagila, MIT-style licence, Devrim Gündüz) with
 * deterministic generated data: a real-world schema nobody on this project wrote, with a
 * range-partitioned payment table, enums, domains, triggers, views and a materialized view.
 */

const fixtureDir = new URL('../fixtures/pagila/', import.meta.url);
const schemaSql = readFileSync(new URL('schema.sql', fixtureDir), 'utf8');
const dataSql = readFileSync(new URL('data.sql', fixtureDir), 'utf8');

/** Every base table the fixture fills, as "schema.table" (the keys tableChecksums uses); payment is the partitioned parent. */
export const PAGILA_TABLES: string[] = [
  'public.actor',
  'public.address',
  'public.category',
  'public.city',
  'public.country',
  'public.customer',
  'public.film',
  'public.film_actor',
  'public.film_category',
  'public.inventory',
  'public.language',
  'public.payment',
  'public.rental',
  'public.staff',
  'public.store',
];

/** The monthly partitions of public.payment, 2022-01 .. 2026-07; only 2022-01 .. 2022-06 declare foreign keys. */
export const PAGILA_PAYMENT_PARTITIONS: string[] = [...schemaSql.matchAll(/^CREATE TABLE (public\.payment_p\d{4}_\d{2}) \(/gm)].map(
  (m) => m[1]!,
);

// The dump sets session settings (search_path to '' among them) that would otherwise outlive the load
// and break the caller's unqualified queries; these are put back afterwards.
const sessionSettings = [
  ...new Set(
    [...schemaSql.matchAll(/^SET (?!LOCAL\b)(\w+)/gim), ...schemaSql.matchAll(/set_config\('(\w+)'/g)].map((m) => m[1]!.toLowerCase()),
  ),
];

/**
 * Loads schema.sql and the generated data into the (empty) database `client` is connected to, in
 * one transaction. scale multiplies the row counts (1: ~600 customers, 16000 rentals). The
 * client's session settings are left as they were.
 */
export async function loadPagila(client: pg.ClientBase, opts: { scale?: number } = {}): Promise<void> {
  const scale = opts.scale ?? 1;
  if (!(scale > 0) || !Number.isFinite(scale)) throw new Error(`pagila scale must be a positive number, got ${scale}`);
  const { rows } = await client.query<{ name: string; setting: string }>(
    'select name, setting from unnest($1::text[]) as name, current_setting(name) as setting',
    [sessionSettings],
  );
  await client.query('begin');
  try {
    await client.query(schemaSql);
    await client.query(`select set_config('pagila.scale', $1, true)`, [String(scale)]);
    await client.query(dataSql);
    await client.query('commit');
  } catch (error) {
    // A failed transaction already undid the dump's SETs; the load error is the one worth reporting.
    await client.query('rollback').catch(() => undefined);
    throw error;
  }
  for (const { name, setting } of rows) await client.query('select set_config($1, $2, false)', [name, setting]);
}

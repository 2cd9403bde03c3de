/**
 * The database an export is restored into must be empty: pitr never drops or overwrites
 * anything, so a restore over existing objects would either fail halfway or mix two databases.
 * "Empty" means what a fresh `CREATE DATABASE` from template0 holds: the public schema and
 * plpgsql, nothing else a user made.
 */
import type pg from 'pg';
import { PitrError } from '../errors.js';

export interface TargetContents {
  schemas: string[];
  relations: string[];
  functions: string[];
  types: string[];
  extensions: string[];
}

const USER_NAMESPACE = `n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'`;

/** What a user made in the database (each list capped at 20 names). */
export async function targetContents(client: pg.ClientBase): Promise<TargetContents> {
  const names = async (sql: string) => (await client.query<{ n: string }>(sql)).rows.map((r) => r.n);
  const notExtensionMember = (catalog: string, column: string) =>
    `not exists (select 1 from pg_depend d where d.classid = '${catalog}'::regclass and d.objid = ${column} and d.deptype = 'e')`;
  return {
    schemas: await names(`select format('%I', n.nspname) as n from pg_namespace n where ${USER_NAMESPACE} and n.nspname <> 'public' and ${notExtensionMember('pg_namespace', 'n.oid')} order by 1 limit 20`),
    relations: await names(`
      select format('%I.%I', n.nspname, c.relname) as n from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where ${USER_NAMESPACE} and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and ${notExtensionMember('pg_class', 'c.oid')}
      order by 1 limit 20`),
    functions: await names(`
      select format('%I.%I', n.nspname, p.proname) as n from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where ${USER_NAMESPACE} and ${notExtensionMember('pg_proc', 'p.oid')} order by 1 limit 20`),
    types: await names(`
      select format('%I.%I', n.nspname, t.typname) as n from pg_type t join pg_namespace n on n.oid = t.typnamespace
      where ${USER_NAMESPACE} and t.typtype in ('e', 'd', 'r', 'm') and ${notExtensionMember('pg_type', 't.oid')}
         or (${USER_NAMESPACE} and t.typtype = 'c' and exists (select 1 from pg_class c where c.oid = t.typrelid and c.relkind = 'c'))
      order by 1 limit 20`),
    extensions: await names(`select format('%I', extname) as n from pg_extension where extname <> 'plpgsql' order by 1 limit 20`),
  };
}

export function isEmptyTarget(c: TargetContents): boolean {
  return !c.schemas.length && !c.relations.length && !c.functions.length && !c.types.length && !c.extensions.length;
}

/** "3 tables or other relations (public.a, public.b, public.c), 1 schema (app)" */
export function describeContents(c: TargetContents): string {
  const part = (list: string[], one: string, many: string) => {
    if (!list.length) return [];
    const shown = list.slice(0, 5).join(', ') + (list.length > 5 ? ', …' : '');
    return [`${list.length >= 20 ? '20 or more' : list.length} ${list.length === 1 ? one : many} (${shown})`];
  };
  return [
    ...part(c.relations, 'table, view or sequence', 'tables, views or sequences'),
    ...part(c.schemas, 'schema', 'schemas'),
    ...part(c.functions, 'function', 'functions'),
    ...part(c.types, 'type', 'types'),
    ...part(c.extensions, 'extension', 'extensions'),
  ].join(', ');
}

/** Exit 3 (refused) naming what is there; `where` is the redacted target. */
export async function refuseNonEmptyTarget(client: pg.ClientBase, where: string): Promise<void> {
  const contents = await targetContents(client);
  if (isEmptyTarget(contents)) return;
  throw new PitrError(
    'target_not_empty',
    `refusing to restore into ${where}: it is not empty, it holds ${describeContents(contents)}; pitr never drops anything: create an empty database (createdb -T template0) and restore into that`,
    { exit: 'refused' },
  );
}

import type pg from 'pg';
import { fastRowHashSql, hashesExactlyInBinary, isTextLike, mixedRecordHash } from '../db/row-hash.js';
import { cols } from './sql.js';

/**
 * Every row hash a recovery computes, in one place. The recorded hash (planned old rows, written
 * rows, undo) is over the row's text, like the diff's, so it is stable across servers and types;
 * the bulk check of copied rows may use the faster binary hash when both sides allow it.
 */

/** The hash a row is recognised by: over the recovered columns, as text. */
export const rowHash = (names: string[], alias: string) => `hashtextextended(row(${cols(names, alias)})::text, 0)`;

/** A whole row's exact identity for tables without a key: its text, which equal rows share. */
export const rowText = (names: string[], alias: string) => `row(${cols(names, alias)})::text`;

/**
 * The per-row hash for comparing copied rows in bulk. Binary hashing (hash_record_extended,
 * PostgreSQL 14+) costs a quarter of hashing the row's text, but it hashes enums by OID and needs
 * a hash function for every column type, so it is used only for built-in base types on both sides.
 */
export async function bulkRowHash(
  branch: pg.ClientBase,
  production: pg.ClientBase,
  tables: { branch: string; production: string },
  names: string[],
  branchSql: string,
): Promise<string> {
  const text = `hashtextextended(row(${cols(names, 'x')})::text, 0)`;
  const binary = mixedRecordHash(names.map((n) => cols([n], 'x')));
  const builtin = `select current_setting('server_version_num')::int >= 140000
                          and bool_and(t.oid < 16384 and t.typtype = 'b') as ok
                     from pg_attribute a join pg_type t on t.oid = a.atttypid
                    where a.attrelid = $1::regclass and a.attname = any($2) and not a.attisdropped`;
  const [b, prod] = await Promise.all([branch.query(builtin, [tables.branch, names]), production.query(builtin, [tables.production, names])]);
  if (!b.rows[0].ok || !prod.rows[0].ok) return text;
  // A type without an extended hash function fails on the first row: find out on one branch row (same types on both sides).
  await branch.query('savepoint pitr_hash_probe');
  try {
    await branch.query(`select ${binary} from (${branchSql} limit 1) x`);
    await branch.query('release savepoint pitr_hash_probe');
    return binary;
  } catch {
    await branch.query('rollback to savepoint pitr_hash_probe; release savepoint pitr_hash_probe');
    return text;
  }
}

/**
 * A row hash for comparing whole tables fast (src/db/row-hash.ts): binary where that is exact,
 * the row text of the other columns. Equal rows hash equal on any two servers of version 14 or
 * later; `rowHash` otherwise.
 */
export const fastRowHash = (columns: { name: string; type: string }[], alias: string): string => fastRowHashSql(columns, (name) => cols([name], alias));

/**
 * SQL that is true when a column's two values print differently: for the types above the typed
 * comparison says exactly that (text under "C", byte for byte) at a fraction of printing both.
 */
export function columnDiffers(c: { name: string; type: string }, a: string, b: string): string {
  const [x, y] = [cols([c.name], a), cols([c.name], b)];
  if (isTextLike(c.type)) return `${x} collate "C" is distinct from ${y} collate "C"`;
  if (hashesExactlyInBinary(c.type)) return `${x} is distinct from ${y}`;
  // Under "C": a column's own collation (a nondeterministic one says 'a' = 'A') would follow its text.
  return `${x}::text collate "C" is distinct from ${y}::text collate "C"`;
}


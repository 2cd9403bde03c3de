import type pg from 'pg';
import { PitrError } from '../errors.js';
import type { ColumnInfo, TableInfo } from '../db/introspect.js';
import { bothHaveRecordHash, fastRowHashSql } from '../db/row-hash.js';
import { quoteIdent } from '../db/sql.js';
import { comparableColumns } from './schema.js';

/** What is compared and how segments are formed; built once per table diff. */
export interface Plan {
  table: string;
  mode: 'key' | 'multiset';
  keyColumns: ColumnInfo[];
  compared: ColumnInfo[];
  skipped: string[];
  rowText: string;
  /**
   * A row's 64-bit hash, what segments are summed and rows compared by: over the row's text, or
   * the fast exact hash (src/db/row-hash.ts) when both servers have it (useFastRowHash).
   */
  rowHash: string;
  /** The --where filter, parenthesized, or `true`. */
  where: string;
  /** Segments are ranges of this: the first key column, or the row hash without a key. */
  segmentExpr: string;
  segmentType: string;
  /** Integer-like segment expression: buckets are computed arithmetically from min/max. */
  integerSegments: boolean;
  /**
   * Range predicates on the segment expression can use the key's index: the key is not text, or
   * both sides order it by the same deterministic collation (same version). Otherwise text keys
   * are ordered by bytes (COLLATE "C", identical everywhere) and segments are found by scans.
   */
  indexRanges: boolean;
  /** `collate …` clause of the key's own collation when indexRanges holds for a text key. */
  keyCollate: string;
}

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);

export function planRowDiff(branchTable: TableInfo, productionTable: TableInfo, where?: string, onlyColumns?: string[]): Plan {
  let compared = comparableColumns(branchTable, productionTable);
  const allNames = new Set([...branchTable.columns, ...productionTable.columns].map((c) => c.name));
  if (onlyColumns?.length) {
    const unknown = onlyColumns.filter((c) => !compared.some((k) => k.name === c));
    if (unknown.length) throw new PitrError('unknown_column', `cannot compare column(s) ${unknown.join(', ')} of ${branchTable.schema}.${branchTable.name}: not on both sides with the same type`, { exit: 'usage' });
  }
  const byName = new Map(compared.map((c) => [c.name, c]));
  const usable = (cols: string[] | null | undefined) => !!cols?.length && cols.every((c) => byName.has(c)) && sameKeyOnBoth(cols, productionTable);
  const keyNames = usable(branchTable.primaryKey) ? branchTable.primaryKey! : branchTable.uniqueKeys.find((k) => usable(k)) ?? null;
  if (onlyColumns?.length) compared = compared.filter((c) => onlyColumns.includes(c.name) || keyNames?.includes(c.name));
  if (compared.length === 0) throw new PitrError('no_common_columns', `${branchTable.schema}.${branchTable.name} has no column with the same type on both sides`, { exit: 'usage' });
  const skipped = [...allNames].filter((n) => !comparableColumns(branchTable, productionTable).some((c) => c.name === n));
  const rowText = `row(${compared.map((c) => quoteIdent(c.name)).join(', ')})::text`;
  const table = `${branchTable.schema}.${branchTable.name}`;
  const filter = where ? `(${where})` : 'true';
  if (keyNames) {
    const keyColumns = keyNames.map((n) => byName.get(n)!);
    const first = keyColumns[0]!;
    return {
      table,
      mode: 'key',
      keyColumns,
      compared,
      skipped,
      rowText,
      rowHash: `hashtextextended(${rowText}, 0)`,
      where: filter,
      segmentExpr: first.collatable ? `${quoteIdent(first.name)} collate "C"` : quoteIdent(first.name),
      segmentType: first.type,
      integerSegments: INTEGER_TYPES.has(first.type),
      indexRanges: !first.collatable,
      keyCollate: '',
    };
  }
  return {
    table,
    mode: 'multiset',
    keyColumns: [],
    compared,
    skipped,
    rowText,
    // Without a key the hash is the row's identity (fetched by it, reported): always the text's.
    rowHash: `hashtextextended(${rowText}, 0)`,
    where: filter,
    segmentExpr: `hashtextextended(${rowText}, 0)`,
    segmentType: 'bigint',
    integerSegments: true,
    indexRanges: false,
    keyCollate: '',
  };
}

/**
 * With a key, rows are compared by the fast exact hash when both servers can compute it: the
 * first pass then costs a fraction of printing every row. Results are the same (equal hashes
 * exactly when the texts are equal); only the hash values differ, and they never leave the diff.
 */
export async function useFastRowHash(plan: Plan, branch: pg.ClientBase, production: pg.ClientBase): Promise<Plan> {
  if (plan.mode !== 'key' || process.env.PITR_DIFF_HASH === 'text') return plan;
  if (!(await bothHaveRecordHash(branch, production))) return plan;
  return { ...plan, rowHash: fastRowHashSql(plan.compared, quoteIdent) };
}

function sameKeyOnBoth(cols: string[], production: TableInfo): boolean {
  const key = JSON.stringify(cols);
  return JSON.stringify(production.primaryKey) === key || production.uniqueKeys.some((k) => JSON.stringify(k) === key);
}

/**
 * A text key can be ranged through its index only when both sides sort it identically: same
 * collation, deterministic, same provider version, same database locale. Then the segment
 * expression drops COLLATE "C" and every range query is an index range scan.
 */
export async function useKeyCollation(plan: Plan, branch: pg.ClientBase, production: pg.ClientBase, tables: { branch: TableInfo; production: TableInfo }): Promise<Plan> {
  const first = plan.keyColumns[0];
  if (plan.mode !== 'key' || !first?.collatable) return plan;
  let collate = '';
  const fingerprint = async (client: pg.ClientBase, t: TableInfo): Promise<string | null> => {
    const { rows } = await client.query(
      `select quote_ident(n.nspname) || '.' || quote_ident(c.collname) as qualified, c.collname, c.collprovider, c.collisdeterministic as det, coalesce(pg_collation_actual_version(c.oid), '') as version,
              d.datcollate, coalesce(to_jsonb(d) ->> 'datcollversion', '') as datversion
         from pg_attribute a join pg_collation c on c.oid = a.attcollation join pg_namespace n on n.oid = c.collnamespace
         cross join pg_database d
        where a.attrelid = $1::regclass and a.attname = $2 and d.datname = current_database()`,
      [t.qualified, first.name],
    );
    const r = rows[0];
    if (r) collate = ` collate ${r.qualified}`;
    return r && r.det ? JSON.stringify([r.collname, r.collprovider, r.version, r.datcollate, r.datversion]) : null;
  };
  const [b, p] = await Promise.all([fingerprint(branch, tables.branch), fingerprint(production, tables.production)]);
  if (b === null || b !== p) return plan;
  return { ...plan, segmentExpr: quoteIdent(first.name), indexRanges: true, keyCollate: collate };
}

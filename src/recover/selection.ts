import { PitrError } from '../errors.js';
import type { ColumnInfo, ForeignKeyInfo, SchemaInfo, TableInfo } from '../db/introspect.js';
import { findTable } from '../db/introspect.js';
import { quoteIdent } from '../db/sql.js';
import { comparableColumns } from '../diff/schema.js';
import { childrenOf } from './order.js';
import { cols } from './sql.js';

/**
 * Which branch rows are candidates for recovery, as SQL run on the branch: the chosen tables'
 * rows matching --where, and with --cascade the branch's child rows of those rows, followed
 * down every foreign key. Production decides later which candidates it actually lacks.
 */
export interface TableSelection {
  branch: TableInfo;
  production: TableInfo;
  /** Key used to match rows (primary key, else a non-null unique key); empty: a table without one, recovered as a multiset of whole rows. */
  key: string[];
  /** Columns copied and compared: on both sides, same type, not generated. */
  columns: ColumnInfo[];
  /** `select <columns> from <branch table> where …` */
  sql: string;
  /** Chosen by the user (mode applies) or reached through a foreign key (cascade). */
  role: 'root' | 'cascade';
  /** For cascaded tables: the foreign keys they were reached through (their columns may have been SET NULL). */
  via: ForeignKeyInfo[];
}

function keyOf(branch: TableInfo, production: TableInfo, columns: ColumnInfo[]): string[] {
  const names = new Set(columns.map((c) => c.name));
  const same = (a: string[] | null) => !!a && a.every((c) => names.has(c));
  const sameOnBoth = (k: string[]) => JSON.stringify(production.primaryKey) === JSON.stringify(k) || production.uniqueKeys.some((u) => JSON.stringify(u) === JSON.stringify(k));
  if (same(branch.primaryKey) && sameOnBoth(branch.primaryKey!)) return branch.primaryKey!;
  const unique = branch.uniqueKeys.find((k) => same(k) && sameOnBoth(k));
  // No key on both sides: rows are told apart only by their values (multiset recovery).
  return unique ?? [];
}

/**
 * The columns a recovery copies. A column both sides have with different types would be left out
 * and written as NULL or its default: refused, naming the columns, before any work.
 */
function recoveredColumns(branch: TableInfo, production: TableInfo): ColumnInfo[] {
  const prod = new Map(production.columns.map((c) => [c.name, c]));
  const differing = branch.columns.filter((c) => prod.has(c.name) && prod.get(c.name)!.type !== c.type && !c.generated);
  if (differing.length) {
    throw new PitrError(
      'schema_mismatch',
      `${production.schema}.${production.name} has columns whose types differ between the branch and production (${differing.map((c) => `${c.name}: ${c.type} vs ${prod.get(c.name)!.type}`).join(', ')}): recovering would lose their values; align the schema first`,
      { exit: 'usage' },
    );
  }
  return comparableColumns(branch, production).filter((c) => !c.generated);
}

export function selectRoots(
  names: { schema: string | null; name: string }[],
  branchSchema: SchemaInfo,
  productionSchema: SchemaInfo,
  where: string | undefined,
): TableSelection[] {
  return names.map((wanted) => {
    const branch = findTable(branchSchema, wanted);
    const production = findTable(productionSchema, wanted);
    const label = wanted.schema ? `${wanted.schema}.${wanted.name}` : wanted.name;
    if (!branch && !production) throw new PitrError('unknown_table', `unknown table ${label}`, { exit: 'usage' });
    if (!branch) throw new PitrError('table_not_in_branch', `table ${label} does not exist in the branch`, { exit: 'usage' });
    if (!production) throw new PitrError('table_not_in_production', `table ${label} no longer exists in production: recovering it needs the table first`, { exit: 'usage' });
    const columns = recoveredColumns(branch, production);
    const key = keyOf(branch, production, columns);
    return {
      branch,
      production,
      key,
      columns,
      sql: `select ${cols(columns.map((c) => c.name))} from ${branch.qualified} where ${where ? `(${where})` : 'true'}`,
      role: 'root' as const,
      via: [],
    };
  });
}

/**
 * Adds, for every selected table, the branch's rows of its child tables that reference the
 * selected rows, recursively. A table reached several ways gets one selection (OR of the ways).
 */
export function addCascade(roots: TableSelection[], branchSchema: SchemaInfo, productionSchema: SchemaInfo): TableSelection[] {
  const all = new Map(roots.map((s) => [`${s.branch.schema}.${s.branch.name}`, s]));
  const conditions = new Map<string, { sel: TableSelection; conds: string[] }>();
  let frontier = [...roots];
  for (let depth = 0; frontier.length > 0 && depth < 32; depth++) {
    const next: TableSelection[] = [];
    for (const parent of frontier) {
      for (const { child, fk } of childrenOf(parent.branch, branchSchema.tables)) {
        const id = `${child.schema}.${child.name}`;
        // Self-references (trees) are not followed: each level would nest the query once more.
        if (id === `${parent.branch.schema}.${parent.branch.name}`) continue;
        if (all.get(id)?.role === 'root') continue;
        const production = findTable(productionSchema, { schema: child.schema, name: child.name });
        if (!production) continue;
        const columns = recoveredColumns(child, production);
        if (!fk.refColumns.every((c) => parent.columns.some((pc) => pc.name === c))) continue;
        const match = fk.columns.map((c, i) => `p.${quoteIdent(fk.refColumns[i]!)} = c.${quoteIdent(c)}`).join(' and ');
        // A key declared on only some partitions applies to the rows of those partitions.
        const leaves = fk.declaredOn?.leaves;
        const onlyLeaves = leaves ? `c.tableoid = any (array[${leaves.map((l) => `'${l.replace(/'/g, "''")}'`).join(', ')}]::regclass[]) and ` : '';
        const cond = `${onlyLeaves}exists (select 1 from (${parent.sql}) p where ${match})`;
        let entry = conditions.get(id);
        if (!entry) {
          const sel: TableSelection = { branch: child, production, key: keyOf(child, production, columns), columns, sql: '', role: 'cascade', via: [] };
          entry = { sel, conds: [] };
          conditions.set(id, entry);
          all.set(id, sel);
        }
        if (entry.conds.includes(cond)) continue;
        entry.conds.push(cond);
        entry.sel.via.push(fk);
        entry.sel.sql = `select ${cols(columns.map((c) => c.name), 'c')} from ${child.qualified} c where ${entry.conds.map((c) => `(${c})`).join(' or ')}`;
        next.push(entry.sel);
      }
    }
    frontier = next;
  }
  return [...all.values()];
}

import type { ColumnInfo, SchemaInfo, TableInfo } from '../db/introspect.js';

/**
 * What changed in production's schema since the branch's point in time. "Branch" is the past,
 * "production" is now: a table only in the branch was dropped since, one only in production
 * was added since.
 */
export interface TableSchemaDiff {
  table: string;
  columnsOnlyInBranch: string[];
  columnsOnlyInProduction: string[];
  retypedColumns: { column: string; branch: string; production: string }[];
  nullabilityChanged: { column: string; branch: boolean; production: boolean }[];
  constraints: { onlyInBranch: string[]; onlyInProduction: string[]; changed: string[] };
  indexes: { onlyInBranch: string[]; onlyInProduction: string[]; changed: string[] };
  primaryKey: { branch: string[] | null; production: string[] | null } | null;
}

export interface SchemaDiff {
  tablesOnlyInBranch: string[];
  tablesOnlyInProduction: string[];
  changedTables: TableSchemaDiff[];
  enums: { name: string; branch: string[] | null; production: string[] | null }[];
  identical: boolean;
}

const tableKey = (t: TableInfo) => `${t.schema}.${t.name}`;

function compareRecords(a: Record<string, string>, b: Record<string, string>) {
  const onlyInBranch = Object.keys(a).filter((k) => !(k in b));
  const onlyInProduction = Object.keys(b).filter((k) => !(k in a));
  const changed = Object.keys(a).filter((k) => k in b && a[k] !== b[k]);
  return { onlyInBranch, onlyInProduction, changed };
}

const sameList = (a: readonly string[] | null, b: readonly string[] | null) => JSON.stringify(a) === JSON.stringify(b);

export function diffTable(branch: TableInfo, production: TableInfo): TableSchemaDiff | null {
  const prodColumns = new Map(production.columns.map((c) => [c.name, c]));
  const branchColumns = new Map(branch.columns.map((c) => [c.name, c]));
  const both = branch.columns.filter((c) => prodColumns.has(c.name));
  const diff: TableSchemaDiff = {
    table: tableKey(branch),
    columnsOnlyInBranch: branch.columns.filter((c) => !prodColumns.has(c.name)).map((c) => c.name),
    columnsOnlyInProduction: production.columns.filter((c) => !branchColumns.has(c.name)).map((c) => c.name),
    retypedColumns: both.filter((c) => prodColumns.get(c.name)!.type !== c.type).map((c) => ({ column: c.name, branch: c.type, production: prodColumns.get(c.name)!.type })),
    nullabilityChanged: both
      .filter((c) => prodColumns.get(c.name)!.notNull !== c.notNull)
      .map((c) => ({ column: c.name, branch: c.notNull, production: prodColumns.get(c.name)!.notNull })),
    constraints: compareRecords(branch.constraints, production.constraints),
    indexes: compareRecords(branch.indexes, production.indexes),
    primaryKey: sameList(branch.primaryKey, production.primaryKey) ? null : { branch: branch.primaryKey, production: production.primaryKey },
  };
  const empty =
    !diff.columnsOnlyInBranch.length &&
    !diff.columnsOnlyInProduction.length &&
    !diff.retypedColumns.length &&
    !diff.nullabilityChanged.length &&
    !diff.constraints.onlyInBranch.length &&
    !diff.constraints.onlyInProduction.length &&
    !diff.constraints.changed.length &&
    !diff.indexes.onlyInBranch.length &&
    !diff.indexes.onlyInProduction.length &&
    !diff.indexes.changed.length &&
    !diff.primaryKey;
  return empty ? null : diff;
}

export function diffSchemas(branch: SchemaInfo, production: SchemaInfo): SchemaDiff {
  const prodTables = new Map(production.tables.map((t) => [tableKey(t), t]));
  const branchTables = new Map(branch.tables.map((t) => [tableKey(t), t]));
  const changedTables: TableSchemaDiff[] = [];
  for (const [key, t] of branchTables) {
    const other = prodTables.get(key);
    const d = other && diffTable(t, other);
    if (d) changedTables.push(d);
  }
  const prodEnums = new Map(production.enums.map((e) => [`${e.schema}.${e.name}`, e.labels]));
  const branchEnums = new Map(branch.enums.map((e) => [`${e.schema}.${e.name}`, e.labels]));
  const enums = [...new Set([...prodEnums.keys(), ...branchEnums.keys()])]
    .filter((k) => !sameList(branchEnums.get(k) ?? null, prodEnums.get(k) ?? null))
    .map((name) => ({ name, branch: branchEnums.get(name) ?? null, production: prodEnums.get(name) ?? null }));
  const tablesOnlyInBranch = [...branchTables.keys()].filter((k) => !prodTables.has(k));
  const tablesOnlyInProduction = [...prodTables.keys()].filter((k) => !branchTables.has(k));
  return {
    tablesOnlyInBranch,
    tablesOnlyInProduction,
    changedTables,
    enums,
    identical: !tablesOnlyInBranch.length && !tablesOnlyInProduction.length && !changedTables.length && !enums.length,
  };
}

/** Columns a row diff can compare: present on both sides with the same type. */
export function comparableColumns(branch: TableInfo, production: TableInfo): ColumnInfo[] {
  const prod = new Map(production.columns.map((c) => [c.name, c]));
  return branch.columns.filter((c) => prod.get(c.name)?.type === c.type);
}

import type pg from 'pg';
import { qualifiedName } from './sql.js';

export interface ColumnInfo {
  name: string;
  /** format_type(): `integer`, `character varying(20)`, `public.mood`, … */
  type: string;
  notNull: boolean;
  generated: boolean;
  identity: 'always' | 'by default' | null;
  defaultExpr: string | null;
  /** Text-like: ordering depends on a collation, so diffs order it with COLLATE "C" (byte order). */
  collatable: boolean;
}

export type FkAction = 'no action' | 'restrict' | 'cascade' | 'set null' | 'set default';

export interface ForeignKeyInfo {
  name: string;
  columns: string[];
  refSchema: string;
  refTable: string;
  refColumns: string[];
  onDelete: FkAction;
  onUpdate: FkAction;
  deferrable: boolean;
  initiallyDeferred: boolean;
  /**
   * For a foreign key declared on partitions (as schemas from before PostgreSQL 12 do) and lifted
   * onto their partitioned root: the constraints' names (`SET CONSTRAINTS` needs each one) and,
   * when not every leaf partition carries it, the leaves that do (`schema.name`, quoted).
   */
  declaredOn?: { constraints: string[]; leaves: string[] | null };
}

export interface TableInfo {
  schema: string;
  name: string;
  /** Quoted `"schema"."name"`. */
  qualified: string;
  kind: 'table' | 'partitioned' | 'partition';
  /** For partitions: the partitioned parent, as `schema.name`. */
  parent: string | null;
  /** For partitions: the topmost partitioned table, as `schema.name` (multi-level partitioning). */
  root: string | null;
  columns: ColumnInfo[];
  primaryKey: string[] | null;
  /** Unique indexes whose columns are all NOT NULL (no expressions, not partial). */
  uniqueKeys: string[][];
  foreignKeys: ForeignKeyInfo[];
  /** Other constraints (check, unique, exclusion) as `name → definition`. */
  constraints: Record<string, string>;
  /** Index name → definition. */
  indexes: Record<string, string>;
  estimatedRows: number;
}

export interface EnumInfo {
  schema: string;
  name: string;
  labels: string[];
}

export interface SchemaInfo {
  tables: TableInfo[];
  enums: EnumInfo[];
}

const FK_ACTIONS: Record<string, FkAction> = { a: 'no action', r: 'restrict', c: 'cascade', n: 'set null', d: 'set default' };

/** Schemas that belong to Postgres or extensions' internals, never to the application. */
const SYSTEM_SCHEMAS = `n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') and n.nspname not like 'pg_temp_%' and n.nspname not like 'pg_toast_temp_%'`;

export async function introspect(client: pg.ClientBase): Promise<SchemaInfo> {
  // One connection runs one query at a time: sequential, not Promise.all.
  const run = async (sqls: [string, string, string, string, string]) => {
    const out: pg.QueryResult[] = [];
    for (const sql of sqls) out.push(await client.query(sql));
    return out as [pg.QueryResult, pg.QueryResult, pg.QueryResult, pg.QueryResult, pg.QueryResult];
  };
  const [tables, columns, constraints, indexes, enums] = await run([
    `
      select c.oid, n.nspname as schema, c.relname as name, c.relkind, c.relispartition,
             pn.nspname as parent_schema, pc.relname as parent_name,
             greatest(c.reltuples, 0)::float8 as estimated_rows,
             case when c.relispartition then (select format('%s.%s', rn.nspname, r.relname) from pg_class r join pg_namespace rn on rn.oid = r.relnamespace
                                               where r.oid = pg_partition_root(c.oid)) end as root
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        left join pg_inherits i on i.inhrelid = c.oid and c.relispartition
        left join pg_class pc on pc.oid = i.inhparent
        left join pg_namespace pn on pn.oid = pc.relnamespace
       where c.relkind in ('r', 'p') and ${SYSTEM_SCHEMAS}
         and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
       order by n.nspname, c.relname`,
    `
      select a.attrelid as oid, a.attname as name, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as not_null,
             a.attgenerated <> '' as generated, a.attidentity as identity, pg_get_expr(d.adbin, d.adrelid) as default_expr,
             a.attcollation <> 0 as collatable
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
       where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p') and ${SYSTEM_SCHEMAS}
       order by a.attrelid, a.attnum`,
    `
      select con.conrelid as oid, con.conname as name, con.contype as type, pg_get_constraintdef(con.oid) as def,
             array(select a.attname from unnest(con.conkey) with ordinality k(attnum, i) join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum order by k.i)::text[] as columns,
             rn.nspname as ref_schema, rc.relname as ref_table,
             array(select a.attname from unnest(con.confkey) with ordinality k(attnum, i) join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum order by k.i)::text[] as ref_columns,
             con.confdeltype as on_delete, con.confupdtype as on_update, con.condeferrable as deferrable, con.condeferred as deferred
        from pg_constraint con
        join pg_class c on c.oid = con.conrelid join pg_namespace n on n.oid = c.relnamespace
        left join pg_class rc on rc.oid = con.confrelid left join pg_namespace rn on rn.oid = rc.relnamespace
       where ${SYSTEM_SCHEMAS} and con.conparentid = 0
       order by con.conrelid, con.conname`,
    `
      select i.indrelid as oid, ic.relname as name, pg_get_indexdef(i.indexrelid) as def, i.indisunique as is_unique, i.indisprimary as is_primary,
             i.indpred is not null as partial, 0 = any(i.indkey::int2[]) as has_expression,
             array(select a.attname from unnest(i.indkey::int2[]) with ordinality k(attnum, o) join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum order by k.o)::text[] as columns,
             coalesce(bool_and(a2.attnotnull), false) as all_not_null
        from pg_index i join pg_class ic on ic.oid = i.indexrelid
        join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
        left join pg_attribute a2 on a2.attrelid = i.indrelid and a2.attnum = any(i.indkey::int2[])
       where ${SYSTEM_SCHEMAS} and c.relkind in ('r', 'p')
       group by i.indrelid, ic.relname, i.indexrelid, i.indisunique, i.indisprimary, i.indpred, i.indkey
       order by i.indrelid, ic.relname`,
    `
      select n.nspname as schema, t.typname as name, array_agg(e.enumlabel order by e.enumsortorder)::text[] as labels
        from pg_type t join pg_enum e on e.enumtypid = t.oid join pg_namespace n on n.oid = t.typnamespace
       where ${SYSTEM_SCHEMAS}
       group by n.nspname, t.typname order by 1, 2`,
  ]);

  const byOid = new Map<number, TableInfo>();
  for (const r of tables.rows) {
    byOid.set(r.oid, {
      schema: r.schema,
      name: r.name,
      qualified: qualifiedName(r.schema, r.name),
      kind: r.relkind === 'p' ? 'partitioned' : r.relispartition ? 'partition' : 'table',
      parent: r.parent_name ? `${r.parent_schema}.${r.parent_name}` : null,
      root: r.root ?? null,
      columns: [],
      primaryKey: null,
      uniqueKeys: [],
      foreignKeys: [],
      constraints: {},
      indexes: {},
      estimatedRows: Number(r.estimated_rows),
    });
  }
  for (const r of columns.rows) {
    byOid.get(r.oid)?.columns.push({
      name: r.name,
      type: r.type,
      notNull: r.not_null,
      generated: r.generated,
      identity: r.identity === 'a' ? 'always' : r.identity === 'd' ? 'by default' : null,
      defaultExpr: r.default_expr,
      collatable: r.collatable,
    });
  }
  for (const r of constraints.rows) {
    const table = byOid.get(r.oid);
    if (!table) continue;
    if (r.type === 'p') table.primaryKey = r.columns;
    if (r.type === 'f') {
      table.foreignKeys.push({
        name: r.name,
        columns: r.columns,
        refSchema: r.ref_schema,
        refTable: r.ref_table,
        refColumns: r.ref_columns,
        onDelete: FK_ACTIONS[r.on_delete] ?? 'no action',
        onUpdate: FK_ACTIONS[r.on_update] ?? 'no action',
        deferrable: r.deferrable,
        initiallyDeferred: r.deferred,
      });
    }
    table.constraints[r.name] = r.def;
  }
  for (const r of indexes.rows) {
    const table = byOid.get(r.oid);
    if (!table) continue;
    table.indexes[r.name] = r.def.replace(/ ON (ONLY )?\S+ /, ' ON <table> ');
    if (r.is_unique && !r.is_primary && !r.partial && !r.has_expression && r.all_not_null) table.uniqueKeys.push(r.columns);
  }
  const all = [...byOid.values()];
  liftPartitionForeignKeys(all);
  return { tables: all, enums: enums.rows.map((r) => ({ schema: r.schema, name: r.name, labels: r.labels })) };
}

export function findTable(schema: SchemaInfo, wanted: { schema: string | null; name: string }): TableInfo | undefined {
  const matches = schema.tables.filter((t) => t.name === wanted.name && (wanted.schema === null || t.schema === wanted.schema));
  if (wanted.schema === null && matches.length > 1) return matches.find((t) => t.schema === 'public') ?? matches[0];
  return matches[0];
}

const fkShape = (fk: ForeignKeyInfo) => JSON.stringify([fk.columns, fk.refSchema, fk.refTable, fk.refColumns, fk.onDelete, fk.onUpdate, fk.deferrable, fk.initiallyDeferred]);

/**
 * Foreign keys declared on partitions rather than on the partitioned table (the only way before
 * PostgreSQL 12, still common in sample and legacy schemas) become foreign keys of the topmost
 * partitioned table too, so cascades, write order and reference checks see them when rows are
 * read and written through the parent. Keys of the same shape on several partitions become one;
 * when only some leaves carry it, `declaredOn.leaves` says which rows it applies to.
 */
export function liftPartitionForeignKeys(tables: TableInfo[]): void {
  const id = (t: TableInfo) => `${t.schema}.${t.name}`;
  const byId = new Map(tables.map((t) => [id(t), t]));
  const leavesOf = new Map<string, TableInfo[]>();
  const ancestors = (t: TableInfo): TableInfo[] => {
    const out: TableInfo[] = [];
    for (let p = t.parent ? byId.get(t.parent) : undefined; p; p = p.parent ? byId.get(p.parent) : undefined) out.push(p);
    return out;
  };
  for (const t of tables) {
    if (t.kind !== 'partition') continue;
    for (const a of ancestors(t)) leavesOf.set(id(a), [...(leavesOf.get(id(a)) ?? []), t]);
  }
  for (const root of tables.filter((t) => t.kind === 'partitioned' && !t.root)) {
    const leaves = leavesOf.get(id(root)) ?? [];
    const lifted = new Map<string, { fk: ForeignKeyInfo; constraints: string[]; leaves: Set<string> }>();
    const descendants = tables.filter((t) => t.root === id(root));
    for (const d of descendants) {
      const covered = d.kind === 'partition' ? [d] : (leavesOf.get(id(d)) ?? []);
      for (const fk of d.foreignKeys) {
        const shape = fkShape(fk);
        const entry = lifted.get(shape) ?? { fk, constraints: [], leaves: new Set<string>() };
        entry.constraints.push(qualifiedName(d.schema, fk.name));
        for (const l of covered) entry.leaves.add(l.qualified);
        lifted.set(shape, entry);
      }
    }
    const own = new Set(root.foreignKeys.map(fkShape));
    for (const [shape, e] of lifted) {
      if (own.has(shape)) continue;
      const everyLeaf = leaves.every((l) => e.leaves.has(l.qualified));
      const label = e.constraints.length > 1 ? `${e.fk.name} (+${e.constraints.length - 1} partitions)` : e.fk.name;
      root.foreignKeys.push({ ...e.fk, name: label, declaredOn: { constraints: e.constraints, leaves: everyLeaf ? null : [...e.leaves].sort() } });
    }
  }
}

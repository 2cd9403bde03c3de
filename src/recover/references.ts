import { PitrError } from '../errors.js';
import type { ForeignKeyInfo, TableInfo } from '../db/introspect.js';
import { findTable } from '../db/introspect.js';
import { copyBetween } from './copy.js';
import { childrenOf } from './order.js';
import type { RecoverySessions } from './session.js';
import type { TableSelection } from './selection.js';
import { cols, keyMatch, q } from './sql.js';
import type { CompletenessGap, DeleteEffect } from './types.js';

/**
 * What foreign keys say about a plan: child rows that reference rows it inserts but stay missing
 * (the completeness check, always on), and child rows that its deletes would cascade to.
 */

const label = (t: { schema: string; name: string }) => `${t.schema}.${t.name}`;

/** `c.tableoid` limited to the leaves that carry a foreign key declared on only some partitions. */
function leafFilter(fk: ForeignKeyInfo, alias: string): string {
  const leaves = fk.declaredOn?.leaves;
  return leaves ? `${alias}.tableoid = any (array[${leaves.map((l) => `'${l.replace(/'/g, "''")}'`).join(', ')}]::regclass[]) and ` : '';
}

const fkMatch = (fk: ForeignKeyInfo, parentAlias: string, childAlias: string) =>
  fk.columns.map((c, i) => `${parentAlias}.${q(fk.refColumns[i]!)} = ${childAlias}.${q(c)}`).join(' and ');

/**
 * For every foreign key (declared on any table, partitioned or not, selected or not) that
 * references rows the plan inserts: how many child rows the branch has that reference them and
 * that are neither in production nor planned. Such a child row cannot exist in production
 * without its parent, so each one is lost data the plan leaves behind.
 */
export async function findCompletenessGaps(
  p: RecoverySessions,
  planned: { s: TableSelection; n: number; inserts: number; staged: boolean }[],
  counter: { next: number },
): Promise<CompletenessGap[]> {
  const gaps: CompletenessGap[] = [];
  const inPlan = new Map(planned.map((x) => [x.s.production.qualified, x]));
  for (const parent of planned) {
    if (parent.inserts === 0 || parent.s.key.length === 0) continue;
    for (const link of childrenOf(parent.s.production, p.productionSchema.tables)) {
      if (link.child.qualified === parent.s.production.qualified) continue;
      const branchChild = findTable(p.branchSchema, { schema: link.child.schema, name: link.child.name });
      if (!branchChild) continue;
      const childPlan = inPlan.get(link.child.qualified);
      if (childPlan && childPlan.s.key.length === 0) continue;
      const fk = link.fk;
      const refsInKey = fk.refColumns.every((c) => parent.s.key.includes(c));
      // The inserted parents' referenced values: in the plan when they are key columns, else in the staged rows.
      const parents = refsInKey
        ? `(select * from pitr_plan_${parent.n} where action = 'insert')`
        : parent.staged
          ? `(select s.* from pitr_plan_${parent.n} pl join pitr_src_${parent.n} s on ${keyMatch(parent.s.key, 's', 'pl')} where pl.action = 'insert')`
          : `(select t.* from pitr_plan_${parent.n} pl join ${parent.s.production.qualified} t on ${keyMatch(parent.s.key, 't', 'pl')} where pl.action = 'insert')`;
      const childKey = childPlan ? childPlan.s.key : keyOfChild(link.child);
      const carried = [...new Set([...childKey, ...fk.columns])];
      const refs = `pitr_refs_${counter.next++}`;
      await p.production.query(`create temp table ${refs} on commit drop as select ${cols(carried)}, ''::text as part from ${link.child.qualified} where false`);
      await copyBetween(
        p.branch,
        `select ${cols(carried, 'c')}, format('%s.%s', n.nspname, k.relname) as part
           from ${branchChild.qualified} c join pg_class k on k.oid = c.tableoid join pg_namespace n on n.oid = k.relnamespace
          where ${leafFilter(fk, 'c')}exists (select 1 from (${parent.s.sql}) p where ${fkMatch(fk, 'p', 'c')})`,
        p.production,
        refs,
        `${cols(carried)}, part`,
      );
      const notInProduction = childKey.length ? `and not exists (select 1 from ${link.child.qualified} t where ${keyMatch(childKey, 't', 'r')})` : '';
      const notPlanned = childPlan ? `and not exists (select 1 from pitr_plan_${childPlan.n} pc where pc.action = 'insert' and ${keyMatch(childKey, 'pc', 'r')})` : '';
      const { rows } = await p.production.query(
        `select part, count(*)::int8::text as n from ${refs} r
          where exists (select 1 from ${parents} pa where ${fkMatch(fk, 'pa', 'r')}) ${notInProduction} ${notPlanned}
          group by part order by part`,
      );
      for (const r of rows) {
        gaps.push({
          table: label(link.child),
          partition: r.part === label(link.child) ? null : r.part,
          parent: label(parent.s.production),
          foreignKey: fk.name,
          rows: Number(r.n),
        });
      }
    }
  }
  return gaps;
}

/** A child table's key, for one not in the plan: its primary key, else a non-null unique key, else none. */
function keyOfChild(t: TableInfo): string[] {
  return t.primaryKey ?? t.uniqueKeys[0] ?? [];
}

/**
 * Production rows that reference rows --delete-extra plans to delete: ON DELETE CASCADE / SET
 * NULL / SET DEFAULT would change them without a plan or undo data, and NO ACTION / RESTRICT would
 * fail the recovery. Either way the recovery is refused with the list, before anything is deleted.
 */
export async function findDeleteEffects(p: RecoverySessions, s: TableSelection, n: number): Promise<DeleteEffect[]> {
  const effects: DeleteEffect[] = [];
  for (const link of childrenOf(s.production, p.productionSchema.tables)) {
    const fk = link.fk;
    const self = link.child.qualified === s.production.qualified;
    const { rows } = await p.production.query(
      `select count(*)::int8::text as n from ${link.child.qualified} c
        where ${leafFilter(fk, 'c')}exists (select 1 from pitr_plan_${n} pl join ${s.production.qualified} t on ${keyMatch(s.key, 't', 'pl')}
                                             where pl.action = 'delete' and ${fkMatch(fk, 't', 'c')})
          ${self ? `and not exists (select 1 from pitr_plan_${n} pl where pl.action = 'delete' and ${keyMatch(s.key, 'c', 'pl')})` : ''}`,
    );
    const count = Number(rows[0].n);
    if (count > 0) effects.push({ table: label(link.child), parent: label(s.production), foreignKey: fk.name, onDelete: fk.onDelete, rows: count });
  }
  return effects;
}

export function deleteEffectsRefusal(effects: DeleteEffect[]): PitrError {
  const list = effects.map((e) => `${e.rows} rows of ${e.table} reference them (${e.foreignKey}, ON DELETE ${e.onDelete.toUpperCase()})`).join('; ');
  return new PitrError(
    'delete_extra_references',
    `--delete-extra would delete rows that other rows reference: ${list}; those rows are not in the plan and could not be undone: recover or remove them first; nothing was changed`,
    { exit: 'refused' },
  );
}

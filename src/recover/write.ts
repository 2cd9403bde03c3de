import type pg from 'pg';
import { PitrError } from '../errors.js';
import { whereRejected } from '../db/sql.js';
import { copyBetween } from './copy.js';
import { rowHash } from './hash.js';
import { anyDiffers, settableColumns } from './plan.js';
import type { RecoverySessions } from './session.js';
import type { TableSelection } from './selection.js';
import { cols, keyMatch, lit, q } from './sql.js';
import { childrenOf } from './order.js';
import type { TableInfo } from '../db/introspect.js';

/**
 * The statements that change production's rows for a keyed table, each guarded so it writes
 * only what was planned: inserts of planned keys, updates of rows still as planned (old-row
 * hash), deletes likewise. What each wrote is recorded in `pitr_applied_<n>` (key, action, hash).
 */

/** A row with a planned key appeared in production during a fast insert: the apply is redone the careful way. */
export class InsertRaced extends Error {}

/**
 * The row is as planned. Written as IS TRUE so the planner cannot make the hash a join key: as
 * one, it would hash every row of the table to build the join instead of the planned rows only.
 */
const stillAsPlanned = (names: string[]) => `(${rowHash(names, 't')} = p.old_hash) is true`;

const overridingOf = (s: TableSelection) => (s.columns.some((c) => c.identity === 'always') ? ' overriding system value' : '');

export async function createAppliedTable(client: pg.ClientBase, s: TableSelection, n: number): Promise<void> {
  await client.query(`create temp table pitr_applied_${n} on commit drop as select ${cols(s.key)}, ''::text as action, 0::int8 as h from ${s.production.qualified} where false`);
}

/**
 * Every selected row is missing in production: COPY them from the branch straight into the table
 * (COPY writes in batches, INSERT … SELECT row by row). A key that appeared in production
 * meanwhile fails the COPY, and the apply is redone carefully. The rows are proven equal to the
 * branch's by the final verification (by xmin).
 */
export async function copyMissingRows(p: RecoverySessions, s: TableSelection, branchSql: string, planned: number, where: string | undefined): Promise<void> {
  const t = s.production.qualified;
  let copied: number;
  try {
    copied = await copyBetween(p.branch, branchSql, p.production, t, cols(s.columns.map((c) => c.name)));
  } catch (err) {
    if ((err as { code?: string }).code === '23505') throw new InsertRaced();
    throw where !== undefined ? whereRejected(err) : err;
  }
  if (copied !== planned) throw new PitrError('insert_count', `copied ${copied} rows into ${t} where the plan has ${planned}: rolled back, nothing was changed`);
}

/**
 * Inserts the planned rows from the staged ones. The fast way is a plain INSERT, which can only
 * write exactly the planned rows or fail on a key that appeared since the plan. With `careful`
 * (a trigger or rule could change rows on their way in, or the fast way failed), rows go in with
 * ON CONFLICT DO NOTHING and this transaction's rows are found by xmin and hashed one by one, so
 * conflicts are exact. Returns whether the inserts are exactly the plan's.
 */
export async function insertPlanned(client: pg.ClientBase, s: TableSelection, n: number, planned: number, careful: boolean, everyStagedRow: boolean): Promise<boolean> {
  const names = s.columns.map((c) => c.name);
  const t = s.production.qualified;
  // When the plan inserts every staged row (a deletion undone), the join with the plan selects nothing less.
  const select = everyStagedRow
    ? `select ${cols(names, 's')} from pitr_src_${n} s`
    : `select ${cols(names, 's')} from pitr_src_${n} s join pitr_plan_${n} p on ${keyMatch(s.key, 's', 'p')} and p.action = 'insert'`;
  if (!careful) {
    let done;
    try {
      done = await client.query(`insert into ${t} (${cols(names)})${overridingOf(s)} ${select}`);
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new InsertRaced();
      throw err;
    }
    if (done.rowCount !== planned) throw new PitrError('insert_count', `inserted ${done.rowCount} rows into ${t} where the plan has ${planned}: rolled back, nothing was changed`);
    return true;
  }
  await client.query(`insert into ${t} (${cols(names)})${overridingOf(s)} ${select} on conflict do nothing`);
  await client.query(
    `insert into pitr_applied_${n}
     select ${cols(s.key, 'p')}, 'insert', ${rowHash(names, 't')} from pitr_plan_${n} p join ${t} t on ${keyMatch(s.key, 't', 'p')}
      where p.action = 'insert' and t.xmin = pg_current_xact_id()::xid`,
  );
  return false;
}

/**
 * Updates rows still exactly as planned, each once, setting only the columns that differ (an
 * unchanged indexed column keeps the update HOT-eligible). Returns how many updated rows, as the
 * statement left them, differ from their branch row: the caller uses it as the verification of
 * the updates when nothing can change those rows before COMMIT (see updatesStayAsWritten).
 */
export async function updatePlanned(client: pg.ClientBase, s: TableSelection, n: number): Promise<number> {
  const names = s.columns.map((c) => c.name);
  const t = s.production.qualified;
  const settable = settableColumns(s);
  if (!settable.length) return 0;
  const { rows } = await client.query(
    `with upd as (
       update ${t} t set ${settable.map((c) => `${q(c)} = case when ${lit(c)} = any(p.cols) then s.${q(c)} else t.${q(c)} end`).join(', ')}
         from pitr_src_${n} s, pitr_plan_${n} p
        where ${keyMatch(s.key, 't', 's')} and ${keyMatch(s.key, 'p', 's')} and p.action = 'update' and ${stillAsPlanned(names)}
       returning ${cols(s.key, 't')}, ${rowHash(names, 't')} as h, ${anyDiffers(s.columns, 't', 's')} as differs),
     applied as (insert into pitr_applied_${n} select ${cols(s.key)}, 'update', h from upd)
     select count(*) filter (where differs)::int as mismatches from upd`,
  );
  return rows[0].mismatches as number;
}

/**
 * Whether the rows an UPDATE of this table returns are the rows COMMIT keeps: no user trigger or
 * rule fires in this recovery, no other table is written (nothing later can cascade or write
 * back), and no foreign key acts on other tables when this one's columns change.
 */
export function updatesStayAsWritten(p: RecoverySessions, s: TableSelection, triggersFire: boolean, tables: readonly TableInfo[]): boolean {
  if (s.role !== 'root' || p.selections.length !== 1 || triggersFire) return false;
  return childrenOf(s.production, tables).every(({ fk }) => fk.onUpdate === 'no action' || fk.onUpdate === 'restrict');
}

/** Deletes rows still exactly as planned. */
export async function deletePlanned(client: pg.ClientBase, s: TableSelection, n: number): Promise<void> {
  const names = s.columns.map((c) => c.name);
  const t = s.production.qualified;
  await client.query(
    `with del as (
       delete from ${t} t using pitr_plan_${n} p
        where ${keyMatch(s.key, 't', 'p')} and p.action = 'delete' and ${stillAsPlanned(names)}
       returning ${cols(s.key, 't')})
     insert into pitr_applied_${n} select ${cols(s.key)}, 'delete', null from del`,
  );
}

/** Planned rows that were not written, each with the reason: production changed them after the plan. */
export async function findConflicts(client: pg.ClientBase, s: TableSelection, n: number, insertsExact: boolean): Promise<pg.QueryResult> {
  const t = s.production.qualified;
  return client.query(
    `select row_to_json(k)::text as key, p.action,
            case when p.action = 'insert' then 'a row with this key appeared in production after the plan'
                 when t.ctid is null then 'the row was deleted in production after the plan'
                 else 'the row changed in production after the plan' end as reason
       from pitr_plan_${n} p
       cross join lateral (select ${cols(s.key, 'p')}) k
       left join ${t} t on ${keyMatch(s.key, 't', 'p')}
      where not exists (select 1 from pitr_applied_${n} a where ${keyMatch(s.key, 'a', 'p')} and a.action = p.action)
        ${insertsExact ? `and p.action <> 'insert'` : ''}`,
  );
}

/** Sequences never move backwards, and never stay behind the keys just put back. */
export async function bumpSequences(client: pg.ClientBase, s: TableSelection): Promise<void> {
  for (const c of s.columns) {
    const { rows } = await client.query(`select pg_get_serial_sequence($1, $2) as seq`, [s.production.qualified, c.name]);
    const seq: string | null = rows[0]?.seq;
    if (!seq) continue;
    await client.query(
      `select setval($1::regclass, m) from (select max(${q(c.name)})::int8 as m from ${s.production.qualified}) x
        where m is not null and m > (select last_value from ${seq})`,
      [seq],
    );
  }
}

/** Whether a row-level BEFORE INSERT trigger or an INSERT rule (on the table or a partition) could change or redirect the rows. */
export async function rowsMayChangeOnInsert(client: pg.ClientBase, qualified: string): Promise<boolean> {
  const { rows } = await client.query(
    `with rels as (select relid from pg_partition_tree($1::regclass) union select $1::regclass)
     select exists (select 1 from pg_trigger g join rels on g.tgrelid = rels.relid
                     where not g.tgisinternal and g.tgenabled in ('O', 'A') and (g.tgtype & 1) = 1 and (g.tgtype & 2) = 2 and (g.tgtype & 4) = 4)
         or exists (select 1 from pg_rewrite r join rels on r.ev_class = rels.relid where r.ev_type = '3' and r.ev_enabled in ('O', 'A')) as may`,
    [qualified],
  );
  return rows[0].may as boolean;
}

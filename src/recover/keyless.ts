import type pg from 'pg';
import { copyFromFile, copyToFile } from './copy.js';
import { rowText } from './hash.js';
import { tablePlanOf } from './plan.js';
import type { RecoverySessions } from './session.js';
import type { TableSelection } from './selection.js';
import { cols } from './sql.js';
import type { RecoverRequest, TablePlan } from './types.js';

/**
 * Tables without a key (event and log tables) are recovered as multisets of whole rows, as the
 * diff compares them: for each distinct row, the copies the branch has minus the copies
 * production has are put back; with --delete-extra, surplus copies are deleted (by ctid, as many
 * as are surplus). `pitr_plan_<n>` holds one row per distinct row: its text, action and copies.
 */

const overridingOf = (s: { columns: { identity: string | null }[] }) => (s.columns.some((c) => c.identity === 'always') ? ' overriding system value' : '');

export async function planKeyless(p: RecoverySessions, s: TableSelection, n: number, req: RecoverRequest, file: string, scope?: string): Promise<TablePlan> {
  const names = s.columns.map((c) => c.name);
  const t = s.production.qualified;
  const plan = tablePlanOf(s, n);
  await p.production.query(`create temp table pitr_counts_${n} on commit drop as select ${rowText(names, 's')} as r, count(*)::int8 as copies from pitr_src_${n} s group by 1`);
  await p.production.query(`create index on pitr_counts_${n} (r); analyze pitr_counts_${n}`);
  // Production's copies of the rows the branch selection has (a full scan: without a key there is no index to ask).
  await p.production.query(
    `create temp table pitr_have_${n} on commit drop as
       select ${rowText(names, 't')} as r, count(*)::int8 as copies from ${t} t where ${rowText(names, 't')} in (select r from pitr_counts_${n}) group by 1`,
  );
  const inserted = await p.production.query(
    `create temp table pitr_plan_${n} on commit drop as
       select b.r, 'insert'::text as action, b.copies - coalesce(h.copies, 0) as copies
         from pitr_counts_${n} b left join pitr_have_${n} h on h.r = b.r where b.copies > coalesce(h.copies, 0)`,
  );
  void inserted;
  if (req.deleteExtra && s.role === 'root') {
    // Production's copies in the selection: from the read-only session when --where chose them, else the whole table.
    const have = scope ?? `(select ${rowText(names, 't')} as r, count(*)::int8 as copies from ${t} t group by 1)`;
    await p.production.query(
      `insert into pitr_plan_${n}
       select h.r, 'delete', h.copies - coalesce(b.copies, 0) from ${have} h left join pitr_counts_${n} b on b.r = h.r where h.copies > coalesce(b.copies, 0)`,
    );
  }
  await p.production.query(`analyze pitr_plan_${n}`);
  const { rows } = await p.production.query(`select action, sum(copies)::int8::text as n from pitr_plan_${n} group by action`);
  for (const r of rows) plan[r.action as 'insert' | 'delete'] = Number(r.n);
  await copyToFile(p.production, `select * from pitr_plan_${n}`, file);
  return plan;
}

export interface KeylessOutcome {
  inserted: number;
  deleted: number;
  conflicts: number;
}

/**
 * Writes a keyless plan. Undo data first: the rows about to be deleted (`<n>.before`, exact
 * values) and the plan (`<n>.applied`); inserted copies are recognised by this transaction's xid.
 */
export async function applyKeyless(p: RecoverySessions, s: TableSelection, n: number, tp: TablePlan, data: (name: string) => string): Promise<KeylessOutcome> {
  const names = s.columns.map((c) => c.name);
  const t = s.production.qualified;
  // The ctids of the surplus copies, as many per distinct row as the plan deletes.
  await p.production.query(
    `create temp table pitr_del_${n} on commit drop as
       select x.ctid as at from (select t.ctid, ${rowText(names, 't')} as r, row_number() over (partition by ${rowText(names, 't')}) as k
                                  from ${t} t where ${rowText(names, 't')} in (select r from pitr_plan_${n} where action = 'delete')) x
         join pitr_plan_${n} p on p.r = x.r and p.action = 'delete' and x.k <= p.copies`,
  );
  await copyToFile(p.production, `select ${cols(names, 't')} from ${t} t where t.ctid in (select at from pitr_del_${n})`, data(`${n}.before`));
  await copyToFile(p.production, `select r, action, copies from pitr_plan_${n}`, data(`${n}.applied`));
  let inserted = 0;
  if (tp.insert > 0) {
    const done = await p.production.query(
      `insert into ${t} (${cols(names)})${overridingOf(s)}
       select ${cols(names, 'x')} from (select distinct on (${rowText(names, 's')}) s.*, ${rowText(names, 's')} as pitr_r from pitr_src_${n} s) x
         join pitr_plan_${n} p on p.r = x.pitr_r and p.action = 'insert' cross join generate_series(1, p.copies)`,
    );
    inserted = done.rowCount ?? 0;
  }
  let deleted = 0;
  if (tp.delete > 0) {
    // A copy changed or deleted by someone else since is not touched: the ctid guard and the row text must both still hold.
    const done = await p.production.query(
      `delete from ${t} t using pitr_del_${n} d where t.ctid = d.at and ${rowText(names, 't')} in (select r from pitr_plan_${n} where action = 'delete')`,
    );
    deleted = done.rowCount ?? 0;
  }
  return { inserted, deleted, conflicts: tp.insert - inserted + (tp.delete - deleted) };
}

/**
 * After every write: each distinct row the plan touched has exactly as many copies in production
 * as on the branch (inserted ones) or no more than the branch (deleted surplus). Returns the
 * number of distinct rows that do not.
 */
export async function verifyKeyless(p: RecoverySessions, s: TableSelection, n: number): Promise<number> {
  const names = s.columns.map((c) => c.name);
  const { rows } = await p.production.query(
    `with now_have as (select ${rowText(names, 't')} as r, count(*)::int8 as copies from ${s.production.qualified} t
                        where ${rowText(names, 't')} in (select r from pitr_plan_${n}) group by 1)
     select count(*)::int as n from pitr_plan_${n} p left join pitr_counts_${n} b on b.r = p.r left join now_have h on h.r = p.r
      where coalesce(h.copies, 0) <> coalesce(b.copies, 0)`,
  );
  return rows[0].n as number;
}

/**
 * Reverses a keyless recovery in undo's two passes: first (children first) the copies it inserted
 * are removed, recognised by the recovery's xid and still as inserted; then (parents first) the
 * copies it deleted are put back.
 */
export async function undoKeylessRemove(client: pg.ClientBase, tp: TablePlan, recoveryXid: string | null, data: (name: string) => string): Promise<{ remove: number; planned: number }> {
  const names = tp.columns.map((c) => c.name);
  const n = tp.n;
  await client.query(`create temp table pitr_applied_${n} (r text, action text, copies int8) on commit drop`);
  await client.query(`create temp table pitr_before_${n} on commit drop as select ${cols(names)} from ${tp.qualified} where false`);
  await copyFromFile(client, data(`${n}.applied`), `pitr_applied_${n}`, 'r, action, copies');
  await copyFromFile(client, data(`${n}.before`), `pitr_before_${n}`, cols(names));
  const planned = Number((await client.query(`select coalesce(sum(copies), 0)::int8::text as n from pitr_applied_${n}`)).rows[0].n);
  if (!recoveryXid) return { remove: 0, planned };
  const removed = await client.query(
    `delete from ${tp.qualified} t where t.ctid in (
       select x.at from (select t2.ctid as at, ${rowText(names, 't2')} as r, row_number() over (partition by ${rowText(names, 't2')}) as k
                           from ${tp.qualified} t2 where t2.xmin = '${BigInt(recoveryXid) % 4294967296n}'::xid) x
         join pitr_applied_${n} a on a.r = x.r and a.action = 'insert' and x.k <= a.copies)`,
  );
  return { remove: removed.rowCount ?? 0, planned };
}

export async function undoKeylessReinsert(client: pg.ClientBase, tp: TablePlan): Promise<number> {
  const names = tp.columns.map((c) => c.name);
  const reinserted = await client.query(`insert into ${tp.qualified} (${cols(names)})${overridingOf(tp)} select ${cols(names)} from pitr_before_${tp.n}`);
  return reinserted.rowCount ?? 0;
}

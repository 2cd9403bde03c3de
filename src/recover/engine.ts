import { join } from 'node:path';
import type pg from 'pg';
import { PitrError } from '../errors.js';
import { connect } from '../db/connect.js';
import { introspect, type ColumnInfo, type TableInfo } from '../db/introspect.js';
import { checkWhere, parseTableName, whereRejected } from '../db/sql.js';
import { normalizeSession } from '../db/session.js';
import { cols, keyMatch, q, rowHash } from './sql.js';
import { beginDiffSession, endDiffSession } from '../diff/rows.js';
import type { ProgressSink } from '../providers/types.js';
import { copyBetween, copyFromFile, copyToFile } from './copy.js';
import { insertOrder } from './order.js';
import type { RunState, RunStore } from './runs.js';
import { addCascade, selectRoots, type TableSelection } from './selection.js';

export type RecoverMode = 'missing' | 'changed' | 'all';

export interface RecoverRequest {
  branchUrl: string;
  productionUrl: string;
  tables: string[];
  mode: RecoverMode;
  where?: string;
  cascade: boolean;
  deleteExtra: boolean;
  onProgress?: ProgressSink;
}

export interface TablePlan {
  /** Position in the plan: parents first. */
  n: number;
  table: string;
  qualified: string;
  role: 'root' | 'cascade';
  key: string[];
  columns: { name: string; type: string; identity: ColumnInfo['identity'] }[];
  via: string[];
  candidates: number;
  insert: number;
  update: number;
  delete: number;
  /** Changed column → rows. */
  updateColumns: Record<string, number>;
}

export interface RecoveryPlan {
  runId: string;
  mode: RecoverMode;
  where: string | null;
  cascade: boolean;
  deleteExtra: boolean;
  tables: TablePlan[];
  deferred: string[];
  totals: { insert: number; update: number; delete: number };
  seconds: number;
}

export interface TableOutcome {
  table: string;
  inserted: number;
  updated: number;
  deleted: number;
  conflicts: number;
  conflictSamples: { key: Record<string, string | null>; action: string; reason: string }[];
  verifiedMismatches: number;
}

export interface RecoveryResult {
  runId: string;
  plan: RecoveryPlan;
  tables: TableOutcome[];
  totals: { inserted: number; updated: number; deleted: number; conflicts: number };
  verified: boolean;
  seconds: { plan: number; apply: number };
}

interface Prepared {
  branch: pg.Client;
  production: pg.Client;
  selections: TableSelection[];
  deferred: string[];
}

async function prepare(req: RecoverRequest, productionIsolation: 'repeatable read' | 'read committed'): Promise<Prepared> {
  const [branch, production] = await Promise.all([connect(req.branchUrl), connect(req.productionUrl)]);
  try {
    await beginDiffSession(branch);
    // Staging tables of a big recovery should stay in memory: temp_buffers only counts before the first temp table.
    await production.query(`set temp_buffers = '256MB'`);
    await production.query(`begin isolation level ${productionIsolation}`);
    await normalizeSession(production, 'pitr recover');
    await production.query(`set local work_mem = '128MB'`);
    const [branchSchema, productionSchema] = [await introspect(branch), await introspect(production)];
    let wanted;
    try {
      wanted = req.tables.map((t) => parseTableName(t));
    } catch (err) {
      throw new PitrError('bad_table', (err as Error).message, { exit: 'usage' });
    }
    const roots = selectRoots(wanted, branchSchema, productionSchema, req.where);
    if (req.where !== undefined) {
      for (const r of roots) {
        await checkWhere(branch, r.branch.qualified, req.where);
        if (req.deleteExtra) await checkWhere(production, r.production.qualified, req.where);
      }
    }
    const selections = req.cascade ? addCascade(roots, branchSchema, productionSchema) : roots;
    const order = insertOrder(selections.map((s) => s.production));
    const rank = new Map(order.tables.map((t, i) => [t.qualified, i]));
    selections.sort((a, b) => rank.get(a.production.qualified)! - rank.get(b.production.qualified)!);
    return { branch, production, selections, deferred: order.deferred };
  } catch (err) {
    await Promise.all([branch.end().catch(() => undefined), production.end().catch(() => undefined)]);
    throw err;
  }
}

async function close(p: Prepared, commit: boolean): Promise<void> {
  if (!commit) await p.production.query('rollback').catch(() => undefined);
  await endDiffSession(p.branch);
  await Promise.all([p.branch.end().catch(() => undefined), p.production.end().catch(() => undefined)]);
}

/** Copies the selection's branch rows into a temp table in production (`pitr_src_<n>`). */
async function stageSource(p: Prepared, s: TableSelection, n: number, where: string | undefined): Promise<number> {
  const names = s.columns.map((c) => c.name);
  await p.production.query(`create temp table pitr_src_${n} on commit drop as select ${cols(names)} from ${s.production.qualified} where false`);
  let copied: number;
  try {
    copied = await copyBetween(p.branch, s.sql, p.production, `pitr_src_${n}`, cols(names));
  } catch (err) {
    throw where !== undefined && s.role === 'root' ? whereRejected(err) : err;
  }
  // Statistics, not an index: the joins against it are hash joins.
  await p.production.query(`analyze pitr_src_${n}`);
  return copied;
}

/** The plan rows of one table, computed in production: what to insert, update (which columns) or delete. */
function planSql(s: TableSelection, n: number, mode: RecoverMode, deleteExtra: boolean, where: string | undefined): string {
  const names = s.columns.map((c) => c.name);
  const t = s.production.qualified;
  // new_hash: the hash the inserted row will have, so the insert can be verified in aggregate.
  const parts = [
    `select ${cols(s.key, 's')}, 'insert'::text as action, null::int8 as old_hash, ${rowHash(names, 's')} as new_hash, null::text[] as cols
       from pitr_src_${n} s where not exists (select 1 from ${t} t where ${keyMatch(s.key, 't', 's')})`,
  ];
  const changedCols = (candidates: string[], cond: (c: string) => string) =>
    `array_remove(array[${candidates.map((c) => `case when ${cond(c)} then ${`'${c.replace(/'/g, "''")}'`} end`).join(', ')}]::text[], null)`;
  if (s.role === 'root' && mode !== 'missing') {
    const settable = s.columns.filter((c) => c.identity !== 'always' && !s.key.includes(c.name)).map((c) => c.name);
    if (settable.length) {
      parts.push(
        `select ${cols(s.key, 's')}, 'update', ${rowHash(names, 't')}, null, ${changedCols(settable, (c) => `s.${q(c)}::text is distinct from t.${q(c)}::text`)}
           from pitr_src_${n} s join ${t} t on ${keyMatch(s.key, 't', 's')}
          where row(${cols(settable, 's')})::text is distinct from row(${cols(settable, 't')})::text`,
      );
    }
  }
  if (s.role === 'cascade') {
    // ON DELETE SET NULL: the child row survived with its reference cleared; put the reference back, nothing else.
    const fkCols = [...new Set(s.via.flatMap((fk) => fk.columns))].filter((c) => s.columns.some((x) => x.name === c) && !s.key.includes(c));
    if (fkCols.length) {
      parts.push(
        `select ${cols(s.key, 's')}, 'update', ${rowHash(names, 't')}, null, ${changedCols(fkCols, (c) => `t.${q(c)} is null and s.${q(c)} is not null`)}
           from pitr_src_${n} s join ${t} t on ${keyMatch(s.key, 't', 's')}
          where ${fkCols.map((c) => `(t.${q(c)} is null and s.${q(c)} is not null)`).join(' or ')}`,
      );
    }
  }
  if (s.role === 'root' && deleteExtra) {
    parts.push(
      `select ${cols(s.key, 't')}, 'delete', ${rowHash(names, 't')}, null, null::text[] from ${t} t
        where ${where ? `(${where})` : 'true'} and not exists (select 1 from pitr_src_${n} s where ${keyMatch(s.key, 't', 's')})`,
    );
  }
  return parts.join('\nunion all\n');
}

function tablePlanOf(s: TableSelection, n: number): TablePlan {
  return {
    n,
    table: `${s.production.schema}.${s.production.name}`,
    qualified: s.production.qualified,
    role: s.role,
    key: s.key,
    columns: s.columns.map((c) => ({ name: c.name, type: c.type, identity: c.identity })),
    via: s.via.map((fk) => fk.name),
    candidates: 0,
    insert: 0,
    update: 0,
    delete: 0,
    updateColumns: {},
  };
}

/**
 * Builds the plan without writing anything to production's tables (the staging temp tables
 * live in a transaction that is rolled back). The plan rows are saved in the run directory, so
 * the apply step writes exactly what was planned and reports anything that moved since.
 */
/** Builds `pitr_plan_<n>` for a staged table, counts it and saves it to the run directory. */
async function computeTablePlan(p: Prepared, s: TableSelection, n: number, req: RecoverRequest, file: string): Promise<TablePlan> {
  const plan = tablePlanOf(s, n);
  await p.production.query(`create temp table pitr_plan_${n} on commit drop as ${planSql(s, n, req.mode, req.deleteExtra && s.role === 'root', req.where)}`);
  await p.production.query(`analyze pitr_plan_${n}`);
  const { rows } = await p.production.query(`select action, count(*)::int as n from pitr_plan_${n} group by action`);
  for (const r of rows) plan[r.action as 'insert' | 'update' | 'delete'] = r.n;
  const colCounts = await p.production.query(`select c, count(*)::int as n from pitr_plan_${n}, unnest(cols) c group by c order by 2 desc`);
  for (const r of colCounts.rows) plan.updateColumns[r.c] = r.n;
  await copyToFile(p.production, `select * from pitr_plan_${n}`, file);
  return plan;
}

function wholePlan(run: RunState, req: RecoverRequest, tables: TablePlan[], deferred: string[], started: number): RecoveryPlan {
  return {
    runId: run.id,
    mode: req.mode,
    where: req.where ?? null,
    cascade: req.cascade,
    deleteExtra: req.deleteExtra,
    tables,
    deferred,
    totals: {
      insert: tables.reduce((a, t) => a + t.insert, 0),
      update: tables.reduce((a, t) => a + t.update, 0),
      delete: tables.reduce((a, t) => a + t.delete, 0),
    },
    seconds: (Date.now() - started) / 1000,
  };
}

/**
 * Builds the plan without writing anything to production's tables (the staging temp tables
 * live in a transaction that is rolled back). The plan rows are saved in the run directory, so
 * the apply step writes exactly what was planned and reports anything that moved since.
 */
export async function planRecovery(req: RecoverRequest, store: RunStore, run: RunState): Promise<RecoveryPlan> {
  const started = Date.now();
  const p = await prepare(req, 'repeatable read');
  try {
    const tables: TablePlan[] = [];
    for (const [n, s] of p.selections.entries()) {
      req.onProgress?.({ phase: 'plan', message: `planning ${s.production.schema}.${s.production.name}`, fraction: n / p.selections.length });
      const candidates = await stageSource(p, s, n, req.where);
      tables.push({ ...(await computeTablePlan(p, s, n, req, join(store.dir(run.id), 'data', `${n}.plan`))), candidates });
    }
    const plan = wholePlan(run, req, tables, p.deferred, started);
    await store.writeJson(run.id, 'plan.json', plan);
    return plan;
  } finally {
    await close(p, false);
  }
}

/**
 * Applies a saved plan in one production transaction (READ COMMITTED, so a row a concurrent
 * writer changed is re-checked and skipped rather than failing everything). Before any write,
 * the rows about to be overwritten or deleted and the rows about to be inserted are saved to
 * the run directory; the transaction id is recorded so an interrupted run can be settled.
 */
export async function applyRecovery(req: RecoverRequest, saved: RecoveryPlan | null, store: RunStore, run: RunState): Promise<RecoveryResult> {
  const started = Date.now();
  const p = await prepare(req, 'read committed');
  const data = (name: string) => join(store.dir(run.id), 'data', name);
  let committed = false;
  try {
    const { rows } = await p.production.query('select txid_current()::text as txid');
    run.txid = rows[0].txid;
    run.status = 'applying';
    await store.save(run);
    const deferred = saved ? saved.deferred : p.deferred;
    if (deferred.length) await p.production.query(`set constraints ${deferred.map(q).join(', ')} deferred`);
    const outcomes: TableOutcome[] = [];
    const planned: TablePlan[] = [];
    let inlinePlanSeconds = 0;
    // Without a saved plan (--yes), the plan is made inside this transaction: rows are staged once.
    const work = saved
      ? saved.tables.map((tp) => {
          const s = p.selections.find((x) => x.production.qualified === tp.qualified);
          if (!s) throw new PitrError('plan_stale', `table ${tp.table} is no longer part of this recovery: plan again`);
          return { s, n: tp.n, tp: tp as TablePlan | null };
        })
      : p.selections.map((s, n) => ({ s, n, tp: null as TablePlan | null }));
    for (const item of work) {
      const { s, n } = item;
      const names = s.columns.map((c) => c.name);
      const t = s.production.qualified;
      req.onProgress?.({ phase: 'apply', message: `recovering ${s.production.schema}.${s.production.name}`, fraction: n / work.length });
      const candidates = await stageSource(p, s, n, req.where);
      let tp: TablePlan;
      if (item.tp) {
        tp = item.tp;
        await p.production.query(
          `create temp table pitr_plan_${n} on commit drop as select ${cols(s.key, 's')}, ''::text as action, 0::int8 as old_hash, 0::int8 as new_hash, '{}'::text[] as cols from pitr_src_${n} s where false`,
        );
        await copyFromFile(p.production, data(`${n}.plan`), `pitr_plan_${n}`, `${cols(s.key)}, action, old_hash, new_hash, cols`);
        await p.production.query(`analyze pitr_plan_${n}`);
      } else {
        const planStarted = Date.now();
        tp = { ...(await computeTablePlan(p, s, n, req, data(`${n}.plan`))), candidates };
        inlinePlanSeconds += (Date.now() - planStarted) / 1000;
      }
      planned.push(tp);
      // Undo data first: what we are about to overwrite or delete, and what we are about to insert.
      await copyToFile(p.production, `select ${cols(names, 't')} from ${t} t join pitr_plan_${n} p on ${keyMatch(s.key, 't', 'p')} where p.action in ('update', 'delete')`, data(`${n}.before`));
      // Each written row's hash as written: verification and undo compare against it.
      await p.production.query(`create temp table pitr_applied_${n} on commit drop as select ${cols(s.key)}, ''::text as action, 0::int8 as h from pitr_plan_${n} where false`);
      const insertable = names;
      const writtenHash = `hashtextextended(row(${cols(names)})::text, 0)`;
      const overriding = s.columns.some((c) => c.identity === 'always') ? ' overriding system value' : '';
      // Inserts report only a count and a hash sum: written row by row into a temp table they
      // would cost more than the insert itself. When both match the plan, every planned row
      // was inserted exactly as the branch has it.
      const inserted = await p.production.query(
        `with ins as (
           insert into ${t} (${cols(insertable)})${overriding}
           select ${cols(insertable, 's')} from pitr_src_${n} s join pitr_plan_${n} p on ${keyMatch(s.key, 's', 'p')} and p.action = 'insert'
           on conflict do nothing returning ${writtenHash} as h)
         select count(*)::int as n, coalesce(sum(h), 0)::text as h from ins`,
      );
      const plannedInserts = await p.production.query(`select count(*)::int as n, coalesce(sum(new_hash), 0)::text as h from pitr_plan_${n} where action = 'insert'`);
      const insertsExact = inserted.rows[0].n === plannedInserts.rows[0].n && inserted.rows[0].h === plannedInserts.rows[0].h;
      if (!insertsExact) {
        // Some planned rows were not inserted (conflicts) or were changed on the way in (a trigger):
        // find exactly the rows this transaction inserted.
        await p.production.query(
          `insert into pitr_applied_${n}
           select ${cols(s.key, 'p')}, 'insert', ${rowHash(names, 't')} from pitr_plan_${n} p join ${t} t on ${keyMatch(s.key, 't', 'p')}
            where p.action = 'insert' and t.xmin = pg_current_xact_id()::xid`,
        );
      }
      const settable = s.columns.filter((c) => c.identity !== 'always' && !s.key.includes(c.name)).map((c) => c.name);
      if (settable.length && tp.update > 0) {
        await p.production.query(
          `with upd as (
             update ${t} t set ${settable.map((c) => `${q(c)} = case when '${c.replace(/'/g, "''")}' = any(p.cols) then s.${q(c)} else t.${q(c)} end`).join(', ')}
               from pitr_src_${n} s, pitr_plan_${n} p
              where ${keyMatch(s.key, 't', 's')} and ${keyMatch(s.key, 'p', 's')} and p.action = 'update' and ${rowHash(names, 't')} = p.old_hash
             returning ${cols(s.key, 't')}, ${rowHash(names, 't')} as h)
           insert into pitr_applied_${n} select ${cols(s.key)}, 'update', h from upd`,
        );
      }
      if (tp.delete > 0) {
        await p.production.query(
          `with del as (
             delete from ${t} t using pitr_plan_${n} p
              where ${keyMatch(s.key, 't', 'p')} and p.action = 'delete' and ${rowHash(names, 't')} = p.old_hash
             returning ${cols(s.key, 't')})
           insert into pitr_applied_${n} select ${cols(s.key)}, 'delete', null from del`,
        );
      }
      await p.production.query(`create index on pitr_applied_${n} (${cols(s.key)}); analyze pitr_applied_${n}`);
      await copyToFile(
        p.production,
        insertsExact ? `select * from pitr_applied_${n} union all select ${cols(s.key)}, 'insert', new_hash from pitr_plan_${n} where action = 'insert'` : `select * from pitr_applied_${n}`,
        data(`${n}.applied`),
      );
      const counts = (await p.production.query(`select action, count(*)::int as n from pitr_applied_${n} group by action`)).rows;
      const count = (a: string) => (a === 'insert' && insertsExact ? tp.insert : (counts.find((r) => r.action === a)?.n ?? 0));
      // Conflicts are planned rows that were not written: none when every count matches the plan.
      const allApplied = count('insert') === tp.insert && count('update') === tp.update && count('delete') === tp.delete;
      const conflicts = allApplied ? { rows: [], rowCount: 0 } : await p.production.query(
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
      // Verification inside the transaction: every row as written equals the branch's version
      // (a cascaded SET NULL repair restores only the reference columns, so those are compared).
      const fkCols = s.role === 'cascade' ? [...new Set(s.via.flatMap((fk) => fk.columns))].filter((c) => names.includes(c)) : [];
      const verify = await p.production.query(
        s.role === 'root'
          ? `select count(*)::int as n from pitr_applied_${n} a join pitr_src_${n} s on ${keyMatch(s.key, 'a', 's')}
              where a.action in ('insert', 'update') and a.h is distinct from ${rowHash(names, 's')}`
          : `select count(*)::int as n from pitr_applied_${n} a join pitr_src_${n} s on ${keyMatch(s.key, 'a', 's')} join ${t} t on ${keyMatch(s.key, 'a', 't')}
              where (a.action = 'insert' and a.h is distinct from ${rowHash(names, 's')})
                 or (a.action = 'update' and (${fkCols.map((c) => `t.${q(c)} is distinct from s.${q(c)}`).join(' or ') || 'false'}))`,
      );
      await bumpSequences(p.production, s);
      outcomes.push({
        table: tp.table,
        inserted: count('insert'),
        updated: count('update'),
        deleted: count('delete'),
        conflicts: conflicts.rowCount ?? 0,
        conflictSamples: conflicts.rows.slice(0, 100).map((r) => ({ key: JSON.parse(r.key), action: r.action, reason: r.reason })),
        verifiedMismatches: verify.rows[0].n,
      });
    }
    const plan = saved ?? { ...wholePlan(run, req, planned, deferred, started), seconds: inlinePlanSeconds };
    if (!saved) await store.writeJson(run.id, 'plan.json', plan);
    const mismatches = outcomes.reduce((a, o) => a + o.verifiedMismatches, 0);
    if (mismatches > 0) throw new PitrError('verify_failed', `verification failed: ${mismatches} recovered rows do not match the branch; nothing was changed`);
    await p.production.query('commit');
    committed = true;
    run.status = 'applied';
    await store.save(run);
    const totals = {
      inserted: outcomes.reduce((a, o) => a + o.inserted, 0),
      updated: outcomes.reduce((a, o) => a + o.updated, 0),
      deleted: outcomes.reduce((a, o) => a + o.deleted, 0),
      conflicts: outcomes.reduce((a, o) => a + o.conflicts, 0),
    };
    return { runId: run.id, plan, tables: outcomes, totals, verified: true, seconds: { plan: plan.seconds, apply: (Date.now() - started) / 1000 - (saved ? 0 : plan.seconds) } };
  } catch (err) {
    run.status = 'failed';
    run.error = (err as Error).message;
    await store.save(run).catch(() => undefined);
    throw translateApplyError(err);
  } finally {
    await close(p, committed);
  }
}

/** Sequences never move backwards, and never stay behind the keys we just put back. */
async function bumpSequences(client: pg.ClientBase, s: TableSelection): Promise<void> {
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

function translateApplyError(err: unknown): unknown {
  const e = err as { code?: string; message?: string; detail?: string; constraint?: string; table?: string };
  if (err instanceof PitrError || typeof e?.code !== 'string') return err;
  if (/^23/.test(e.code)) {
    return new PitrError('constraint_violation', `recovery rolled back, production unchanged: ${e.message}${e.detail ? ` (${e.detail})` : ''}`);
  }
  return new PitrError('recover_failed', `recovery rolled back, production unchanged: ${e.message}`);
}

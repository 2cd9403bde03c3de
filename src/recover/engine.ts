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
import { copyBetween, copyFromFile, copyToFile, useCopy } from './copy.js';
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

/**
 * Copies the selection's branch rows into a temp table in production (`pitr_src_<n>`), then
 * proves the copy exact: both servers hash the rows on their own core at the same time (count
 * and sum of per-row hashes) and the sums must match, so whatever COPY, the network or type
 * input did to the rows on the way, nothing is written unless the staged rows are the branch's.
 */
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
  await checkCopied(p, s, `select * from pitr_src_${n}`, 'staging_mismatch', 'copied from the branch');
  return copied;
}

/**
 * Proves that rows now in production (`rowsSql`) are exactly the selection's rows on the branch:
 * both servers hash their rows at the same time, each on its own core, and count and sum of the
 * per-row hashes must match.
 */
async function checkCopied(p: Prepared, s: TableSelection, rowsSql: string, code: string, what: string, branchSql = s.sql): Promise<void> {
  const hash = await rowHashForCheck(p, s);
  const sums = (client: pg.ClientBase, from: string) => client.query(`select count(*)::text as n, coalesce(sum(${hash}), 0)::text as h from (${from}) x`);
  const [branchSum, productionSum] = await Promise.all([sums(p.branch, branchSql), sums(p.production, rowsSql)]);
  if (branchSum.rows[0].n !== productionSum.rows[0].n || branchSum.rows[0].h !== productionSum.rows[0].h) {
    throw new PitrError(
      code,
      `the rows of ${s.production.schema}.${s.production.name} ${what} differ from the branch's own (${productionSum.rows[0].n} vs ${branchSum.rows[0].n} rows): rolled back, nothing was changed`,
    );
  }
}

/**
 * The per-row hash for checkCopied. Binary hashing (hash_record_extended, PostgreSQL 14+) costs
 * a quarter of hashing the row's text, but it hashes enums by OID and needs a hash function for
 * every column type, so it is used only for built-in base types on both sides.
 */
async function rowHashForCheck(p: Prepared, s: TableSelection): Promise<string> {
  const names = s.columns.map((c) => c.name);
  const text = `hashtextextended(row(${cols(names, 'x')})::text, 0)`;
  const binary = `hash_record_extended(row(${cols(names, 'x')}), 0)`;
  const builtin = `select current_setting('server_version_num')::int >= 140000
                          and bool_and(t.oid < 16384 and t.typtype = 'b') as ok
                     from pg_attribute a join pg_type t on t.oid = a.atttypid
                    where a.attrelid = $1::regclass and a.attname = any($2) and not a.attisdropped`;
  const [b, prod] = await Promise.all([p.branch.query(builtin, [s.branch.qualified, names]), p.production.query(builtin, [s.production.qualified, names])]);
  if (!b.rows[0].ok || !prod.rows[0].ok) return text;
  // A type without an extended hash function fails on the first row: find out on one branch row (same types on both sides).
  await p.branch.query('savepoint pitr_hash_probe');
  try {
    await p.branch.query(`select ${binary} from (${s.sql} limit 1) x`);
    await p.branch.query('release savepoint pitr_hash_probe');
    return binary;
  } catch {
    await p.branch.query('rollback to savepoint pitr_hash_probe; release savepoint pitr_hash_probe');
    return text;
  }
}

/** A plan that can only insert (deleted rows put back): it needs the keys alone, and the rows can be copied straight in. */
function plansInsertsOnly(req: RecoverRequest, s: TableSelection): boolean {
  return req.mode === 'missing' && s.role === 'root' && !req.deleteExtra && useCopy();
}

/**
 * Copies only the selection's keys into `pitr_keys_<n>`: enough to plan a recovery of deleted
 * rows, at a tenth of the bytes. When every one of them is missing in production, the rows go
 * from the branch straight into the table with COPY (see applyOnce).
 */
async function stageKeys(p: Prepared, s: TableSelection, n: number, where: string | undefined): Promise<number> {
  await p.production.query(`create temp table pitr_keys_${n} on commit drop as select ${cols(s.key)} from ${s.production.qualified} where false`);
  try {
    return await copyBetween(p.branch, `select ${cols(s.key, 'x')} from (${s.sql}) x`, p.production, `pitr_keys_${n}`, cols(s.key));
  } catch (err) {
    throw where !== undefined && s.role === 'root' ? whereRejected(err) : err;
  }
}

/** The plan rows of one table, computed in production, one statement per action: what to insert, update (which columns) or delete. */
function planParts(s: TableSelection, n: number, mode: RecoverMode, deleteExtra: boolean, where: string | undefined, source = `pitr_src_${n}`): { action: 'insert' | 'update' | 'delete'; sql: string }[] {
  const names = s.columns.map((c) => c.name);
  const t = s.production.qualified;
    const parts: { action: 'insert' | 'update' | 'delete'; sql: string }[] = [
    {
      action: 'insert',
      sql: `select ${cols(s.key, 's')}, 'insert'::text as action, null::int8 as old_hash, null::int8 as new_hash, null::text[] as cols
              from ${source} s where not exists (select 1 from ${t} t where ${keyMatch(s.key, 't', 's')})`,
    },
  ];
  const changedCols = (candidates: string[], cond: (c: string) => string) =>
    `array_remove(array[${candidates.map((c) => `case when ${cond(c)} then ${`'${c.replace(/'/g, "''")}'`} end`).join(', ')}]::text[], null)`;
  if (s.role === 'root' && mode !== 'missing') {
    const settable = s.columns.filter((c) => c.identity !== 'always' && !s.key.includes(c.name)).map((c) => c.name);
    if (settable.length) {
      parts.push({
        action: 'update',
        sql: `select ${cols(s.key, 's')}, 'update', ${rowHash(names, 't')}, null::int8, ${changedCols(settable, (c) => `s.${q(c)}::text is distinct from t.${q(c)}::text`)}
                from pitr_src_${n} s join ${t} t on ${keyMatch(s.key, 't', 's')}
               where row(${cols(settable, 's')})::text is distinct from row(${cols(settable, 't')})::text`,
      });
    }
  }
  if (s.role === 'cascade') {
    // ON DELETE SET NULL: the child row survived with its reference cleared; put the reference back, nothing else.
    const fkCols = [...new Set(s.via.flatMap((fk) => fk.columns))].filter((c) => s.columns.some((x) => x.name === c) && !s.key.includes(c));
    if (fkCols.length) {
      parts.push({
        action: 'update',
        sql: `select ${cols(s.key, 's')}, 'update', ${rowHash(names, 't')}, null::int8, ${changedCols(fkCols, (c) => `t.${q(c)} is null and s.${q(c)} is not null`)}
                from pitr_src_${n} s join ${t} t on ${keyMatch(s.key, 't', 's')}
               where ${fkCols.map((c) => `(t.${q(c)} is null and s.${q(c)} is not null)`).join(' or ')}`,
      });
    }
  }
  if (s.role === 'root' && deleteExtra) {
    parts.push({
      action: 'delete',
      sql: `select ${cols(s.key, 't')}, 'delete', ${rowHash(names, 't')}, null::int8, null::text[] from ${t} t
             where ${where ? `(${where})` : 'true'} and not exists (select 1 from pitr_src_${n} s where ${keyMatch(s.key, 't', 's')})`,
    });
  }
  return parts;
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
async function computeTablePlan(p: Prepared, s: TableSelection, n: number, req: RecoverRequest, file: string, source?: string): Promise<TablePlan> {
  const plan = tablePlanOf(s, n);
  // One statement per action: each one's row count is that action's count, with no pass over the plan to count it.
  for (const [i, part] of planParts(s, n, req.mode, req.deleteExtra && s.role === 'root', req.where, source).entries()) {
    const made = await p.production.query(i === 0 ? `create temp table pitr_plan_${n} on commit drop as ${part.sql}` : `insert into pitr_plan_${n} ${part.sql}`);
    plan[part.action] += made.rowCount ?? 0;
  }
  await p.production.query(`analyze pitr_plan_${n}`);
  if (plan.update > 0) {
    const colCounts = await p.production.query(`select c, count(*)::int as n from pitr_plan_${n}, unnest(cols) c where action = 'update' group by c order by 2 desc`);
    for (const r of colCounts.rows) plan.updateColumns[r.c] = r.n;
  }
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
      // Planning which deleted rows to put back needs their keys only.
      const keysOnly = plansInsertsOnly(req, s);
      const candidates = keysOnly ? await stageKeys(p, s, n, req.where) : await stageSource(p, s, n, req.where);
      tables.push({ ...(await computeTablePlan(p, s, n, req, join(store.dir(run.id), 'data', `${n}.plan`), keysOnly ? `pitr_keys_${n}` : undefined)), candidates });
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
  try {
    return await applyOnce(req, saved, store, run, false);
  } catch (err) {
    if (!(err instanceof InsertRaced)) throw err;
    return applyOnce(req, saved, store, run, true);
  }
}

async function applyOnce(req: RecoverRequest, saved: RecoveryPlan | null, store: RunStore, run: RunState, careful: boolean): Promise<RecoveryResult> {
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
      let tp: TablePlan;
      let candidates: number;
      const mayChangeOnInsert = await rowsMayChangeOnInsert(p.production, t);
      // Deleted rows put back with a plan made here: stage only keys, and when all are missing, COPY the rows straight in.
      const keysFirst =
        plansInsertsOnly(req, s) && !careful && !s.columns.some((c) => c.identity === 'always') && !mayChangeOnInsert;
      let direct = false;
      let directSql: string | null = null;
      if (item.tp) {
        tp = item.tp;
        await p.production.query(
          `create temp table pitr_plan_${n} on commit drop as select ${cols(s.key, 't')}, ''::text as action, 0::int8 as old_hash, 0::int8 as new_hash, '{}'::text[] as cols from ${t} t where false`,
        );
        await copyFromFile(p.production, data(`${n}.plan`), `pitr_plan_${n}`, `${cols(s.key)}, action, old_hash, new_hash, cols`);
        await p.production.query(`analyze pitr_plan_${n}`);
        // A saved plan of deleted rows whose keys run in ranges: the rows come straight from the branch.
        if (keysFirst && tp.update === 0 && tp.delete === 0 && tp.insert > 0) directSql = await missingRangesSql(p, s, n);
        candidates = directSql === null ? await stageSource(p, s, n, req.where) : tp.insert;
        direct = directSql !== null;
      } else {
        const planStarted = Date.now();
        candidates = keysFirst ? await stageKeys(p, s, n, req.where) : await stageSource(p, s, n, req.where);
        tp = { ...(await computeTablePlan(p, s, n, req, data(`${n}.plan`), keysFirst ? `pitr_keys_${n}` : undefined)), candidates };
        inlinePlanSeconds += (Date.now() - planStarted) / 1000;
        if (keysFirst) {
          directSql = tp.insert === candidates ? s.sql : await missingRangesSql(p, s, n);
          // Missing keys too scattered to name in ranges: the missing rows' values come through staging after all.
          if (directSql === null) await stageSource(p, s, n, req.where);
        }
        direct = directSql !== null;
      }
      planned.push(tp);
      // Undo data first: what we are about to overwrite or delete, and what we are about to insert.
      await copyToFile(p.production, `select ${cols(names, 't')} from ${t} t join pitr_plan_${n} p on ${keyMatch(s.key, 't', 'p')} where p.action in ('update', 'delete')`, data(`${n}.before`));
      // Each written row's hash as written: verification and undo compare against it.
      await p.production.query(`create temp table pitr_applied_${n} on commit drop as select ${cols(s.key)}, ''::text as action, 0::int8 as h from pitr_plan_${n} where false`);
      // Only a plan made in this transaction from these staged rows can say it inserts all of them.
      const everyStagedRow = !item.tp && tp.insert === candidates;
      const insertsExact = direct ? await copyMissingRows(p, s, directSql!, tp.insert, req.where) : tp.insert > 0 ? await insertPlanned(p.production, s, n, tp.insert, careful || mayChangeOnInsert, everyStagedRow) : true;
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
        // Rows inserted the fast way carry no hash: undo recognises them by this transaction's xid in xmin.
        insertsExact ? `select * from pitr_applied_${n} union all select ${cols(s.key)}, 'insert', null from pitr_plan_${n} where action = 'insert'` : `select * from pitr_applied_${n}`,
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
      const verify = direct ? { rows: [{ n: 0 }] } : await p.production.query(
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
    if (err instanceof InsertRaced) throw err;
    run.status = 'failed';
    run.error = (err as Error).message;
    await store.save(run).catch(() => undefined);
    throw translateApplyError(err);
  } finally {
    await close(p, committed);
  }
}

/**
 * Every selected row is missing in production: COPY them from the branch straight into the table
 * (COPY writes in batches, INSERT … SELECT row by row), then prove what this transaction wrote
 * (found by xmin) equals the branch's selection, count and hash sum. A key that appeared in
 * production meanwhile fails the COPY, and the apply is redone the careful way.
 */
async function copyMissingRows(p: Prepared, s: TableSelection, branchSql: string, planned: number, where: string | undefined): Promise<boolean> {
  const t = s.production.qualified;
  let copied: number;
  try {
    copied = await copyBetween(p.branch, branchSql, p.production, t, cols(s.columns.map((c) => c.name)));
  } catch (err) {
    if ((err as { code?: string }).code === '23505') throw new InsertRaced();
    throw where !== undefined ? whereRejected(err) : err;
  }
  if (copied !== planned) throw new PitrError('insert_count', `copied ${copied} rows into ${t} where the plan has ${planned}: rolled back, nothing was changed`);
  await checkCopied(p, s, `select * from ${t} where xmin = pg_current_xact_id()::xid`, 'verify_failed', 'written to production', branchSql);
  return true;
}

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);
const MAX_KEY_RANGES = 10_000;

/**
 * The branch query for exactly the planned keys, when the key is one integer column and the
 * missing keys form at most MAX_KEY_RANGES runs of consecutive values (a deleted range, a
 * deleted tenant): every value in a run is a planned key, and planned keys all come from the
 * branch, so the branch's rows in the runs are exactly the planned rows. Null otherwise.
 */
async function missingRangesSql(p: Prepared, s: TableSelection, n: number): Promise<string | null> {
  const keyColumn = s.key.length === 1 ? s.columns.find((c) => c.name === s.key[0]) : undefined;
  if (!keyColumn || !INTEGER_TYPES.has(keyColumn.type)) return null;
  const k = q(keyColumn.name);
  const { rows } = await p.production.query(
    `select min(${k})::text as lo, max(${k})::text as hi
       from (select ${k}, ${k}::int8 - row_number() over (order by ${k}) as run from pitr_plan_${n} where action = 'insert') x
      group by run order by 1 limit ${MAX_KEY_RANGES + 1}`,
  );
  if (rows.length > MAX_KEY_RANGES) return null;
  const list = (field: 'lo' | 'hi') => `'{${rows.map((r) => String(r[field])).join(',')}}'::int8[]`;
  return `select ${cols(s.columns.map((c) => c.name), 'x')} from (${s.sql}) x
            join unnest(${list('lo')}, ${list('hi')}) as r(lo, hi) on x.${k} between r.lo and r.hi`;
}

/** A row with a planned key appeared in production during a fast apply: apply again, the careful way. */
class InsertRaced extends Error {}

/**
 * Inserts the planned rows. The fast way is a plain INSERT of the staged rows, which are proven
 * equal to the branch's: it can only write exactly the planned rows, as staged, or fail on a key
 * that appeared since the plan (the whole apply is then redone carefully). With `careful` (a
 * trigger or rule could change rows on their way in, or the fast way failed), rows go in with ON
 * CONFLICT DO NOTHING and this transaction's rows are found by xmin and hashed one by one, so
 * conflicts and verification are exact. Returns whether the inserts are exactly the plan's.
 */
async function insertPlanned(client: pg.ClientBase, s: TableSelection, n: number, planned: number, careful: boolean, everyStagedRow: boolean): Promise<boolean> {
  const names = s.columns.map((c) => c.name);
  const t = s.production.qualified;
  const overriding = s.columns.some((c) => c.identity === 'always') ? ' overriding system value' : '';
  // When the plan inserts every staged row (a deletion undone), the join with the plan selects nothing less.
  const select = everyStagedRow
    ? `select ${cols(names, 's')} from pitr_src_${n} s`
    : `select ${cols(names, 's')} from pitr_src_${n} s join pitr_plan_${n} p on ${keyMatch(s.key, 's', 'p')} and p.action = 'insert'`;
  if (!careful) {
    let done;
    try {
      done = await client.query(`insert into ${t} (${cols(names)})${overriding} ${select}`);
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new InsertRaced();
      throw err;
    }
    if (done.rowCount !== planned) throw new PitrError('insert_count', `inserted ${done.rowCount} rows into ${t} where the plan has ${planned}: rolled back, nothing was changed`);
    return true;
  }
  await client.query(`insert into ${t} (${cols(names)})${overriding} ${select} on conflict do nothing`);
  await client.query(
    `insert into pitr_applied_${n}
     select ${cols(s.key, 'p')}, 'insert', ${rowHash(names, 't')} from pitr_plan_${n} p join ${t} t on ${keyMatch(s.key, 't', 'p')}
      where p.action = 'insert' and t.xmin = pg_current_xact_id()::xid`,
  );
  return false;
}

/** Whether a row-level BEFORE INSERT trigger or an INSERT rule (on the table or a partition) could change or redirect the rows. */
async function rowsMayChangeOnInsert(client: pg.ClientBase, qualified: string): Promise<boolean> {
  const { rows } = await client.query(
    `with rels as (select relid from pg_partition_tree($1::regclass) union select $1::regclass)
     select exists (select 1 from pg_trigger g join rels on g.tgrelid = rels.relid
                     where not g.tgisinternal and g.tgenabled <> 'D' and (g.tgtype & 1) = 1 and (g.tgtype & 2) = 2 and (g.tgtype & 4) = 4)
         or exists (select 1 from pg_rewrite r join rels on r.ev_class = rels.relid where r.ev_type = '3') as may`,
    [qualified],
  );
  return rows[0].may as boolean;
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

import { join } from 'node:path';
import { PitrError } from '../errors.js';
import { copyFromFile, copyToFile, useCopy } from './copy.js';
import { applyKeyless, planKeyless } from './keyless.js';
import { computeTablePlan, integerKeyColumn, keyRunsSql, MAX_KEY_RANGES, rowsInRangesSql } from './plan.js';
import { deleteEffectsRefusal, findCompletenessGaps, findDeleteEffects } from './references.js';
import type { RunState, RunStore } from './runs.js';
import type { RecoverySessions } from './session.js';
import type { TableSelection } from './selection.js';
import { cols, constraintRef, keyMatch } from './sql.js';
import { stageKeylessScope, stageKeys, stageRowsByKeys, stageSource } from './staging.js';
import { stageDifferences } from './differences.js';
import { disableTriggers, sideWrites, transactionCounters, writtenRelations } from './triggers.js';
import type { RecoverRequest, RecoveryPlan, SideWrites, TableOutcome, TablePlan } from './types.js';
import { verifyWritten, type WrittenTable } from './verify.js';
import { bumpSequences, copyMissingRows, createAppliedTable, deletePlanned, findConflicts, insertPlanned, rowsMayChangeOnInsert, updatePlanned, updatesStayAsWritten } from './write.js';

/**
 * The write transaction of a recovery, table by table in plan order (parents first): plan (or
 * load the saved plan), save undo data, write, record what was written; then the completeness
 * check, the final verification of every written table, and nothing else before COMMIT.
 */

/** A plan that can only insert (deleted rows put back): it needs the keys alone, and the rows can be copied straight in. */
export function plansInsertsOnly(req: RecoverRequest, s: TableSelection): boolean {
  return req.mode === 'missing' && s.role === 'root' && !req.deleteExtra && s.key.length > 0 && useCopy();
}

/** Root tables with a key whose plan can update or delete are planned from the diff engine's differing keys. */
export const plansFromDiff = (req: RecoverRequest, s: TableSelection) => s.role === 'root' && s.key.length > 0 && (req.mode !== 'missing' || req.deleteExtra);

/** Plans one table inside the session's transaction: stages what it needs and builds `pitr_plan_<n>`. */
export async function planTable(p: RecoverySessions, req: RecoverRequest, s: TableSelection, n: number, file: string, keysOnly: boolean, keepBefore = false): Promise<TablePlan> {
  if (plansFromDiff(req, s)) {
    const staged = await stageDifferences(p, req, s, n);
    const tp = await computeTablePlan(p, s, n, req, file, { diff: `pitr_diff_${n}`, ...(staged.scope && { scope: staged.scope }), ...(keepBefore && { before: beforeTable(n) }) });
    if (tp.delete > 0) {
      const effects = await findDeleteEffects(p, s, n);
      if (effects.length) throw deleteEffectsRefusal(effects);
    }
    return { ...tp, candidates: staged.candidates };
  }
  if (s.key.length === 0) {
    const scope = req.deleteExtra && s.role === 'root' && req.where !== undefined ? `pitr_scope_${n}` : undefined;
    if (scope) await stageKeylessScope(p, s, n, req.where!);
    const candidates = await stageSource(p, s, n, req.where);
    return { ...(await planKeyless(p, s, n, req, file, scope)), candidates };
  }
  // Left here: inserts only (--mode missing without --delete-extra) and cascaded tables.
  const candidates = keysOnly ? await stageKeys(p, s, n, req.where) : await stageSource(p, s, n, req.where);
  return { ...(await computeTablePlan(p, s, n, req, file, keysOnly ? { source: `pitr_keys_${n}` } : {})), candidates };
}

/** Where a plan made in the apply transaction keeps the rows its root updates overwrite. */
const beforeTable = (n: number) => `pitr_before_${n}`;

/** The branch query for exactly the planned inserts when the key is one integer column and they run in few ranges. */
async function missingRangesSql(p: RecoverySessions, s: TableSelection, n: number): Promise<string | null> {
  const keyColumn = integerKeyColumn(s);
  if (!keyColumn) return null;
  const { rows } = await p.production.query(keyRunsSql(keyColumn, n));
  return rows.length > MAX_KEY_RANGES ? null : rowsInRangesSql(s, keyColumn, rows as { lo: string; hi: string }[]);
}

export interface ApplyOutcome {
  planned: TablePlan[];
  outcomes: TableOutcome[];
  sideWrites: SideWrites[];
  incomplete: RecoveryPlan['incomplete'];
  inlinePlanSeconds: number;
}

/** Everything the transaction does before COMMIT. Throws (the caller rolls back) on any doubt. */
export async function writeRecovery(
  p: RecoverySessions,
  req: RecoverRequest,
  saved: RecoveryPlan | null,
  store: RunStore,
  run: RunState,
  careful: boolean,
): Promise<ApplyOutcome> {
  const data = (name: string) => join(store.dir(run.id), 'data', name);
  const deferred = saved ? saved.deferred : p.deferred;
  if (deferred.length) await p.production.query(`set constraints ${deferred.map(constraintRef).join(', ')} deferred`);
  const enableTriggers = p.triggers.length && req.triggers === 'skip' ? await disableTriggers(p.production, p.triggers) : null;
  const triggersFire = p.triggers.length > 0 && req.triggers === 'fire';
  const countersBefore = triggersFire ? await transactionCounters(p.production) : null;
  const outcomes: TableOutcome[] = [];
  const planned: TablePlan[] = [];
  const written: WrittenTable[] = [];
  const staged: { s: TableSelection; n: number; inserts: number; staged: boolean }[] = [];
  let inlinePlanSeconds = 0;
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
    const tableTriggers = triggersFire && p.triggers.some((x) => x.table === `${s.production.schema}.${s.production.name}`);
    if (s.key.length === 0) {
      const planStarted = Date.now();
      const tp = item.tp ?? (await planTable(p, req, s, n, data(`${n}.plan`), false));
      if (!item.tp) inlinePlanSeconds += (Date.now() - planStarted) / 1000;
      else await loadKeylessPlan(p, s, n, req, data);
      planned.push(tp);
      const k = await applyKeyless(p, s, n, tp, data);
      written.push({ s, n, directSql: null, insertsExact: true, triggersFired: tableTriggers, updatesVerified: null, inserts: true });
      outcomes.push({ table: tp.table, inserted: k.inserted, updated: 0, deleted: k.deleted, conflicts: k.conflicts, conflictSamples: [], verifiedMismatches: 0, rewrittenColumns: {} });
      continue;
    }
    const mayChangeOnInsert = await rowsMayChangeOnInsert(p.production, t);
    // Deleted rows put back: stage only keys, and when they run in ranges, COPY the rows straight in.
    const keysFirst = plansInsertsOnly(req, s) && !careful && !s.columns.some((c) => c.identity === 'always') && !mayChangeOnInsert;
    let directSql: string | null = null;
    let tp: TablePlan;
    let candidates: number;
    if (item.tp) {
      tp = item.tp;
      await p.production.query(
        `create temp table pitr_plan_${n} on commit drop as select ${cols(s.key, 't')}, ''::text as action, 0::int8 as old_hash, 0::int8 as new_hash, '{}'::text[] as cols from ${t} t where false`,
      );
      await copyFromFile(p.production, data(`${n}.plan`), `pitr_plan_${n}`, `${cols(s.key)}, action, old_hash, new_hash, cols`);
      await p.production.query(`analyze pitr_plan_${n}`);
      if (keysFirst && tp.update === 0 && tp.delete === 0 && tp.insert > 0) directSql = await missingRangesSql(p, s, n);
      // A saved plan needs the branch rows of its planned inserts and updates, and no others.
      candidates = directSql === null ? await stageRowsByKeys(p, s, n, `select * from pitr_plan_${n} where action in ('insert', 'update')`, req.where) : tp.insert;
    } else {
      const planStarted = Date.now();
      tp = await planTable(p, req, s, n, data(`${n}.plan`), keysFirst, true);
      candidates = tp.candidates;
      inlinePlanSeconds += (Date.now() - planStarted) / 1000;
      if (keysFirst) {
        directSql = tp.insert === candidates ? s.sql : await missingRangesSql(p, s, n);
        // Missing keys too scattered to name in ranges: only the missing rows come through staging.
        if (directSql === null) await stageRowsByKeys(p, s, n, `select * from pitr_plan_${n} where action = 'insert'`, req.where);
      }
    }
    planned.push(tp);
    staged.push({ s, n, inserts: tp.insert, staged: directSql === null });
    // Undo data first: what is about to be overwritten or deleted (the plan kept the rows root updates overwrite).
    const keptBefore = !item.tp && plansFromDiff(req, s);
    const stillInTable = keptBefore ? (tp.delete > 0 ? [`'delete'`] : []) : [`'update'`, `'delete'`];
    const beforeRows = [
      ...(keptBefore ? [`select * from ${beforeTable(n)}`] : []),
      ...(stillInTable.length ? [`select ${cols(names, 't')} from ${t} t join pitr_plan_${n} p on ${keyMatch(s.key, 't', 'p')} where p.action in (${stillInTable.join(', ')})`] : []),
    ];
    await copyToFile(p.production, beforeRows.join(' union all '), data(`${n}.before`));
    await createAppliedTable(p.production, s, n);
    // Only a plan made in this transaction from these staged rows can say it inserts all of them.
    const everyStagedRow = !item.tp && tp.insert === candidates;
    let insertsExact = true;
    if (directSql !== null) await copyMissingRows(p, s, directSql, tp.insert, req.where);
    else if (tp.insert > 0) insertsExact = await insertPlanned(p.production, s, n, tp.insert, careful || mayChangeOnInsert, everyStagedRow);
    // When nothing can touch the updated rows before COMMIT, the UPDATE's own comparison with the branch rows is their verification.
    const updatesFinal = updatesStayAsWritten(p, s, triggersFire, p.productionSchema.tables);
    const updateMismatches = tp.update > 0 ? await updatePlanned(p.production, s, n) : 0;
    if (tp.delete > 0) await deletePlanned(p.production, s, n);
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
    const conflicts = allApplied ? { rows: [], rowCount: 0 } : await findConflicts(p.production, s, n, insertsExact);
    await bumpSequences(p.production, s);
    written.push({ s, n, directSql, insertsExact, triggersFired: tableTriggers, updatesVerified: updatesFinal ? updateMismatches : null, inserts: tp.insert > 0 });
    outcomes.push({
      table: tp.table,
      inserted: count('insert'),
      updated: count('update'),
      deleted: count('delete'),
      conflicts: conflicts.rowCount ?? 0,
      conflictSamples: conflicts.rows.slice(0, 100).map((r) => ({ key: JSON.parse(r.key), action: r.action, reason: r.reason })),
      verifiedMismatches: 0,
      rewrittenColumns: {},
    });
  }
  // Triggers are back on before anything else runs: a verification that passes must be of the state COMMIT keeps.
  if (enableTriggers) await enableTriggers();
  const incomplete = await findCompletenessGaps(p, staged, { next: 0 });
  const side = countersBefore ? sideWrites(countersBefore, await transactionCounters(p.production), await writtenRelations(p.production, p.selections)) : [];
  const verification = await verifyWritten(p, written);
  for (const [i, w] of written.entries()) {
    const v = verification.get(w.n)!;
    outcomes[i]!.verifiedMismatches = v.mismatches;
    outcomes[i]!.rewrittenColumns = v.rewrittenColumns;
  }
  const mismatches = outcomes.reduce((a, o) => a + o.verifiedMismatches, 0);
  if (mismatches > 0) throw new PitrError('verify_failed', `verification failed: ${mismatches} recovered rows do not match the branch; nothing was changed`);
  return { planned, outcomes, sideWrites: side, incomplete, inlinePlanSeconds };
}

/** A saved keyless plan is loaded as planned; the branch rows are staged again for their values and counts. */
async function loadKeylessPlan(p: RecoverySessions, s: TableSelection, n: number, req: RecoverRequest, data: (name: string) => string): Promise<void> {
  await stageSource(p, s, n, req.where);
  const { rowText } = await import('./hash.js');
  const names = s.columns.map((c) => c.name);
  await p.production.query(`create temp table pitr_counts_${n} on commit drop as select ${rowText(names, 's')} as r, count(*)::int8 as copies from pitr_src_${n} s group by 1`);
  await p.production.query(`create temp table pitr_plan_${n} (r text, action text, copies int8) on commit drop`);
  await copyFromFile(p.production, data(`${n}.plan`), `pitr_plan_${n}`, 'r, action, copies');
  await p.production.query(`analyze pitr_plan_${n}; analyze pitr_counts_${n}`);
}

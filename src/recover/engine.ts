import { join } from 'node:path';
import { PitrError } from '../errors.js';
import { withClient } from '../db/connect.js';
import { planTable, plansInsertsOnly, writeRecovery } from './apply.js';
import { findCompletenessGaps } from './references.js';
import type { RunState, RunStore } from './runs.js';
import { closeSessions, openSessions } from './session.js';
import type { RecoverRequest, RecoveryPlan, RecoveryResult, TablePlan } from './types.js';
import { wholePlan } from './plan.js';
import { InsertRaced } from './write.js';

export type { RecoverMode, RecoverRequest, RecoveryPlan, RecoveryResult, TableOutcome, TablePlan, TriggerPolicy } from './types.js';

/**
 * The recovery engine's two entry points. planRecovery stages and plans without writing to
 * production's tables (the staging temp tables live in a transaction that is rolled back) and
 * saves the plan in the run directory. applyRecovery applies a saved plan, or plans and applies
 * in one transaction (--yes), and records the run's state so it never claims what did not happen.
 */
export async function planRecovery(req: RecoverRequest, store: RunStore, run: RunState): Promise<RecoveryPlan> {
  const started = Date.now();
  const p = await openSessions(req, 'repeatable read', 'plan');
  try {
    const tables: TablePlan[] = [];
    const staged: { s: (typeof p.selections)[number]; n: number; inserts: number; staged: boolean }[] = [];
    for (const [n, s] of p.selections.entries()) {
      req.onProgress?.({ phase: 'plan', message: `planning ${s.production.schema}.${s.production.name}`, fraction: n / p.selections.length });
      // Planning which deleted rows to put back needs their keys only.
      const keysOnly = plansInsertsOnly(req, s);
      const tp = await planTable(p, req, s, n, join(store.dir(run.id), 'data', `${n}.plan`), keysOnly);
      tables.push(tp);
      if (!tp.keyless) staged.push({ s, n, inserts: tp.insert, staged: !keysOnly });
    }
    const plan = { ...wholePlan(p, run.id, req, tables, started), incomplete: await findCompletenessGaps(p, staged, { next: 0 }) };
    plan.seconds = (Date.now() - started) / 1000;
    await store.writeJson(run.id, 'plan.json', plan);
    return plan;
  } finally {
    await closeSessions(p, false);
  }
}

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
  const p = await openSessions(req, 'read committed', 'apply');
  let committed = false;
  let result: RecoveryResult | null = null;
  try {
    run.txid = (await p.production.query('select txid_current()::text as txid')).rows[0].txid;
    run.status = 'applying';
    await store.save(run);
    const w = await writeRecovery(p, req, saved, store, run, careful);
    const plan: RecoveryPlan = saved
      ? { ...saved, incomplete: w.incomplete }
      : { ...wholePlan(p, run.id, req, w.planned, started), incomplete: w.incomplete, seconds: w.inlinePlanSeconds };
    if (!saved) await store.writeJson(run.id, 'plan.json', plan);
    result = {
      runId: run.id,
      plan,
      tables: w.outcomes,
      totals: {
        inserted: w.outcomes.reduce((a, o) => a + o.inserted, 0),
        updated: w.outcomes.reduce((a, o) => a + o.updated, 0),
        deleted: w.outcomes.reduce((a, o) => a + o.deleted, 0),
        conflicts: w.outcomes.reduce((a, o) => a + o.conflicts, 0),
      },
      verified: true,
      sideWrites: w.sideWrites,
      warnings: w.incomplete.map(
        (g) => `${g.rows} rows of ${g.partition ?? g.table} reference recovered ${g.parent} rows and are still missing (not in the plan): add --cascade or name ${g.table}`,
      ),
      seconds: { plan: plan.seconds, apply: 0 },
    };
    await p.production.query('commit');
    committed = true;
  } catch (err) {
    await closeSessions(p, committed);
    if (err instanceof InsertRaced) throw err;
    // Once the transaction id is recorded, only production can say whether it committed.
    await settleAfterError(store, run, req.productionUrl, err);
    if (run.status === 'applied' && result) {
      result.warnings.push(`the connection was lost while COMMIT was acknowledged (${(err as Error).message}); production confirms the recovery committed`);
      return finished(result, started, !!saved);
    }
    throw translateApplyError(err, run);
  }
  await closeSessions(p, true);
  run.status = 'applied';
  await store.save(run).catch((err: Error) => {
    // The state file still says "applying" with the transaction id: `pitr runs` settles it as applied.
    result!.warnings.push(`the run's state could not be saved (${err.message}); pitr runs will settle it from production`);
  });
  return finished(result!, started, !!saved);
}

function finished(result: RecoveryResult, started: number, saved: boolean): RecoveryResult {
  result.seconds.apply = (Date.now() - started) / 1000 - (saved ? 0 : result.seconds.plan);
  return result;
}

/**
 * After an error: `failed` only when production says the transaction aborted, `applied` when it
 * committed (a dropped connection while COMMIT was acknowledged), else `unknown` until settled.
 */
async function settleAfterError(store: RunStore, run: RunState, productionUrl: string, err: unknown): Promise<void> {
  if (!run.txid) {
    run.status = 'failed';
    run.error = (err as Error).message;
    await store.save(run).catch(() => undefined);
    return;
  }
  let status: string | null = null;
  for (let attempt = 0; attempt < 20; attempt++) {
    status = await withClient(productionUrl, async (c) => (await c.query('select txid_status($1::int8) as s', [run.txid])).rows[0]?.s as string | null).catch(() => null);
    // A backend whose client vanished aborts its transaction as it exits: give it a moment.
    if (status !== 'in progress') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  run.status = status === 'committed' ? 'applied' : status === 'aborted' ? 'failed' : 'unknown';
  run.error = run.status === 'failed' ? (err as Error).message : run.status === 'unknown' ? `outcome unknown: ${(err as Error).message}; settle with pitr runs` : undefined;
  if (run.status === 'applied') run.summary = 'committed (the connection was lost while COMMIT was acknowledged)';
  await store.save(run).catch(() => undefined);
}

function translateApplyError(err: unknown, run: RunState): unknown {
  if (run.status === 'applied') {
    return new PitrError('commit_unconfirmed', `the connection failed while the recovery committed; production says it committed: run ${run.id} is applied (pitr runs show ${run.id}; pitr undo ${run.id})`);
  }
  if (run.status === 'unknown') {
    return new PitrError('commit_unknown', `the connection failed during COMMIT and production could not say whether run ${run.id} committed: pitr runs settles it when production answers`);
  }
  const e = err as { code?: string; message?: string; detail?: string };
  if (err instanceof PitrError || typeof e?.code !== 'string') return err;
  if (/^23/.test(e.code)) {
    return new PitrError('constraint_violation', `recovery rolled back, production unchanged: ${e.message}${e.detail ? ` (${e.detail})` : ''}`);
  }
  return new PitrError('recover_failed', `recovery rolled back, production unchanged: ${e.message}`);
}

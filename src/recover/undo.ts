import { join } from 'node:path';
import type pg from 'pg';
import { PitrError } from '../errors.js';
import { connect } from '../db/connect.js';
import { findTable, introspect } from '../db/introspect.js';
import type { ProgressSink } from '../providers/types.js';
import { copyFromFile } from './copy.js';
import type { RecoveryPlan } from './engine.js';
import { childrenOf } from './order.js';
import type { RunState, RunStore } from './runs.js';
import { normalizeSession } from '../db/session.js';
import { qualifiedName } from '../db/sql.js';
import { undoKeylessReinsert, undoKeylessRemove } from './keyless.js';
import { disableTriggers } from './triggers.js';
import { useApplicationSearchPath } from './session.js';
import { cols, constraintRef, keyMatch, q } from './sql.js';
import { rowHash } from './hash.js';

export interface UndoTable {
  table: string;
  /** Rows the recovery inserted, to delete again. */
  remove: number;
  /** Rows the recovery overwrote, to set back. */
  restore: number;
  /** Rows the recovery deleted (--delete-extra), to insert again. */
  reinsert: number;
  /** Rows changed in production since the recovery: left alone. */
  conflicts: number;
}

export interface UndoResult {
  runId: string;
  undoOf: string;
  applied: boolean;
  tables: UndoTable[];
  totals: { remove: number; restore: number; reinsert: number; conflicts: number };
}

/**
 * Reverses a recovery exactly, from the data it saved before writing: rows it inserted are
 * deleted, rows it overwrote or deleted are put back, each only if production still holds
 * exactly what the recovery left there. Anything changed since is a conflict and stays as it is.
 * One transaction; with dryRun it is rolled back after counting.
 */
export async function undoRecovery(
  productionUrl: string,
  store: RunStore,
  target: RunState,
  undoRun: RunState,
  options: { dryRun: boolean; onProgress?: ProgressSink },
): Promise<UndoResult> {
  if (target.kind !== 'recover') throw new PitrError('not_a_recovery', `${target.id} is not a recovery run`, { exit: 'usage' });
  if (target.status === 'undone') throw new PitrError('already_undone', `${target.id} was already undone`, { exit: 'usage' });
  if (target.status !== 'applied') throw new PitrError('not_applied', `${target.id} never changed production (status ${target.status}): nothing to undo`, { exit: 'usage' });
  const plan = await store.readJson<RecoveryPlan>(target.id, 'plan.json');
  const data = (name: string) => join(store.dir(target.id), 'data', name);
  const client: pg.Client = await connect(productionUrl);
  let committed = false;
  try {
    await client.query('begin isolation level read committed');
    await normalizeSession(client, 'pitr undo');
    await useApplicationSearchPath(client);
    if (!options.dryRun) {
      undoRun.txid = (await client.query('select txid_current()::text as txid')).rows[0].txid;
      undoRun.status = 'applying';
      await store.save(undoRun);
    }
    if (plan.deferred.length) await client.query(`set constraints ${plan.deferred.map(constraintRef).join(', ')} deferred`);
    const schema = await introspect(client);
    // Undo reverses exactly what the recovery wrote: when it kept triggers out, so does undo.
    const enableTriggers = plan.triggerPolicy === 'skip' && plan.triggers?.length ? await disableTriggers(client, plan.triggers) : null;
    const tables = new Map<number, UndoTable>();
    for (const tp of plan.tables) {
      const names = tp.columns.map((c) => c.name);
      const n = tp.n;
      if (tp.keyless) continue;
      await client.query(`create temp table pitr_applied_${n} on commit drop as select ${cols(tp.key)}, ''::text as action, 0::int8 as h from ${tp.qualified} where false`);
      await client.query(`create temp table pitr_before_${n} on commit drop as select ${cols(names)} from ${tp.qualified} where false`);
      await copyFromFile(client, data(`${n}.applied`), `pitr_applied_${n}`, `${cols(tp.key)}, action, h`);
      await copyFromFile(client, data(`${n}.before`), `pitr_before_${n}`, cols(names));
      // Temp tables are never analyzed automatically; without statistics the planner picks nested loops.
      for (const tmp of [`pitr_applied_${n}`, `pitr_before_${n}`]) await client.query(`create index on ${tmp} (${cols(tp.key)}); analyze ${tmp}`);
      tables.set(n, { table: tp.table, remove: 0, restore: 0, reinsert: 0, conflicts: 0 });
    }
    // Pass 1, children first: delete what the recovery inserted, unless production changed it or
    // something else now references it (an ON DELETE CASCADE must never take other rows along).
    for (const tp of [...plan.tables].reverse()) {
      const names = tp.columns.map((c) => c.name);
      const n = tp.n;
      if (tp.keyless) {
        const k = await undoKeylessRemove(client, tp, target.txid, data);
        tables.set(n, { table: tp.table, remove: k.remove, restore: 0, reinsert: 0, conflicts: k.planned });
        continue;
      }
      options.onProgress?.({ phase: 'undo', message: `undoing ${tp.table}` });
      const self = findTable(schema, { schema: tp.table.split('.')[0]!, name: tp.table.split('.').slice(1).join('.') });
      const guards = self
        ? childrenOf(self, schema.tables)
            .filter((l) => !l.fk.deferrable || !(l.fk.declaredOn?.constraints ?? [qualifiedName(l.child.schema, l.fk.name), l.fk.name]).some((c) => plan.deferred.includes(c)))
            .map((l) => `not exists (select 1 from ${l.child.qualified} c where ${l.fk.columns.map((c, i) => `c.${q(c)} = t.${q(l.fk.refColumns[i]!)}`).join(' and ')})`)
        : [];
      // A row inserted without a recorded hash is unchanged exactly while its version is still the one the recovery's transaction wrote.
      const unchangedSinceInsert = `(case when a.h is null then ${target.txid ? `t.xmin = '${BigInt(target.txid) % 4294967296n}'::xid` : 'false'} else ${rowHash(names, 't')} = a.h end)`;
      const removed = await client.query(
        `delete from ${tp.qualified} t using pitr_applied_${n} a
          where a.action = 'insert' and ${keyMatch(tp.key, 't', 'a')} and ${unchangedSinceInsert} ${guards.map((g) => `and ${g}`).join(' ')}`,
      );
      tables.get(n)!.remove = removed.rowCount ?? 0;
    }
    // Pass 2, parents first: put back what the recovery overwrote or deleted.
    for (const tp of plan.tables) {
      const names = tp.columns.map((c) => c.name);
      const n = tp.n;
      if (tp.keyless) {
        const t = tables.get(n)!;
        t.reinsert = await undoKeylessReinsert(client, tp);
        t.conflicts -= t.remove + t.reinsert;
        continue;
      }
      const settable = tp.columns.filter((c) => c.identity !== 'always' && !tp.key.includes(c.name)).map((c) => c.name);
      if (settable.length) {
        const restored = await client.query(
          `update ${tp.qualified} t set ${settable.map((c) => `${q(c)} = b.${q(c)}`).join(', ')}
             from pitr_applied_${n} a, pitr_before_${n} b
            where a.action = 'update' and ${keyMatch(tp.key, 't', 'a')} and ${keyMatch(tp.key, 'b', 'a')} and ${rowHash(names, 't')} = a.h`,
        );
        tables.get(n)!.restore = restored.rowCount ?? 0;
      }
      const overriding = tp.columns.some((c) => c.identity === 'always') ? ' overriding system value' : '';
      const reinserted = await client.query(
        `insert into ${tp.qualified} (${cols(names)})${overriding}
         select ${cols(names, 'b')} from pitr_before_${n} b join pitr_applied_${n} a on ${keyMatch(tp.key, 'b', 'a')} and a.action = 'delete'
         on conflict do nothing`,
      );
      tables.get(n)!.reinsert = reinserted.rowCount ?? 0;
      const applied = (await client.query(`select count(*)::int as n from pitr_applied_${n}`)).rows[0].n as number;
      const t = tables.get(n)!;
      t.conflicts = applied - t.remove - t.restore - t.reinsert;
    }
    const list = plan.tables.map((tp) => tables.get(tp.n)!);
    const totals = {
      remove: list.reduce((a, t) => a + t.remove, 0),
      restore: list.reduce((a, t) => a + t.restore, 0),
      reinsert: list.reduce((a, t) => a + t.reinsert, 0),
      conflicts: list.reduce((a, t) => a + t.conflicts, 0),
    };
    if (enableTriggers) await enableTriggers();
    if (options.dryRun) {
      await client.query('rollback');
    } else {
      await client.query('commit');
      committed = true;
      undoRun.status = 'applied';
      undoRun.undoOf = target.id;
      await store.save(undoRun);
      target.status = 'undone';
      await store.save(target);
    }
    return { runId: undoRun.id, undoOf: target.id, applied: !options.dryRun, tables: list, totals };
  } catch (err) {
    if (!options.dryRun) {
      undoRun.status = 'failed';
      undoRun.error = (err as Error).message;
      await store.save(undoRun).catch(() => undefined);
    }
    const e = err as { code?: string; message?: string };
    if (err instanceof PitrError || typeof e.code !== 'string') throw err;
    throw new PitrError('undo_failed', `undo rolled back, production unchanged: ${e.message}`);
  } finally {
    if (!committed) await client.query('rollback').catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}

import type pg from 'pg';
import { PitrError } from '../errors.js';
import { connect } from '../db/connect.js';
import { introspect, type SchemaInfo } from '../db/introspect.js';
import { checkWhere, parseTableName } from '../db/sql.js';
import { normalizeSession } from '../db/session.js';
import { insertOrder } from './order.js';
import { addCascade, selectRoots, type TableSelection } from './selection.js';
import { findTriggers, triggerChoiceError } from './triggers.js';
import type { RecoverRequest, TriggerInfo } from './types.js';

/**
 * The sessions of one recovery: the branch, read in one REPEATABLE READ READ ONLY snapshot;
 * production's write transaction, which never runs user SQL; and, when --where must be evaluated
 * on production (--delete-extra), a separate READ ONLY session for it whose answers reach the
 * write transaction as keys.
 */
export interface RecoverySessions {
  branch: pg.Client;
  production: pg.Client;
  productionRead: pg.Client | null;
  branchSchema: SchemaInfo;
  productionSchema: SchemaInfo;
  /** Parents first. */
  selections: TableSelection[];
  deferred: string[];
  triggers: TriggerInfo[];
}

const LABEL = 'pitr recover';

async function beginReadOnly(client: pg.ClientBase): Promise<void> {
  await client.query('begin isolation level repeatable read read only');
  await normalizeSession(client, LABEL);
}

export async function openSessions(req: RecoverRequest, productionIsolation: 'repeatable read' | 'read committed', purpose: 'plan' | 'apply'): Promise<RecoverySessions> {
  // User SQL on production, and the diff that plans updates and deletes, read production here.
  const needsProductionRead = req.mode !== 'missing' || req.deleteExtra;
  const [branch, production, productionRead] = await Promise.all([
    connect(req.branchUrl),
    connect(req.productionUrl),
    needsProductionRead ? connect(req.productionUrl) : Promise.resolve(null),
  ]);
  const all = [branch, production, productionRead].filter((c): c is pg.Client => c !== null);
  try {
    await beginReadOnly(branch);
    if (productionRead) await beginReadOnly(productionRead);
    // Staging tables of a big recovery should stay in memory: temp_buffers only counts before the first temp table.
    await production.query(`set temp_buffers = '256MB'`);
    await production.query(`begin isolation level ${productionIsolation}`);
    await normalizeSession(production, LABEL);
    await production.query(`set local work_mem = '128MB'`);
    const branchSchema = await introspect(branch);
    const productionSchema = await introspect(production);
    let wanted;
    try {
      wanted = req.tables.map((t) => parseTableName(t));
    } catch (err) {
      throw new PitrError('bad_table', (err as Error).message, { exit: 'usage' });
    }
    const roots = selectRoots(wanted, branchSchema, productionSchema, req.where);
    for (const r of roots) {
      if (r.key.length === 0 && req.mode === 'changed') {
        throw new PitrError(
          'keyless_changed',
          `${r.production.schema}.${r.production.name} has no primary key or non-null unique key: a changed row cannot be told from a deleted row plus a new one, so --mode changed does not apply; use --mode missing (puts back the missing copies of each row) with --delete-extra (removes surplus copies)`,
          { exit: 'usage' },
        );
      }
    }
    if (req.where !== undefined) {
      for (const r of roots) {
        await checkWhere(branch, r.branch.qualified, req.where);
        if (productionRead) await checkWhere(productionRead, r.production.qualified, req.where);
      }
    }
    const selections = req.cascade ? addCascade(roots, branchSchema, productionSchema) : roots;
    const order = insertOrder(selections.map((s) => s.production));
    const rank = new Map(order.tables.map((t, i) => [t.qualified, i]));
    selections.sort((a, b) => rank.get(a.production.qualified)! - rank.get(b.production.qualified)!);
    const triggers = await findTriggers(production, selections, req.mode, req.deleteExtra);
    // Introspected under the same pinned search_path as the branch (type names compare equal); then the application's.
    await useApplicationSearchPath(production);
    // Refused before any write: which way triggers go changes what gets written.
    if (purpose === 'apply' && triggers.length > 0 && !req.triggers) throw triggerChoiceError(triggers);
    return { branch, production, productionRead, branchSchema, productionSchema, selections, deferred: order.deferred, triggers };
  } catch (err) {
    await Promise.all(all.map((c) => c.end().catch(() => undefined)));
    throw err;
  }
}

/**
 * The write transaction runs the application's own code: triggers (with --triggers fire),
 * CHECK constraints and defaults calling functions that name tables unqualified, as most do. It
 * gets the search_path the application's sessions have (the role's and database's default), with
 * pg_catalog first, so no object a database user created can stand in for a built-in that pitr
 * calls. pitr's own SQL names every user object schema-qualified.
 */
export async function useApplicationSearchPath(client: pg.ClientBase): Promise<void> {
  await client.query(`select pg_catalog.set_config('search_path', 'pg_catalog, ' || reset_val, true) from pg_catalog.pg_settings where name = 'search_path'`);
}

/** Rolls back what was not committed and closes every session. */
export async function closeSessions(s: RecoverySessions, committed: boolean): Promise<void> {
  if (!committed) await s.production.query('rollback').catch(() => undefined);
  await Promise.all(
    [s.branch, s.productionRead].filter((c): c is pg.Client => c !== null).map((c) => c.query('rollback').catch(() => undefined)),
  );
  await Promise.all([s.branch, s.production, s.productionRead].filter((c): c is pg.Client => c !== null).map((c) => c.end().catch(() => undefined)));
}

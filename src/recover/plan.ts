import { copyToFile } from './copy.js';
import { columnDiffers, rowHash } from './hash.js';
import type { RecoverySessions } from './session.js';
import type { TableSelection } from './selection.js';
import { cols, keyMatch, lit, q } from './sql.js';
import type { RecoverMode, RecoveryPlan, RecoverRequest, TablePlan } from './types.js';

/**
 * What a recovery will write, decided in production from staged branch rows. The SQL builders
 * here are pure (tested on their output); computeTablePlan runs them into `pitr_plan_<n>`, one
 * row per planned action: key, action, the planned old row's hash, the changed columns.
 */

export type PlanAction = 'insert' | 'update' | 'delete';

export interface PlanPart {
  action: PlanAction;
  sql: string;
  /** `sql` is a whole statement that inserts into `pitr_plan_<n>` itself (not a SELECT to insert). */
  statement?: boolean;
}

/** Columns an UPDATE may set: not the key, not GENERATED ALWAYS identity. */
export const settableColumns = (s: Pick<TableSelection, 'columns' | 'key'>) => s.columns.filter((c) => c.identity !== 'always' && !s.key.includes(c.name)).map((c) => c.name);

/** Foreign-key columns of a cascaded table: an ON DELETE SET NULL repair puts back only these. */
export const cascadeReferenceColumns = (s: Pick<TableSelection, 'columns' | 'key' | 'via'>) =>
  [...new Set(s.via.flatMap((fk) => fk.columns))].filter((c) => s.columns.some((x) => x.name === c) && !s.key.includes(c));

const changedColumns = (candidates: string[], cond: (c: string, i: number) => string) =>
  `array_remove(array[${candidates.map((c, i) => `case when ${cond(c, i)} then ${lit(c)} end`).join(', ')}]::text[], null)`;

/** True when any of the columns prints differently on the two sides (the same as comparing their row texts). */
export const anyDiffers = (columns: { name: string; type: string }[], a: string, b: string) => columns.map((c) => `(${columnDiffers(c, a, b)})`).join(' or ');

/** Where a plan reads from besides the staged rows, and where it keeps the rows root updates overwrite. */
export interface PlanOptions {
  source?: string;
  scope?: string;
  diff?: string;
  /** A table with the recovered columns: rows the plan updates are copied there as planned (undo data without a second join). */
  before?: string;
}

/**
 * The plan rows of one keyed table, one statement per action. `source` holds the staged branch
 * rows (or only their keys, for a plan that can only insert); `scope`, when --where selected
 * production rows for --delete-extra, holds their keys; `diff`, when the diff engine found the
 * differing keys, holds each one's kind, so inserts are looked for only among the missing keys
 * and updates only among the changed ones.
 */
export function planParts(
  s: Pick<TableSelection, 'columns' | 'key' | 'role' | 'via' | 'production'>,
  n: number,
  mode: RecoverMode,
  deleteExtra: boolean,
  options: PlanOptions = {},
): PlanPart[] {
  const names = s.columns.map((c) => c.name);
  const t = s.production.qualified;
  const source = options.source ?? `pitr_src_${n}`;
  const ofKind = (alias: string, kind: string) => (options.diff ? ` join ${options.diff} d on ${keyMatch(s.key, 'd', alias)} and d.kind = ${lit(kind)}` : '');
  const parts: PlanPart[] = [
    {
      action: 'insert',
      sql: `select ${cols(s.key, 's')}, 'insert'::text as action, null::int8 as old_hash, null::int8 as new_hash, null::text[] as cols
              from ${source} s${ofKind('s', 'missing')} where not exists (select 1 from ${t} t where ${keyMatch(s.key, 't', 's')})`,
    },
  ];
  if (s.role === 'root' && mode !== 'missing') {
    const settable = settableColumns(s);
    const typed = settable.map((name) => s.columns.find((c) => c.name === name)!);
    if (settable.length) {
      const from = `from pitr_src_${n} s${ofKind('s', 'changed')} join ${t} t on ${keyMatch(s.key, 't', 's')} where ${anyDiffers(typed, 's', 't')}`;
      const changed = changedColumns(settable, (_, i) => columnDiffers(typed[i]!, 's', 't'));
      parts.push(
        options.before
          ? {
              // The rows about to be overwritten go to the undo table in the same pass (every name here is pitr's, none the table's).
              action: 'update',
              statement: true,
              sql: `with planned as (select ${s.key.map((k, i) => `s.${q(k)} as pitr_k${i}`).join(', ')}, ${rowHash(names, 't')} as pitr_old_hash, ${changed} as pitr_cols,
                                            ${names.map((c, i) => `t.${q(c)} as pitr_c${i}`).join(', ')} ${from}),
                         kept as (insert into ${options.before} select ${names.map((_, i) => `pitr_c${i}`).join(', ')} from planned)
                    insert into pitr_plan_${n} select ${s.key.map((_, i) => `pitr_k${i}`).join(', ')}, 'update', pitr_old_hash, null::int8, pitr_cols from planned`,
            }
          : { action: 'update', sql: `select ${cols(s.key, 's')}, 'update', ${rowHash(names, 't')}, null::int8, ${changed} ${from}` },
      );
    }
  }
  if (s.role === 'cascade') {
    // ON DELETE SET NULL: the child row survived with its reference cleared; put the reference back, nothing else.
    const fkCols = cascadeReferenceColumns(s);
    if (fkCols.length) {
      parts.push({
        action: 'update',
        sql: `select ${cols(s.key, 's')}, 'update', ${rowHash(names, 't')}, null::int8, ${changedColumns(fkCols, (c) => `t.${q(c)} is null and s.${q(c)} is not null`)}
                from pitr_src_${n} s join ${t} t on ${keyMatch(s.key, 't', 's')}
               where ${fkCols.map((c) => `(t.${q(c)} is null and s.${q(c)} is not null)`).join(' or ')}`,
      });
    }
  }
  if (s.role === 'root' && deleteExtra) {
    // The user's --where never runs here: its matches arrive as keys (the diff's extra keys).
    const from = options.scope ? `${options.scope} sc join ${t} t on ${keyMatch(s.key, 't', 'sc')}` : `${t} t`;
    parts.push({
      action: 'delete',
      sql: `select ${cols(s.key, 't')}, 'delete', ${rowHash(names, 't')}, null::int8, null::text[] from ${from}
             where not exists (select 1 from ${source} s where ${keyMatch(s.key, 't', 's')})`,
    });
  }
  return parts;
}

export function tablePlanOf(s: TableSelection, n: number): TablePlan {
  return {
    n,
    table: `${s.production.schema}.${s.production.name}`,
    qualified: s.production.qualified,
    role: s.role,
    key: s.key,
    keyless: s.key.length === 0,
    columns: s.columns.map((c) => ({ name: c.name, type: c.type, identity: c.identity })),
    via: s.via.map((fk) => fk.name),
    candidates: 0,
    insert: 0,
    update: 0,
    delete: 0,
    updateColumns: {},
  };
}

export function wholePlan(p: RecoverySessions, runId: string, req: RecoverRequest, tables: TablePlan[], started: number): RecoveryPlan {
  return {
    runId,
    mode: req.mode,
    where: req.where ?? null,
    cascade: req.cascade,
    deleteExtra: req.deleteExtra,
    tables,
    deferred: p.deferred,
    totals: {
      insert: tables.reduce((a, t) => a + t.insert, 0),
      update: tables.reduce((a, t) => a + t.update, 0),
      delete: tables.reduce((a, t) => a + t.delete, 0),
    },
    triggers: p.triggers,
    triggerPolicy: p.triggers.length ? (req.triggers ?? null) : null,
    incomplete: [],
    seconds: (Date.now() - started) / 1000,
  };
}

/** Builds `pitr_plan_<n>` for a staged keyed table, counts it and saves it to the run directory. */
export async function computeTablePlan(
  p: RecoverySessions,
  s: TableSelection,
  n: number,
  req: RecoverRequest,
  file: string,
  options: PlanOptions = {},
): Promise<TablePlan> {
  const plan = tablePlanOf(s, n);
  if (options.before) await p.production.query(`create temp table ${options.before} on commit drop as select ${cols(s.columns.map((c) => c.name))} from ${s.production.qualified} where false`);
  // One statement per action: each one's row count is that action's count, with no pass over the plan to count it.
  for (const [i, part] of planParts(s, n, req.mode, req.deleteExtra && s.role === 'root', options).entries()) {
    const made = await p.production.query(part.statement ? part.sql : i === 0 ? `create temp table pitr_plan_${n} on commit drop as ${part.sql}` : `insert into pitr_plan_${n} ${part.sql}`);
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

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);
export const MAX_KEY_RANGES = 10_000;

/** The one integer key column whose planned values may run in ranges, if the key is one. */
export function integerKeyColumn(s: Pick<TableSelection, 'columns' | 'key'>): string | null {
  const c = s.key.length === 1 ? s.columns.find((x) => x.name === s.key[0]) : undefined;
  return c && INTEGER_TYPES.has(c.type) ? c.name : null;
}

/** The runs of consecutive planned insert keys, lowest first (at most MAX_KEY_RANGES + 1 of them). */
export const keyRunsSql = (keyColumn: string, n: number) =>
  `select min(${q(keyColumn)})::text as lo, max(${q(keyColumn)})::text as hi
     from (select ${q(keyColumn)}, ${q(keyColumn)}::int8 - row_number() over (order by ${q(keyColumn)}) as run from pitr_plan_${n} where action = 'insert') x
    group by run order by 1 limit ${MAX_KEY_RANGES + 1}`;

/**
 * The branch query for exactly the rows in the given key runs: every value in a run is a planned
 * key and planned keys all come from the branch selection, so these are exactly the planned rows.
 */
export function rowsInRangesSql(s: Pick<TableSelection, 'columns' | 'sql'>, keyColumn: string, runs: { lo: string; hi: string }[]): string {
  const list = (field: 'lo' | 'hi') => `'{${runs.map((r) => r[field]).join(',')}}'::int8[]`;
  return `select ${cols(s.columns.map((c) => c.name), 'x')} from (${s.sql}) x
            join unnest(${list('lo')}, ${list('hi')}) as r(lo, hi) on x.${q(keyColumn)} between r.lo and r.hi`;
}

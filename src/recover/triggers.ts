import type pg from 'pg';
import { PitrError } from '../errors.js';
import { quoteIdent } from '../db/sql.js';
import type { TableSelection } from './selection.js';
import type { RecoverMode, SideWrites, TriggerInfo } from './types.js';

/**
 * User triggers and rules on the tables a recovery writes. A BEFORE row trigger can rewrite the
 * restored rows (`NEW.updated_at := now()`), an AFTER trigger writes elsewhere (audit tables), a
 * rule can redirect rows: none of that may happen silently, so the plan lists them and the user
 * chooses to skip them (exact branch rows) or fire them (reported).
 */

const EVENT_BITS = [
  [4, 'INSERT'],
  [8, 'DELETE'],
  [16, 'UPDATE'],
  [32, 'TRUNCATE'],
] as const;

/** The statements a recovery may run on a table, known before any row is planned. */
export function eventsFor(s: TableSelection, mode: RecoverMode, deleteExtra: boolean): Set<'INSERT' | 'UPDATE' | 'DELETE'> {
  const events = new Set<'INSERT' | 'UPDATE' | 'DELETE'>();
  if (s.role === 'cascade') return new Set(['INSERT', 'UPDATE']);
  if (mode !== 'changed') events.add('INSERT');
  if (mode !== 'missing' && s.key.length > 0) events.add('UPDATE');
  if (deleteExtra) events.add('DELETE');
  return events;
}

/** Decodes pg_trigger.tgtype. */
export function describeTrigger(tgtype: number): { fires: string; events: string[]; rewritesRows: boolean } {
  const row = (tgtype & 1) === 1;
  const timing = tgtype & 2 ? 'BEFORE' : tgtype & 64 ? 'INSTEAD OF' : 'AFTER';
  const events = EVENT_BITS.filter(([bit]) => (tgtype & bit) !== 0).map(([, name]) => name);
  return { fires: `${timing} ${events.join(' OR ')} ${row ? 'ROW' : 'STATEMENT'}`, events, rewritesRows: row && timing === 'BEFORE' };
}

const RULE_EVENTS: Record<string, string> = { '2': 'UPDATE', '3': 'INSERT', '4': 'DELETE' };

/** Enabled user triggers and rules on each selected table or its partitions that fire on what the recovery does there. */
export async function findTriggers(client: pg.ClientBase, selections: TableSelection[], mode: RecoverMode, deleteExtra: boolean): Promise<TriggerInfo[]> {
  const out: TriggerInfo[] = [];
  for (const s of selections) {
    const events = eventsFor(s, mode, deleteExtra);
    const { rows } = await client.query(
      `with rels as (select relid from pg_partition_tree($1::regclass) union select $1::regclass)
       select format('%s.%s', n.nspname, c.relname) as relation, format('%I.%I', n.nspname, c.relname) as relation_sql, g.tgname as name, 'trigger' as kind, g.tgtype::int as tgtype, null::text as ev_type, false as instead
         from pg_trigger g join rels on g.tgrelid = rels.relid join pg_class c on c.oid = g.tgrelid join pg_namespace n on n.oid = c.relnamespace
        where not g.tgisinternal and g.tgenabled in ('O', 'A') and g.tgparentid = 0
       union all
       select format('%s.%s', n.nspname, c.relname), format('%I.%I', n.nspname, c.relname), r.rulename, 'rule', null, r.ev_type::text, r.is_instead
         from pg_rewrite r join rels on r.ev_class = rels.relid join pg_class c on c.oid = r.ev_class join pg_namespace n on n.oid = c.relnamespace
        where r.rulename <> '_RETURN' and r.ev_enabled in ('O', 'A')
        order by 1, 2`,
      [s.production.qualified],
    );
    for (const r of rows) {
      const table = `${s.production.schema}.${s.production.name}`;
      if (r.kind === 'trigger') {
        const d = describeTrigger(r.tgtype);
        if (!d.events.some((e) => events.has(e as 'INSERT'))) continue;
        out.push({ table, relation: r.relation, relationSql: r.relation_sql, name: r.name, kind: 'trigger', fires: d.fires, rewritesRows: d.rewritesRows });
      } else {
        const event = RULE_EVENTS[r.ev_type as string];
        if (!event || !events.has(event as 'INSERT')) continue;
        out.push({ table, relation: r.relation, relationSql: r.relation_sql, name: r.name, kind: 'rule', fires: `RULE ON ${event}${r.instead ? ' DO INSTEAD' : ' DO ALSO'}`, rewritesRows: true });
      }
    }
  }
  return out;
}

/** One line naming the triggers and both choices: the recovery refuses to guess. */
export function triggerChoiceError(triggers: TriggerInfo[]): PitrError {
  const list = triggers.map((t) => `${t.relation}.${t.name} (${t.fires})`).join(', ');
  return new PitrError(
    'triggers_choice_required',
    `triggers and rules fire on the rows pitr would write: ${list}; choose --triggers skip (the branch's exact rows; user triggers disabled inside the recovery transaction) or --triggers fire (they run; rewritten columns and side writes are reported)`,
    { exit: 'usage' },
  );
}

export const SKIP_LOCK_NOTE =
  '--triggers skip disables user triggers inside the recovery transaction (ALTER TABLE … DISABLE TRIGGER, enabled again before COMMIT): it holds a SHARE ROW EXCLUSIVE lock on those tables (ACCESS EXCLUSIVE where a rule is disabled) until the recovery commits, so other writers to them wait.';

/**
 * Disables the listed triggers and rules inside the recovery transaction, each by name on the
 * relation that holds it (triggers of a partitioned table are cloned onto every partition).
 * ALTER TABLE is transactional but a COMMIT keeps it: the returned function puts every one back
 * exactly as it was (ENABLE or ENABLE ALWAYS) and must run before COMMIT. Foreign-key triggers
 * are internal and stay on. Needs ownership of each table.
 */
export async function disableTriggers(client: pg.ClientBase, triggers: TriggerInfo[]): Promise<() => Promise<void>> {
  const relations = [...new Set(triggers.map((t) => t.relationSql))];
  const { rows } = await client.query(
    `select format('%s.%s', n.nspname, c.relname) as relation, c.relowner::regrole::text as owner, pg_has_role(c.relowner, 'USAGE') as owns
       from unnest($1::text[]) r join pg_class c on c.oid = r::regclass join pg_namespace n on n.oid = c.relnamespace`,
    [relations],
  );
  const notOwned = rows.filter((r) => !r.owns);
  if (notOwned.length) {
    throw new PitrError(
      'triggers_not_owner',
      `--triggers skip needs ownership of ${notOwned.map((r) => `${r.relation} (owned by ${r.owner})`).join(', ')} to disable triggers for the recovery transaction: run pitr as the owner (or a member of that role), or choose --triggers fire`,
      { exit: 'usage' },
    );
  }
  const { rows: enabled } = await client.query(
    `select distinct format('%I.%I', n.nspname, c.relname) as relation, g.tgname as name, g.tgenabled::text as mode
       from unnest($1::text[]) r cross join lateral (select relid from pg_partition_tree(r::regclass) union select r::regclass) p
       join pg_class c on c.oid = p.relid join pg_namespace n on n.oid = c.relnamespace
       join pg_trigger g on g.tgrelid = c.oid
      where not g.tgisinternal and g.tgenabled in ('O', 'A')`,
    [[...new Set(triggers.filter((t) => t.kind === 'trigger').map((t) => t.relationSql))]],
  );
  const rules = triggers.filter((x) => x.kind === 'rule');
  const { rows: ruleModes } = rules.length
    ? await client.query(`select r.rulename as name, r.ev_enabled::text as mode, r.ev_class::regclass::text as relation from pg_rewrite r where r.ev_class = any($1::regclass[]) and r.rulename = any($2)`, [
        rules.map((r) => r.relationSql),
        rules.map((r) => r.name),
      ])
    : { rows: [] as { name: string; mode: string; relation: string }[] };
  for (const t of enabled) await client.query(`alter table ${t.relation as string} disable trigger ${quoteIdent(t.name)}`);
  for (const r of ruleModes) await client.query(`alter table ${r.relation} disable rule ${quoteIdent(r.name)}`);
  return async () => {
    for (const t of enabled) await client.query(`alter table ${t.relation as string} enable ${t.mode === 'A' ? 'always ' : ''}trigger ${quoteIdent(t.name)}`);
    for (const r of ruleModes) await client.query(`alter table ${r.relation} enable ${r.mode === 'A' ? 'always ' : ''}rule ${quoteIdent(r.name)}`);
  };
}

type Counters = Map<string, { ins: number; upd: number; del: number }>;

/** This transaction's row counts per table so far (pg_stat_xact_user_tables sees the current transaction). */
export async function transactionCounters(client: pg.ClientBase): Promise<Counters> {
  const { rows } = await client.query(
    `select format('%s.%s', schemaname, relname) as t, n_tup_ins::int8::text as ins, n_tup_upd::int8::text as upd, n_tup_del::int8::text as del
       from pg_stat_xact_user_tables where n_tup_ins + n_tup_upd + n_tup_del > 0 and schemaname not like 'pg\_temp%'`,
  );
  return new Map(rows.map((r) => [r.t as string, { ins: Number(r.ins), upd: Number(r.upd), del: Number(r.del) }]));
}

/** Rows written between two counter readings into tables outside `written` (their partitions included). */
export function sideWrites(before: Counters, after: Counters, written: Set<string>): SideWrites[] {
  const out: SideWrites[] = [];
  for (const [table, a] of after) {
    if (written.has(table)) continue;
    const b = before.get(table) ?? { ins: 0, upd: 0, del: 0 };
    const w = { table, inserted: a.ins - b.ins, updated: a.upd - b.upd, deleted: a.del - b.del };
    if (w.inserted || w.updated || w.deleted) out.push(w);
  }
  return out.sort((x, y) => x.table.localeCompare(y.table));
}

/** The written tables and all their partitions, as `schema.name`. */
export async function writtenRelations(client: pg.ClientBase, selections: TableSelection[]): Promise<Set<string>> {
  const { rows } = await client.query(
    `select distinct format('%s.%s', n.nspname, c.relname) as t
       from unnest($1::text[]) q cross join lateral (select relid from pg_partition_tree(q::regclass) union select q::regclass) p
       join pg_class c on c.oid = p.relid join pg_namespace n on n.oid = c.relnamespace`,
    [selections.map((s) => s.production.qualified)],
  );
  return new Set(rows.map((r) => r.t as string));
}

import { hasRecordHash } from '../db/row-hash.js';
import { columnDiffers, fastRowHash, rowHash } from './hash.js';
import { verifyKeyless } from './keyless.js';
import { cascadeReferenceColumns } from './plan.js';
import type { RecoverySessions } from './session.js';
import type { TableSelection } from './selection.js';
import { checkCopied } from './staging.js';
import { cols, keyMatch, q } from './sql.js';

/**
 * The last step before COMMIT: every written table is checked against the branch again, after
 * deferred constraints have run (SET CONSTRAINTS ALL IMMEDIATE), so a trigger or a deferred
 * action on another table cannot leave a verified table wrong.
 */

export interface WrittenTable {
  s: TableSelection;
  n: number;
  /** Rows copied from the branch straight into the table, by this query on the branch. */
  directSql: string | null;
  /** The planned inserts all went in (fast path): they are not listed in pitr_applied_<n>. */
  insertsExact: boolean;
  /** Triggers fired on this table's rows (--triggers fire): columns they rewrite are reported, not failed. */
  triggersFired: boolean;
  /** Mismatches the UPDATE itself counted, when its rows are final (updatesStayAsWritten): only inserts are checked here. */
  updatesVerified: number | null;
  /** Rows were inserted (or may have been): with updatesVerified, the only rows left to check. */
  inserts: boolean;
}

export interface TableVerification {
  mismatches: number;
  rewrittenColumns: Record<string, number>;
}

export async function verifyWritten(p: RecoverySessions, written: WrittenTable[]): Promise<Map<number, TableVerification>> {
  await p.production.query('set constraints all immediate');
  const out = new Map<number, TableVerification>();
  for (const w of written) out.set(w.n, await verifyTable(p, w));
  return out;
}

async function verifyTable(p: RecoverySessions, w: WrittenTable): Promise<TableVerification> {
  const { s, n } = w;
  const t = s.production.qualified;
  if (s.key.length === 0) return { mismatches: w.triggersFired ? 0 : await verifyKeyless(p, s, n), rewrittenColumns: {} };
  if (w.directSql !== null) {
    // Rows this transaction wrote, found by xmin, against the branch's selection: count and hash sum on both servers at once.
    await checkCopied(p, s, `select * from ${t} where xmin = pg_current_xact_id()::xid`, 'verify_failed', 'written to production', w.directSql);
    return { mismatches: 0, rewrittenColumns: {} };
  }
  if (w.updatesVerified !== null && !w.inserts) return { mismatches: w.updatesVerified, rewrittenColumns: {} };
  const names = s.columns.map((c) => c.name);
  const checked = w.updatesVerified === null ? `('insert', 'update')` : `('insert')`;
  const writtenRows = `(select ${cols(s.key)}, action from pitr_applied_${n} where action in ${checked}
                        ${w.insertsExact ? `union all select ${cols(s.key)}, 'insert' from pitr_plan_${n} where action = 'insert'` : ''})`;
  const from = `${writtenRows} w left join ${t} t on ${keyMatch(s.key, 't', 'w')} join pitr_src_${n} s on ${keyMatch(s.key, 's', 'w')}`;
  const fkCols = s.role === 'cascade' ? cascadeReferenceColumns(s) : [];
  // A cascaded SET NULL repair restores only the reference columns: those are what is compared.
  const partial = fkCols.length ? `(w.action = 'update' and (${fkCols.map((c) => `t.${q(c)} is distinct from s.${q(c)}`).join(' or ')}))` : 'false';
  const full = s.role === 'cascade' ? `w.action = 'insert'` : 'true';
  if (!w.triggersFired) {
    // Both rows are on production: the binary-where-exact hash compares them at a fraction of the cost of printing them.
    const binary = await hasRecordHash(p.production);
    const hash = (alias: string) => (binary ? fastRowHash(s.columns, alias) : rowHash(names, alias));
    const { rows } = await p.production.query(
      `select count(*)::int as n from ${from}
        where t.ctid is null or (${full} and ${hash('t')} is distinct from ${hash('s')}) or ${partial}`,
    );
    return { mismatches: (rows[0].n as number) + (w.updatesVerified ?? 0), rewrittenColumns: {} };
  }
  // Triggers ran: a row must be there, and every column a trigger did not rewrite must be the branch's; rewritten columns are counted.
  const { rows } = await p.production.query(
    `select count(*) filter (where t.ctid is null or ${partial})::int as missing,
            ${s.columns.map((c, i) => `count(*) filter (where ${full} and t.ctid is not null and ${columnDiffers(c, 't', 's')})::int as c${i}`).join(', ')}
       from ${from}`,
  );
  const rewritten: Record<string, number> = {};
  names.forEach((c, i) => {
    const k = rows[0][`c${i}`] as number;
    if (k > 0) rewritten[c] = k;
  });
  return { mismatches: rows[0].missing as number, rewrittenColumns: rewritten };
}

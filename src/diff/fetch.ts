import type pg from 'pg';
import type { TableInfo } from '../db/introspect.js';
import { quoteIdent } from '../db/sql.js';
import type { Plan } from './plan.js';
import type { KeyDifference, RowDifference, Values } from './types.js';

/**
 * Whole rows for differing keys only: one `= ANY($1)` (or unnest join for composite keys)
 * query per side and batch, read through the key's index; in multiset mode, the rows whose
 * hash differs, with their number of copies.
 */

const keyIdOf = (key: (string | null)[]) => (key.length === 1 ? key[0]! : JSON.stringify(key));

async function rowsByKey(client: pg.ClientBase, table: TableInfo, plan: Plan, keys: string[][]): Promise<Map<string, Values>> {
  if (keys.length === 0) return new Map();
  const cols = plan.compared.map((c) => `x.${quoteIdent(c.name)}::text`).join(', ');
  const params = plan.keyColumns.map((_, i) => keys.map((k) => k[i]!));
  // One probe of the key's unique index per key, whatever the statistics say: `= any($1)` on a
  // never-analyzed table was planned as a sequential scan of the whole table for every batch, and
  // a join with the keys as a hash join over the whole table (offset 0 keeps the subquery per key).
  const unnest = `unnest(${plan.keyColumns.map((c, i) => `$${i + 1}::${c.type}[]`).join(', ')}) as pitr_keys(${plan.keyColumns.map((_, i) => `k${i}`).join(', ')})`;
  // The table keeps its own name (a --where may qualify columns with it).
  const match = plan.keyColumns.map((c, i) => `${quoteIdent(c.name)} = pitr_keys.k${i}`).join(' and ');
  const { rows } = await client.query({
    text: `select ${cols} from ${unnest} cross join lateral (select * from ${table.qualified} where ${match} and ${plan.where} offset 0) x`,
    values: params,
    rowMode: 'array',
  });
  const keyIdx = plan.keyColumns.map((k) => plan.compared.findIndex((c) => c.name === k.name));
  const out = new Map<string, Values>();
  for (const row of rows as (string | null)[][]) {
    const values: Values = {};
    plan.compared.forEach((c, i) => (values[c.name] = row[i] ?? null));
    out.set(keyIdOf(keyIdx.map((i) => row[i]!)), values);
  }
  return out;
}

async function rowsByHash(client: pg.ClientBase, table: TableInfo, plan: Plan, hashes: string[]): Promise<Map<string, { values: Values; count: number }[]>> {
  const cols = plan.compared.map((c) => `${quoteIdent(c.name)}::text`).join(', ');
  const names = plan.compared.map((c) => quoteIdent(c.name)).join(', ');
  const { rows } = await client.query({
    text: `select ${cols}, h::text, count(*)::int8 from (select ${names}, ${plan.rowHash} as h from ${table.qualified} where ${plan.where} offset 0) x
            where h = any($1::int8[]) group by ${plan.compared.map((_, i) => i + 1).join(', ')}, h`,
    values: [hashes],
    rowMode: 'array',
  });
  const out = new Map<string, { values: Values; count: number }[]>();
  for (const row of rows as (string | null)[][]) {
    const values: Values = {};
    plan.compared.forEach((c, i) => (values[c.name] = row[i] ?? null));
    const h = row[plan.compared.length]!;
    const list = out.get(h) ?? [];
    list.push({ values, count: Number(row[plan.compared.length + 1]) });
    out.set(h, list);
  }
  return out;
}

export async function fetchDifferences(
  sides: { branch: { client: pg.ClientBase; table: TableInfo }; production: { client: pg.ClientBase; table: TableInfo } },
  plan: Plan,
  diffs: KeyDifference[],
): Promise<RowDifference[]> {
  if (diffs.length === 0) return [];
  const out: RowDifference[] = [];
  if (plan.mode === 'key') {
    // A missing row is only in the branch, an extra one only in production: each side is asked for the keys it can hold.
    const keysFor = (kind: KeyDifference['kind']) => diffs.filter((d) => d.kind !== kind).map((d) => d.key!);
    const [b, p] = await Promise.all([rowsByKey(sides.branch.client, sides.branch.table, plan, keysFor('extra')), rowsByKey(sides.production.client, sides.production.table, plan, keysFor('missing'))]);
    for (const d of diffs) {
      const id = keyIdOf(d.key!);
      const branch = b.get(id) ?? null;
      const production = p.get(id) ?? null;
      const key = Object.fromEntries(plan.keyColumns.map((c, i) => [c.name, d.key![i] ?? null]));
      const changedColumns = branch && production ? plan.compared.filter((c) => branch[c.name] !== production[c.name]).map((c) => c.name) : [];
      if (branch && production && changedColumns.length === 0) continue;
      const kind = branch && production ? 'changed' : branch ? 'missing' : 'extra';
      if (!branch && !production) continue;
      out.push({ kind, key, branch, production, changedColumns, count: 1 });
    }
    return out;
  }
  const hashes = [...new Set(diffs.map((d) => d.rowHash!))];
  const [b, p] = await Promise.all([rowsByHash(sides.branch.client, sides.branch.table, plan, hashes), rowsByHash(sides.production.client, sides.production.table, plan, hashes)]);
  for (const h of hashes) {
    // Distinct rows sharing one hash (a collision) are told apart by their values.
    const byRow = new Map<string, { values: Values; b: number; p: number }>();
    for (const r of b.get(h) ?? []) byRow.set(JSON.stringify(r.values), { values: r.values, b: r.count, p: 0 });
    for (const r of p.get(h) ?? []) {
      const id = JSON.stringify(r.values);
      const e = byRow.get(id);
      if (e) e.p = r.count;
      else byRow.set(id, { values: r.values, b: 0, p: r.count });
    }
    for (const e of [...byRow.entries()].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)).map(([, v]) => v)) {
      const d = e.b - e.p;
      if (d > 0) out.push({ kind: 'missing', key: null, branch: e.values, production: null, changedColumns: [], count: d });
      else if (d < 0) out.push({ kind: 'extra', key: null, branch: null, production: e.values, changedColumns: [], count: -d });
    }
  }
  return out;
}

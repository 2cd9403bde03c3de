// `pitr diff --format sql`: the differences of one table written as a script that would make
// production's rows equal to the branch's. Rendered text only: pitr itself never runs it (the
// recovery engine in src/recover writes production).
import type { TableInfo } from '../db/introspect.js';
import { quoteIdent, quoteLiteral } from '../db/sql.js';
import type { RowDifference, Values } from '../diff/rows.js';

function literal(value: string | null, type: string): string {
  return value === null ? 'NULL' : `${quoteLiteral(value)}::${type}`;
}

function keyPredicate(table: TableInfo, key: Values): string {
  const types = new Map(table.columns.map((c) => [c.name, c.type]));
  return Object.entries(key)
    .map(([col, v]) => `${quoteIdent(col)} = ${literal(v, types.get(col) ?? 'text')}`)
    .join(' AND ');
}

/**
 * The statement that would put production back to the branch's version of one row: INSERT for
 * a missing row, UPDATE of the changed columns for a changed one. Rows only in production get a
 * comment, never a DELETE, unless asked (--delete-extra): then the script makes production's
 * rows equal to the branch's.
 */
export function recoveryStatement(table: TableInfo, d: RowDifference, options: { deleteExtra?: boolean } = {}): string {
  const types = new Map(table.columns.map((c) => [c.name, c.type]));
  if (d.kind === 'missing' && d.branch) {
    const cols = table.columns.filter((c) => !c.generated && c.name in d.branch!);
    const overriding = cols.some((c) => c.identity === 'always') ? ' OVERRIDING SYSTEM VALUE' : '';
    const row = `INSERT INTO ${table.qualified} (${cols.map((c) => quoteIdent(c.name)).join(', ')})${overriding} VALUES (${cols.map((c) => literal(d.branch![c.name] ?? null, c.type)).join(', ')});`;
    return d.count > 1 ? Array.from({ length: d.count }, () => row).join('\n') : row;
  }
  if (d.kind === 'changed' && d.branch && d.key) {
    const sets = d.changedColumns
      .filter((c) => !table.columns.find((x) => x.name === c)?.generated)
      .map((c) => `${quoteIdent(c)} = ${literal(d.branch![c] ?? null, types.get(c) ?? 'text')}`);
    return `UPDATE ${table.qualified} SET ${sets.join(', ')} WHERE ${keyPredicate(table, d.key)};`;
  }
  if (d.kind === 'extra' && options.deleteExtra) {
    if (d.key) return `DELETE FROM ${table.qualified} WHERE ${keyPredicate(table, d.key)};`;
    // No key: remove exactly `count` copies of this row, whichever they are.
    const match = Object.entries(d.production ?? {})
      .map(([c, v]) => `${quoteIdent(c)} IS NOT DISTINCT FROM ${literal(v, types.get(c) ?? 'text')}`)
      .join(' AND ');
    return `DELETE FROM ${table.qualified} WHERE ctid IN (SELECT ctid FROM ${table.qualified} WHERE ${match} LIMIT ${d.count});`;
  }
  const where = d.key ? keyPredicate(table, d.key) : Object.entries(d.production ?? {}).map(([c, v]) => (v === null ? `${quoteIdent(c)} IS NULL` : `${quoteIdent(c)} = ${literal(v, types.get(c) ?? 'text')}`)).join(' AND ');
  // Postgres and psql end a `--` comment at a carriage return as well as a line feed: either one
  // left in a production value would turn the rest of it into a statement run on production.
  return `-- only in production (kept): ${table.qualified} WHERE ${where}`.replace(/[\r\n]/g, ' ');
}

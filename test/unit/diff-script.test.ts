import { loadModule, parseSync } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ColumnInfo, TableInfo } from '../../src/db/introspect.js';
import { recoveryStatement } from '../../src/report/diff-script.js';
import type { RowDifference } from '../../src/diff/rows.js';

function column(name: string, type: string, extra: Partial<ColumnInfo> = {}): ColumnInfo {
  return { name, type, notNull: false, generated: false, identity: null, defaultExpr: null, collatable: type === 'text', ...extra };
}

function table(columns: ColumnInfo[], primaryKey: string[] | null = ['id']): TableInfo {
  return {
    schema: 'public',
    name: 'Order Lines',
    qualified: '"public"."Order Lines"',
    kind: 'table',
    parent: null,
    root: null,
    columns,
    primaryKey,
    uniqueKeys: [],
    foreignKeys: [],
    constraints: {},
    indexes: {},
    estimatedRows: 0,
  };
}

const diff = (d: Partial<RowDifference> & Pick<RowDifference, 'kind'>): RowDifference => ({ key: null, branch: null, production: null, changedColumns: [], count: 1, ...d });

/** Statements Postgres's own parser finds in a script (comments are not statements). */
const statements = (sql: string) => (parseSync(sql) as { stmts?: unknown[] }).stmts ?? [];

const lines = table([column('id', 'integer'), column('note', 'text'), column('total', 'numeric', { generated: true })]);

describe('recoveryStatement', () => {
  beforeAll(async () => {
    await loadModule();
  });

  it('re-inserts a missing row with typed literals, quoted names, and without generated columns', () => {
    const sql = recoveryStatement(lines, diff({ kind: 'missing', key: { id: '7' }, branch: { id: '7', note: "it's \"odd\"", total: '3.5' } }));
    expect(sql).toBe(`INSERT INTO "public"."Order Lines" ("id", "note") VALUES ('7'::integer, 'it''s "odd"'::text);`);
    expect(statements(sql)).toHaveLength(1);
  });

  it('writes NULL for a null value, never the string', () => {
    expect(recoveryStatement(lines, diff({ kind: 'missing', branch: { id: '1', note: null } }))).toContain(`VALUES ('1'::integer, NULL)`);
  });

  it('overrides an identity GENERATED ALWAYS column instead of failing on it', () => {
    const t = table([column('id', 'bigint', { identity: 'always' }), column('note', 'text')]);
    expect(recoveryStatement(t, diff({ kind: 'missing', branch: { id: '1', note: 'a' } }))).toContain('OVERRIDING SYSTEM VALUE VALUES');
    const byDefault = table([column('id', 'bigint', { identity: 'by default' }), column('note', 'text')]);
    expect(recoveryStatement(byDefault, diff({ kind: 'missing', branch: { id: '1', note: 'a' } }))).not.toContain('OVERRIDING');
  });

  it('inserts a keyless row as many times as copies are missing', () => {
    const t = table([column('note', 'text')], null);
    const sql = recoveryStatement(t, diff({ kind: 'missing', branch: { note: 'dup' }, count: 3 }));
    expect(sql.split('\n')).toEqual(Array(3).fill(`INSERT INTO "public"."Order Lines" ("note") VALUES ('dup'::text);`));
  });

  it('updates only the changed columns, by key, leaving generated columns to Postgres', () => {
    const sql = recoveryStatement(lines, diff({ kind: 'changed', key: { id: '7' }, branch: { id: '7', note: 'was', total: '9' }, production: { id: '7', note: 'now', total: '1' }, changedColumns: ['note', 'total'] }));
    expect(sql).toBe(`UPDATE "public"."Order Lines" SET "note" = 'was'::text WHERE "id" = '7'::integer;`);
  });

  it('never deletes a row only in production unless asked: it becomes a comment', () => {
    const sql = recoveryStatement(lines, diff({ kind: 'extra', key: { id: '8' }, production: { id: '8', note: 'new' } }));
    expect(sql).toBe(`-- only in production (kept): "public"."Order Lines" WHERE "id" = '8'::integer`);
    expect(statements(sql)).toHaveLength(0);
  });

  it('with --delete-extra deletes by key, or exactly `count` copies of a keyless row', () => {
    expect(recoveryStatement(lines, diff({ kind: 'extra', key: { id: '8' }, production: { id: '8' } }), { deleteExtra: true })).toBe(`DELETE FROM "public"."Order Lines" WHERE "id" = '8'::integer;`);
    const t = table([column('note', 'text'), column('n', 'integer')], null);
    const sql = recoveryStatement(t, diff({ kind: 'extra', production: { note: null, n: '2' }, count: 2 }), { deleteExtra: true });
    expect(sql).toBe(`DELETE FROM "public"."Order Lines" WHERE ctid IN (SELECT ctid FROM "public"."Order Lines" WHERE "note" IS NOT DISTINCT FROM NULL AND "n" IS NOT DISTINCT FROM '2'::integer LIMIT 2);`);
    expect(statements(sql)).toHaveLength(1);
  });

  it('a keyless row only in production is described by all its values, NULL as IS NULL', () => {
    const t = table([column('note', 'text'), column('n', 'integer')], null);
    expect(recoveryStatement(t, diff({ kind: 'extra', production: { note: null, n: '2' } }))).toBe(`-- only in production (kept): "public"."Order Lines" WHERE "note" IS NULL AND "n" = '2'::integer`);
  });

  // Production's values end up inside a `--` comment; Postgres (and psql) end such a comment at
  // a line feed OR a carriage return, so either one in a value would turn the rest of the value
  // into a statement run on production when the script is applied.
  it('a value holding a line break cannot escape the comment and become a statement', () => {
    const t = table([column('note', 'text')], null);
    for (const eol of ['\n', '\r', '\r\n']) {
      const sql = recoveryStatement(t, diff({ kind: 'extra', production: { note: `x${eol}DELETE FROM "public"."Order Lines"; --` } }));
      expect(sql.startsWith('-- only in production (kept)')).toBe(true);
      expect(statements(sql), JSON.stringify(sql)).toHaveLength(0);
    }
  });
});

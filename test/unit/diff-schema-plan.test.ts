import { describe, expect, it } from 'vitest';
import type { ColumnInfo, SchemaInfo, TableInfo } from '../../src/db/introspect.js';
import { refusal } from '../support/refusal.js';
import { planRowDiff } from '../../src/diff/plan.js';
import { comparableColumns, diffSchemas, diffTable } from '../../src/diff/schema.js';

const col = (name: string, type = 'integer', extra: Partial<ColumnInfo> = {}): ColumnInfo => ({ name, type, notNull: false, generated: false, identity: null, defaultExpr: null, collatable: type === 'text', ...extra });

function table(name: string, columns: ColumnInfo[], extra: Partial<TableInfo> = {}): TableInfo {
  return { schema: 'public', name, qualified: `"public"."${name}"`, kind: 'table', parent: null, root: null, columns, primaryKey: ['id'], uniqueKeys: [], foreignKeys: [], constraints: {}, indexes: {}, estimatedRows: 0, ...extra };
}

const schema = (tables: TableInfo[], enums: SchemaInfo['enums'] = []): SchemaInfo => ({ tables, enums });

describe('schema diff (branch = the past, production = now)', () => {
  const past = table('orders', [col('id', 'integer', { notNull: true }), col('note', 'text'), col('old', 'text'), col('qty', 'integer')], {
    constraints: { qty_positive: 'CHECK (qty > 0)', gone: 'CHECK (true)' },
    indexes: { orders_note: 'CREATE INDEX orders_note ON orders (note)' },
  });
  const now = table('orders', [col('id', 'integer', { notNull: true }), col('note', 'text', { notNull: true }), col('qty', 'bigint'), col('added', 'text')], {
    constraints: { qty_positive: 'CHECK (qty >= 0)', fresh: 'CHECK (false)' },
    indexes: { orders_note: 'CREATE INDEX orders_note ON orders (lower(note))', orders_added: 'CREATE INDEX orders_added ON orders (added)' },
    primaryKey: ['id', 'note'],
  });

  it('names every change to a table: columns added, dropped, retyped, nullability, constraints, indexes, key', () => {
    expect(diffTable(past, now)).toEqual({
      table: 'public.orders',
      columnsOnlyInBranch: ['old'],
      columnsOnlyInProduction: ['added'],
      retypedColumns: [{ column: 'qty', branch: 'integer', production: 'bigint' }],
      nullabilityChanged: [{ column: 'note', branch: false, production: true }],
      constraints: { onlyInBranch: ['gone'], onlyInProduction: ['fresh'], changed: ['qty_positive'] },
      indexes: { onlyInBranch: [], onlyInProduction: ['orders_added'], changed: ['orders_note'] },
      primaryKey: { branch: ['id'], production: ['id', 'note'] },
    });
  });

  it('an unchanged table is no difference at all', () => {
    expect(diffTable(past, { ...past })).toBeNull();
  });

  it('over schemas: tables dropped and added since, changed tables, and enum labels', () => {
    const users = table('users', [col('id')]);
    const d = diffSchemas(
      schema([past, users, table('dropped', [col('id')])], [{ schema: 'public', name: 'mood', labels: ['sad', 'ok'] }, { schema: 'public', name: 'gone', labels: ['x'] }]),
      schema([now, users, table('new', [col('id')])], [{ schema: 'public', name: 'mood', labels: ['sad', 'ok', 'happy'] }]),
    );
    expect(d.tablesOnlyInBranch).toEqual(['public.dropped']);
    expect(d.tablesOnlyInProduction).toEqual(['public.new']);
    expect(d.changedTables.map((t) => t.table)).toEqual(['public.orders']);
    expect(d.enums).toEqual([
      { name: 'public.mood', branch: ['sad', 'ok'], production: ['sad', 'ok', 'happy'] },
      { name: 'public.gone', branch: ['x'], production: null },
    ]);
    expect(d.identical).toBe(false);
    expect(diffSchemas(schema([users]), schema([users])).identical).toBe(true);
  });

  it('compares only columns present on both sides with the same type', () => {
    expect(comparableColumns(past, now).map((c) => c.name)).toEqual(['id', 'note']);
  });
});

describe('planRowDiff', () => {
  it('diffs by the primary key, ranging integer keys arithmetically through the index', () => {
    const t = table('orders', [col('id'), col('note', 'text')]);
    const plan = planRowDiff(t, t, 'id > 5');
    expect(plan).toMatchObject({ mode: 'key', table: 'public.orders', where: '(id > 5)', segmentExpr: '"id"', segmentType: 'integer', integerSegments: true, indexRanges: true, skipped: [] });
    expect(plan.rowText).toBe('row("id", "note")::text');
    expect(planRowDiff(t, t).where).toBe('true');
  });

  it('orders a text key by bytes (COLLATE "C"), which is the same on every server', () => {
    const t = table('tags', [col('name', 'text'), col('n')], { primaryKey: ['name'] });
    expect(planRowDiff(t, t)).toMatchObject({ segmentExpr: '"name" collate "C"', integerSegments: false, indexRanges: false });
  });

  it('falls back to a unique key production also has, then to whole rows (multiset)', () => {
    const past = table('t', [col('id'), col('code', 'text')], { uniqueKeys: [['code']] });
    const now = table('t', [col('id'), col('code', 'text')], { primaryKey: null, uniqueKeys: [['code']] });
    expect(planRowDiff(past, now).keyColumns.map((c) => c.name)).toEqual(['code']);
    const keyless = table('t', [col('id'), col('code', 'text')], { primaryKey: null });
    expect(planRowDiff(past, keyless)).toMatchObject({ mode: 'multiset', keyColumns: [], segmentExpr: 'hashtextextended(row("id", "code")::text, 0)', segmentType: 'bigint' });
  });

  it('does not use a key whose column changed type; reports columns it cannot compare', () => {
    const past = table('t', [col('id'), col('v', 'text'), col('gone')]);
    const now = table('t', [col('id', 'bigint'), col('v', 'text'), col('added')]);
    const plan = planRowDiff(past, now);
    expect(plan.mode).toBe('multiset');
    expect(plan.compared.map((c) => c.name)).toEqual(['v']);
    expect(plan.skipped.sort()).toEqual(['added', 'gone', 'id']);
  });

  it('--columns narrows the comparison but keeps the key; unknown columns are a usage error', () => {
    const t = table('t', [col('id'), col('a'), col('b')]);
    expect(planRowDiff(t, t, undefined, ['b']).compared.map((c) => c.name)).toEqual(['id', 'b']);
    const e = refusal(() => planRowDiff(t, t, undefined, ['b', 'nope']));
    expect([e.code, e.exitCode]).toEqual(['unknown_column', 2]);
    expect(e.message).toContain('nope');
  });

  it('refuses a table with no column comparable on both sides', () => {
    const e = refusal(() => planRowDiff(table('t', [col('a')]), table('t', [col('a', 'text')])));
    expect([e.code, e.exitCode]).toEqual(['no_common_columns', 2]);
  });
});

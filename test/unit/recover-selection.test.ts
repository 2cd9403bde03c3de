import { describe, expect, it } from 'vitest';
import type { ColumnInfo, ForeignKeyInfo, SchemaInfo, TableInfo } from '../../src/db/introspect.js';
import { refusal } from '../support/refusal.js';
import { addCascade, selectRoots } from '../../src/recover/selection.js';

const col = (name: string, type = 'integer', extra: Partial<ColumnInfo> = {}): ColumnInfo => ({ name, type, notNull: true, generated: false, identity: null, defaultExpr: null, collatable: false, ...extra });

function fk(columns: string[], refTable: string, refColumns = ['id'], extra: Partial<ForeignKeyInfo> = {}): ForeignKeyInfo {
  return { name: `${refTable}_${columns.join('_')}_fkey`, columns, refSchema: 'public', refTable, refColumns, onDelete: 'cascade', onUpdate: 'no action', deferrable: false, initiallyDeferred: false, ...extra };
}

function table(name: string, columns: ColumnInfo[], extra: Partial<TableInfo> = {}): TableInfo {
  return { schema: 'public', name, qualified: `"public"."${name}"`, kind: 'table', parent: null, root: null, columns, primaryKey: ['id'], uniqueKeys: [], foreignKeys: [], constraints: {}, indexes: {}, estimatedRows: 0, ...extra };
}

const schema = (...tables: TableInfo[]): SchemaInfo => ({ tables, enums: [] });
const root = (name: string) => ({ schema: null, name });

describe('selectRoots', () => {
  const users = table('users', [col('id'), col('email', 'text')]);

  it('selects the chosen rows by the user filter, in parentheses so it cannot widen the query', () => {
    const [sel] = selectRoots([root('users')], schema(users), schema(users), "email = 'a' or true");
    expect(sel!.sql).toBe(`select "id", "email" from "public"."users" where (email = 'a' or true)`);
    expect(sel!.role).toBe('root');
    expect(sel!.key).toEqual(['id']);
    expect(selectRoots([root('users')], schema(users), schema(users), undefined)[0]!.sql).toMatch(/ where true$/);
  });

  it('refuses, as a usage error before any work, a table missing on either side (saying which)', () => {
    const other = table('other', [col('id')]);
    const e1 = refusal(() => selectRoots([root('nope')], schema(users), schema(users), undefined));
    expect([e1.code, e1.exitCode]).toEqual(['unknown_table', 2]);
    expect(refusal(() => selectRoots([root('users')], schema(other), schema(users), undefined)).code).toBe('table_not_in_branch');
    expect(refusal(() => selectRoots([root('users')], schema(users), schema(other), undefined)).code).toBe('table_not_in_production');
  });

  it('refuses a column whose type changed since, naming both types (it would be written as NULL)', () => {
    const now = table('users', [col('id'), col('email', 'character varying(10)')]);
    const e = refusal(() => selectRoots([root('users')], schema(users), schema(now), undefined));
    expect(e.code).toBe('schema_mismatch');
    expect(e.message).toContain('email: text vs character varying(10)');
  });

  it('copies only columns both sides have, and never generated ones', () => {
    const past = table('users', [col('id'), col('dropped', 'text'), col('total', 'numeric', { generated: true }), col('email', 'text')]);
    const now = table('users', [col('id'), col('email', 'text'), col('added', 'text'), col('total', 'numeric', { generated: true })]);
    const [sel] = selectRoots([root('users')], schema(past), schema(now), undefined);
    expect(sel!.columns.map((c) => c.name)).toEqual(['id', 'email']);
  });

  it('matches rows by the primary key only when production has that key too, else by a shared unique key, else by whole rows', () => {
    const past = table('users', [col('id'), col('email', 'text')], { uniqueKeys: [['email']] });
    expect(selectRoots([root('users')], schema(past), schema(past), undefined)[0]!.key).toEqual(['id']);
    const pkDropped = table('users', [col('id'), col('email', 'text')], { primaryKey: null, uniqueKeys: [['email']] });
    expect(selectRoots([root('users')], schema(past), schema(pkDropped), undefined)[0]!.key).toEqual(['email']);
    const noKeys = table('users', [col('id'), col('email', 'text')], { primaryKey: null });
    expect(selectRoots([root('users')], schema(past), schema(noKeys), undefined)[0]!.key).toEqual([]);
    // A key over a column production no longer has cannot match rows.
    const keyColumnGone = table('users', [col('email', 'text')], { primaryKey: null, uniqueKeys: [['email']] });
    const pastOnId = table('users', [col('id'), col('email', 'text')], { uniqueKeys: [['email']] });
    expect(selectRoots([root('users')], schema(pastOnId), schema(keyColumnGone), undefined)[0]!.key).toEqual(['email']);
  });

  it('finds an unqualified name in public first when several schemas have it', () => {
    const audit = { ...users, schema: 'audit', qualified: '"audit"."users"' };
    const [sel] = selectRoots([root('users')], schema(audit, users), schema(audit, users), undefined);
    expect(sel!.branch.schema).toBe('public');
    expect(selectRoots([{ schema: 'audit', name: 'users' }], schema(audit, users), schema(audit, users), undefined)[0]!.branch.schema).toBe('audit');
  });
});

describe('addCascade', () => {
  const users = table('users', [col('id')]);
  const orders = table('orders', [col('id'), col('user_id')], { foreignKeys: [fk(['user_id'], 'users')] });
  const items = table('items', [col('id'), col('order_id')], { foreignKeys: [fk(['order_id'], 'orders')] });
  const s = schema(users, orders, items);

  it('follows foreign keys down, each child selecting the rows that reference its parent selection', () => {
    const all = addCascade(selectRoots([root('users')], s, s, 'id = 1'), s, s);
    expect(all.map((x) => [x.branch.name, x.role])).toEqual([['users', 'root'], ['orders', 'cascade'], ['items', 'cascade']]);
    const ord = all[1]!;
    expect(ord.sql).toBe(`select c."id", c."user_id" from "public"."orders" c where (exists (select 1 from (select "id" from "public"."users" where (id = 1)) p where p."id" = c."user_id"))`);
    expect(ord.via.map((f) => f.name)).toEqual(['users_user_id_fkey']);
    // Grandchildren nest their parent's query: only items of the selected users' orders.
    expect(all[2]!.sql).toContain(`from (${ord.sql}) p where p."id" = c."order_id"`);
  });

  it('one selection per table reached several ways, OR of the ways', () => {
    const transfers = table('transfers', [col('id'), col('from_id'), col('to_id')], { foreignKeys: [fk(['from_id'], 'users'), fk(['to_id'], 'users')] });
    const t = schema(users, transfers);
    const all = addCascade(selectRoots([root('users')], t, t, undefined), t, t);
    expect(all).toHaveLength(2);
    expect(all[1]!.via).toHaveLength(2);
    expect(all[1]!.sql).toMatch(/ where \(exists .*c\."from_id"\)\) or \(exists .*c\."to_id"\)\)$/);
  });

  it('does not follow self-references, tables already chosen, or tables production no longer has', () => {
    const tree = table('users', [col('id'), col('parent_id')], { foreignKeys: [fk(['parent_id'], 'users')] });
    expect(addCascade(selectRoots([root('users')], schema(tree), schema(tree), undefined), schema(tree), schema(tree))).toHaveLength(1);
    const both = addCascade(selectRoots([root('users'), root('orders')], s, s, undefined), s, s);
    expect(both.map((x) => [x.branch.name, x.role])).toEqual([['users', 'root'], ['orders', 'root'], ['items', 'cascade']]);
    const prodWithoutItems = schema(users, orders);
    expect(addCascade(selectRoots([root('users')], s, prodWithoutItems, undefined), s, prodWithoutItems).map((x) => x.branch.name)).toEqual(['users', 'orders']);
  });

  it('skips a foreign key onto a column the parent selection does not copy', () => {
    const past = table('users', [col('id'), col('code', 'text')]);
    const now = table('users', [col('id')]);
    const badges = table('badges', [col('id'), col('user_code', 'text')], { foreignKeys: [fk(['user_code'], 'users', ['code'])] });
    const all = addCascade(selectRoots([root('users')], schema(past, badges), schema(now, badges), undefined), schema(past, badges), schema(now, badges));
    expect(all.map((x) => x.branch.name)).toEqual(['users']);
  });

  it('limits a key declared on some partitions only to the rows of those partitions', () => {
    const events = table('events', [col('id'), col('user_id')], {
      kind: 'partitioned',
      foreignKeys: [fk(['user_id'], 'users', ['id'], { declaredOn: { constraints: ['"public"."events_2024_fk"'], leaves: ['"public"."events_2024"', `"public"."it's"`] } })],
    });
    const t = schema(users, events);
    const [, ev] = addCascade(selectRoots([root('users')], t, t, undefined), t, t);
    expect(ev!.sql).toContain(`c.tableoid = any (array['"public"."events_2024"', '"public"."it''s"']::regclass[]) and exists`);
  });

  it('refuses a cascaded table whose column type changed, as for a chosen one', () => {
    const now = table('orders', [col('id'), col('user_id', 'bigint')], { foreignKeys: [fk(['user_id'], 'users')] });
    expect(refusal(() => addCascade(selectRoots([root('users')], s, schema(users, now), undefined), s, schema(users, now))).code).toBe('schema_mismatch');
  });
});

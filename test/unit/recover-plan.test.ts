import { describe, expect, it } from 'vitest';
import type { ForeignKeyInfo, TableInfo } from '../../src/db/introspect.js';
import { liftPartitionForeignKeys } from '../../src/db/introspect.js';
import { integerKeyColumn, keyRunsSql, planParts, rowsInRangesSql } from '../../src/recover/plan.js';
import { describeTrigger, sideWrites } from '../../src/recover/triggers.js';

const col = (name: string, type = 'integer', identity: 'always' | 'by default' | null = null) => ({
  name,
  type,
  notNull: true,
  generated: false,
  identity,
  defaultExpr: null,
  collatable: type === 'text',
});

function table(schema: string, name: string, kind: TableInfo['kind'], parent: string | null, root: string | null, fks: ForeignKeyInfo[] = []): TableInfo {
  return {
    schema,
    name,
    qualified: `"${schema}"."${name}"`,
    kind,
    parent,
    root,
    columns: [col('id'), col('account_id')],
    primaryKey: ['id'],
    uniqueKeys: [],
    foreignKeys: fks,
    constraints: {},
    indexes: {},
    estimatedRows: 0,
  };
}

const fk = (name: string, onDelete: ForeignKeyInfo['onDelete'] = 'no action'): ForeignKeyInfo => ({
  name,
  columns: ['account_id'],
  refSchema: 'public',
  refTable: 'accounts',
  refColumns: ['id'],
  onDelete,
  onUpdate: 'no action',
  deferrable: false,
  initiallyDeferred: false,
});

describe('liftPartitionForeignKeys', () => {
  it('lifts keys declared on every leaf of a two-level tree onto the root, as one key over all of them', () => {
    const root = table('public', 'events', 'partitioned', null, null);
    const mid = table('public', 'events_eu', 'partitioned', 'public.events', 'public.events');
    const a = table('public', 'events_eu_2025', 'partition', 'public.events_eu', 'public.events', [fk('a_fk')]);
    const b = table('public', 'events_eu_2026', 'partition', 'public.events_eu', 'public.events', [fk('b_fk')]);
    const c = table('public', 'events_us', 'partition', 'public.events', 'public.events', [fk('c_fk')]);
    liftPartitionForeignKeys([root, mid, a, b, c]);
    expect(root.foreignKeys).toHaveLength(1);
    expect(root.foreignKeys[0]!.declaredOn).toEqual({ constraints: ['"public"."a_fk"', '"public"."b_fk"', '"public"."c_fk"'], leaves: null });
    expect(root.foreignKeys[0]!.name).toBe('a_fk (+2 partitions)');
    // Partitions keep their own keys; the middle level gets none of its own.
    expect(a.foreignKeys.map((k) => k.name)).toEqual(['a_fk']);
    expect(mid.foreignKeys).toEqual([]);
  });

  it('keys of different shapes, or on only some leaves, name the leaves they apply to', () => {
    const root = table('public', 'payment', 'partitioned', null, null);
    const p1 = table('public', 'payment_p1', 'partition', 'public.payment', 'public.payment', [fk('p1_fk')]);
    const p2 = table('public', 'payment_p2', 'partition', 'public.payment', 'public.payment', [fk('p2_fk', 'cascade')]);
    const p3 = table('public', 'payment_p3', 'partition', 'public.payment', 'public.payment');
    liftPartitionForeignKeys([root, p1, p2, p3]);
    expect(root.foreignKeys.map((k) => [k.onDelete, k.declaredOn?.leaves])).toEqual([
      ['no action', ['"public"."payment_p1"']],
      ['cascade', ['"public"."payment_p2"']],
    ]);
  });

  it('a key the root declares itself is not added again', () => {
    const root = table('public', 'events', 'partitioned', null, null, [fk('events_fk')]);
    const a = table('public', 'events_a', 'partition', 'public.events', 'public.events', [fk('events_a_fk')]);
    liftPartitionForeignKeys([root, a]);
    expect(root.foreignKeys.map((k) => k.name)).toEqual(['events_fk']);
  });
});

describe('plan SQL', () => {
  const s = {
    columns: [col('id', 'bigint'), col('title', 'text'), col('n', 'integer', 'always')],
    key: ['id'],
    role: 'root' as const,
    via: [],
    production: { qualified: '"public"."t"' } as TableInfo,
  };

  it('plans inserts from the staged rows, updates only of settable columns, deletes from the scope keys, never with user SQL', () => {
    const parts = planParts(s, 3, 'all', true, { scope: 'pitr_scope_3' });
    expect(parts.map((p) => p.action)).toEqual(['insert', 'update', 'delete']);
    expect(parts[0]!.sql).toContain('from pitr_src_3 s where not exists (select 1 from "public"."t" t where t."id" = s."id")');
    expect(parts[1]!.sql).toContain(`case when s."title" collate "C" is distinct from t."title" collate "C" then 'title' end`);
    expect(parts[1]!.sql).not.toContain(`'n'`);
    expect(parts[2]!.sql).toContain('from pitr_scope_3 sc join "public"."t" t on t."id" = sc."id"');
  });

  it('with the diff engine kinds, inserts come only from missing keys and updates only from changed ones', () => {
    const parts = planParts(s, 3, 'all', false, { diff: 'pitr_diff_3' });
    expect(parts[0]!.sql).toContain(`from pitr_src_3 s join pitr_diff_3 d on d."id" = s."id" and d.kind = 'missing' where not exists`);
    expect(parts[1]!.sql).toContain(`from pitr_src_3 s join pitr_diff_3 d on d."id" = s."id" and d.kind = 'changed' join "public"."t" t`);
  });

  it('missing mode plans inserts only; a keys-only source is used for them', () => {
    const parts = planParts(s, 0, 'missing', false, { source: 'pitr_keys_0' });
    expect(parts).toHaveLength(1);
    expect(parts[0]!.sql).toContain('from pitr_keys_0 s');
  });

  it('names key runs and selects the branch rows inside them', () => {
    expect(integerKeyColumn(s)).toBe('id');
    expect(integerKeyColumn({ ...s, key: ['title'] })).toBeNull();
    expect(keyRunsSql('id', 2)).toContain('"id"::int8 - row_number() over (order by "id")');
    const sql = rowsInRangesSql({ columns: s.columns, sql: 'select * from t' }, 'id', [
      { lo: '1', hi: '10' },
      { lo: '20', hi: '20' },
    ]);
    expect(sql).toContain(`unnest('{1,20}'::int8[], '{10,20}'::int8[]) as r(lo, hi) on x."id" between r.lo and r.hi`);
  });
});

describe('triggers', () => {
  it('decodes pg_trigger.tgtype', () => {
    expect(describeTrigger(1 | 2 | 16)).toEqual({ fires: 'BEFORE UPDATE ROW', events: ['UPDATE'], rewritesRows: true });
    expect(describeTrigger(1 | 4 | 16)).toEqual({ fires: 'AFTER INSERT OR UPDATE ROW', events: ['INSERT', 'UPDATE'], rewritesRows: false });
    expect(describeTrigger(4 | 8)).toEqual({ fires: 'AFTER INSERT OR DELETE STATEMENT', events: ['INSERT', 'DELETE'], rewritesRows: false });
  });

  it('side writes are the counter differences outside the written tables', () => {
    const before = new Map([['public.audit', { ins: 2, upd: 0, del: 0 }]]);
    const after = new Map([
      ['public.audit', { ins: 30, upd: 0, del: 0 }],
      ['public.accounts', { ins: 0, upd: 28, del: 0 }],
      ['public.untouched', { ins: 1, upd: 0, del: 0 }],
    ]);
    const before2 = new Map([...before, ['public.untouched', { ins: 1, upd: 0, del: 0 }]]);
    expect(sideWrites(before2, after, new Set(['public.accounts']))).toEqual([{ table: 'public.audit', inserted: 28, updated: 0, deleted: 0 }]);
  });
});

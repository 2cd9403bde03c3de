import { describe, expect, it } from 'vitest';
import { findTable, liftPartitionForeignKeys, type ForeignKeyInfo, type TableInfo } from '../../src/db/introspect.js';

const fk = (name: string, refTable = 'customers', extra: Partial<ForeignKeyInfo> = {}): ForeignKeyInfo => ({
  name,
  columns: ['customer_id'],
  refSchema: 'public',
  refTable,
  refColumns: ['id'],
  onDelete: 'no action',
  onUpdate: 'no action',
  deferrable: false,
  initiallyDeferred: false,
  ...extra,
});

function table(name: string, kind: TableInfo['kind'], parent: string | null, root: string | null, foreignKeys: ForeignKeyInfo[] = []): TableInfo {
  return { schema: 'public', name, qualified: `"public"."${name}"`, kind, parent, root, columns: [], primaryKey: null, uniqueKeys: [], foreignKeys, constraints: {}, indexes: {}, estimatedRows: 0 };
}

describe('foreign keys declared on partitions (pre-PostgreSQL 12 style)', () => {
  it('become one foreign key of the root, naming every constraint, when every leaf has it', () => {
    const root = table('payments', 'partitioned', null, null);
    const tables = [root, table('payments_2024', 'partition', 'public.payments', 'public.payments', [fk('p24_fk')]), table('payments_2025', 'partition', 'public.payments', 'public.payments', [fk('p25_fk')])];
    liftPartitionForeignKeys(tables);
    expect(root.foreignKeys).toEqual([{ ...fk('p24_fk'), name: 'p24_fk (+1 partitions)', declaredOn: { constraints: ['"public"."p24_fk"', '"public"."p25_fk"'], leaves: null } }]);
  });

  it('say which leaves carry a key only some partitions have; different keys stay apart', () => {
    const root = table('payments', 'partitioned', null, null);
    const tables = [
      root,
      table('payments_2024', 'partition', 'public.payments', 'public.payments', [fk('p24_fk'), fk('p24_staff', 'staff')]),
      table('payments_2025', 'partition', 'public.payments', 'public.payments'),
    ];
    liftPartitionForeignKeys(tables);
    expect(root.foreignKeys.map((f) => [f.name, f.refTable, f.declaredOn?.leaves])).toEqual([
      ['p24_fk', 'customers', ['"public"."payments_2024"']],
      ['p24_staff', 'staff', ['"public"."payments_2024"']],
    ]);
  });

  it('reach the topmost root through several levels, a key on a middle table covering its leaves', () => {
    const root = table('events', 'partitioned', null, null);
    const mid = table('events_eu', 'partitioned', 'public.events', 'public.events', [fk('eu_fk')]);
    const tables = [root, mid, table('events_eu_1', 'partition', 'public.events_eu', 'public.events'), table('events_us', 'partition', 'public.events', 'public.events')];
    liftPartitionForeignKeys(tables);
    expect(root.foreignKeys).toHaveLength(1);
    expect(root.foreignKeys[0]!.declaredOn).toEqual({ constraints: ['"public"."eu_fk"'], leaves: ['"public"."events_eu_1"'] });
  });

  it('leave a key the root already declares itself alone (no duplicate)', () => {
    const root = table('payments', 'partitioned', null, null, [fk('root_fk')]);
    const tables = [root, table('payments_2024', 'partition', 'public.payments', 'public.payments', [fk('root_fk')])];
    liftPartitionForeignKeys(tables);
    expect(root.foreignKeys).toEqual([fk('root_fk')]);
  });
});

describe('findTable', () => {
  const other = { ...table('orders', 'table', null, null), schema: 'archive' };
  const pub = table('orders', 'table', null, null);
  const schema = { tables: [other, pub], enums: [] };

  it('an unqualified name means public when several schemas have it, else the only one', () => {
    expect(findTable(schema, { schema: null, name: 'orders' })).toBe(pub);
    expect(findTable({ tables: [other], enums: [] }, { schema: null, name: 'orders' })).toBe(other);
    expect(findTable(schema, { schema: 'archive', name: 'orders' })).toBe(other);
    expect(findTable(schema, { schema: 'nope', name: 'orders' })).toBeUndefined();
    // Names are exact: case matters once parsed.
    expect(findTable(schema, { schema: null, name: 'Orders' })).toBeUndefined();
  });
});

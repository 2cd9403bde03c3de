import { describe, expect, it } from 'vitest';
import type { ForeignKeyInfo, TableInfo } from '../../src/db/introspect.js';
import { childrenOf, insertOrder } from '../../src/recover/order.js';
import { PitrError } from '../../src/errors.js';

function table(name: string, refs: { to: string; name?: string; deferrable?: boolean }[] = []): TableInfo {
  return {
    schema: 'public',
    name,
    qualified: `"public"."${name}"`,
    kind: 'table',
    parent: null,
    root: null,
    columns: [],
    primaryKey: ['id'],
    uniqueKeys: [],
    foreignKeys: refs.map(
      (r): ForeignKeyInfo => ({
        name: r.name ?? `${name}_${r.to}_fkey`,
        columns: [`${r.to}_id`],
        refSchema: 'public',
        refTable: r.to,
        refColumns: ['id'],
        onDelete: 'cascade',
        onUpdate: 'no action',
        deferrable: !!r.deferrable,
        initiallyDeferred: false,
      }),
    ),
    constraints: {},
    indexes: {},
    estimatedRows: 0,
  };
}

describe('recovery order', () => {
  it('puts parents before children over three levels, whatever the input order', () => {
    const users = table('users');
    const comics = table('comics', [{ to: 'users' }]);
    const chapters = table('chapters', [{ to: 'comics' }]);
    const comments = table('comments', [{ to: 'chapters' }, { to: 'users' }]);
    const order = insertOrder([comments, chapters, users, comics]).tables.map((t) => t.name);
    expect(order.indexOf('users')).toBeLessThan(order.indexOf('comics'));
    expect(order.indexOf('comics')).toBeLessThan(order.indexOf('chapters'));
    expect(order.indexOf('chapters')).toBeLessThan(order.indexOf('comments'));
    expect(childrenOf(users, [users, comics, chapters, comments]).map((c) => c.child.name)).toEqual(['comics', 'comments']);
  });

  it('defers a cycle of deferrable keys and names a rigid cycle', () => {
    const a = table('a', [{ to: 'b', deferrable: true }]);
    const b = table('b', [{ to: 'a', deferrable: true }]);
    expect(insertOrder([a, b]).deferred.sort()).toEqual(['"public"."a_b_fkey"', '"public"."b_a_fkey"']);
    const c = table('c', [{ to: 'd' }]);
    const d = table('d', [{ to: 'c', deferrable: true }]);
    const err = (() => {
      try {
        insertOrder([c, d]);
      } catch (e) {
        return e as PitrError;
      }
    })();
    expect(err?.message).toMatch(/cycle public\.c → public\.d → public\.c and c_d_fkey is not DEFERRABLE/);
    expect(err?.exitCode).toBe(2);
  });

  it('allows self-references (deferred when deferrable)', () => {
    const tree = table('tree', [{ to: 'tree', deferrable: true, name: 'tree_parent_fkey' }]);
    expect(insertOrder([tree])).toEqual({ tables: [tree], deferred: ['"public"."tree_parent_fkey"'] });
  });
});

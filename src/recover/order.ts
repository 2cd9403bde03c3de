import { PitrError } from '../errors.js';
import type { ForeignKeyInfo, TableInfo } from '../db/introspect.js';
import { qualifiedName } from '../db/sql.js';

const id = (t: { schema: string; name: string }) => `${t.schema}.${t.name}`;
const refId = (fk: ForeignKeyInfo) => `${fk.refSchema}.${fk.refTable}`;

export interface ChildLink {
  child: TableInfo;
  fk: ForeignKeyInfo;
}

/**
 * Tables whose foreign keys point at `parent` (self-references included). Partitions are reached
 * through their topmost partitioned table, which carries their foreign keys (see introspect).
 */
export function childrenOf(parent: TableInfo, tables: readonly TableInfo[]): ChildLink[] {
  const out: ChildLink[] = [];
  for (const child of tables) {
    if (child.root) continue;
    for (const fk of child.foreignKeys) if (refId(fk) === id(parent)) out.push({ child, fk });
  }
  return out;
}

export interface InsertOrder {
  /** Parents before children. */
  tables: TableInfo[];
  /** Constraints (quoted, schema-qualified) deferred because the chosen tables reference each other in a cycle. */
  deferred: string[];
}

/**
 * Orders tables so that every referenced row is written before the rows referencing it. A
 * cycle among the chosen tables is allowed only when every foreign key in it is DEFERRABLE
 * (checked at commit instead); otherwise the error names the cycle.
 */
export function insertOrder(chosen: readonly TableInfo[]): InsertOrder {
  const byId = new Map(chosen.map((t) => [id(t), t]));
  const owner = new Map(chosen.flatMap((t) => t.foreignKeys.map((fk) => [fk, t] as const)));
  /** `SET CONSTRAINTS` names, schema-qualified (sessions pin search_path); a key lifted from partitions is one per partition. */
  const constraintNames = (fk: ForeignKeyInfo) => fk.declaredOn?.constraints ?? [qualifiedName(owner.get(fk)!.schema, fk.name)];
  const edges = new Map<string, { to: string; fk: ForeignKeyInfo }[]>();
  for (const t of chosen) {
    edges.set(
      id(t),
      t.foreignKeys.filter((fk) => byId.has(refId(fk)) && refId(fk) !== id(t)).map((fk) => ({ to: refId(fk), fk })),
    );
  }
  const ordered: TableInfo[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const deferred = new Set<string>();
  const visit = (node: string, path: string[]) => {
    if (state.get(node) === 'done') return;
    if (state.get(node) === 'visiting') {
      const cycle = [...path.slice(path.indexOf(node)), node];
      const fks = cycle.slice(0, -1).map((from, i) => edges.get(from)!.find((e) => e.to === cycle[i + 1])!.fk);
      const rigid = fks.filter((fk) => !fk.deferrable);
      if (rigid.length) {
        throw new PitrError(
          'fk_cycle',
          `foreign keys form a cycle ${cycle.join(' → ')} and ${rigid.map((f) => f.name).join(', ')} ${rigid.length > 1 ? 'are' : 'is'} not DEFERRABLE: recover these tables one at a time, or make the constraint deferrable`,
          { exit: 'usage' },
        );
      }
      for (const fk of fks) for (const c of constraintNames(fk)) deferred.add(c);
      return;
    }
    state.set(node, 'visiting');
    for (const e of edges.get(node) ?? []) visit(e.to, [...path, node]);
    state.set(node, 'done');
    ordered.push(byId.get(node)!);
  };
  for (const t of chosen) visit(id(t), []);
  // Self-references: rows of one table may point at each other; deferrable ones wait for commit.
  for (const t of chosen) for (const fk of t.foreignKeys) if (refId(fk) === id(t) && fk.deferrable) for (const c of constraintNames(fk)) deferred.add(c);
  return { tables: ordered, deferred: [...deferred] };
}

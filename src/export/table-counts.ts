import type pg from 'pg';
import { qualifiedName } from '../db/sql.js';
import { PitrError } from '../errors.js';
import { oneLine } from './common.js';
import type { ManifestTable } from './manifest.js';

export interface UserTable {
  schema: string;
  name: string;
}

/**
 * The tables whose rows pg_dump writes as TABLE DATA: ordinary tables and leaf partitions
 * (relkind r) outside the system schemas, temporary tables and extension members. Partitioned
 * parents hold no rows of their own and pg_dump copies each partition separately; COPY TO of an
 * inheritance parent copies only its own rows. So every table is counted with ONLY, and each
 * row is counted exactly once, the way pg_restore puts it back.
 */
export async function listUserTables(client: pg.ClientBase): Promise<UserTable[]> {
  const { rows } = await client.query<UserTable>(`
    select n.nspname as schema, c.relname as name
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'r'
      and c.relpersistence <> 't'
      and n.nspname not in ('pg_catalog', 'information_schema')
      and n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
      and not exists (select 1 from pg_depend d
                      where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
    order by n.nspname collate "C", c.relname collate "C"`);
  return rows;
}

/** Exact row counts, in the caller's transaction, one table after another. */
export async function countTableRows(client: pg.ClientBase, tables: readonly UserTable[], onTable?: (table: UserTable, rows: number) => void): Promise<number[]> {
  const out: number[] = [];
  for (const t of tables) {
    let n: number;
    try {
      n = Number((await client.query<{ n: string }>(`select count(*) as n from only ${qualifiedName(t.schema, t.name)}`)).rows[0]!.n);
    } catch (err) {
      throw new PitrError('export_count_failed', `counting the rows of ${t.schema}.${t.name} failed: ${oneLine(err)}`, { cause: err });
    }
    out.push(n);
    onTable?.(t, n);
  }
  return out;
}

/** Restored row counts must equal the manifest's: one line naming the first tables that differ. */
export function assertCountsMatch(expected: readonly ManifestTable[], restored: readonly ManifestTable[]): void {
  const differences = countDifferences(expected, restored);
  if (!differences.length) return;
  const shown = differences.slice(0, 3).join('; ');
  throw new PitrError(
    'export_counts_differ',
    `the restored row counts differ from the manifest in ${differences.length} table${differences.length === 1 ? '' : 's'}: ${shown}${differences.length > 3 ? `; and ${differences.length - 3} more` : ''}`,
    { detail: differences.join('\n') },
  );
}

/**
 * Where restored row counts differ from the manifest's, one line per table: a different count,
 * a table missing after the restore, or a table the manifest does not know. Empty when equal.
 */
export function countDifferences(expected: readonly ManifestTable[], restored: readonly ManifestTable[]): string[] {
  const key = (t: { schema: string; name: string }) => `${t.schema}.${t.name}`;
  const left = new Map(restored.map((t) => [`${t.schema}\u0000${t.name}`, t]));
  const out: string[] = [];
  for (const t of expected) {
    const got = left.get(`${t.schema}\u0000${t.name}`);
    left.delete(`${t.schema}\u0000${t.name}`);
    if (!got) out.push(`${key(t)} missing (manifest ${t.rows} rows)`);
    else if (got.rows !== t.rows) out.push(`${key(t)} ${got.rows} rows (manifest ${t.rows})`);
  }
  for (const t of left.values()) out.push(`${key(t)} ${t.rows} rows (not in the manifest)`);
  return out;
}

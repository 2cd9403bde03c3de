import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { columnDiffers, fastRowHash, rowHash } from '../../src/recover/hash.js';
import { startCluster, type TestCluster } from '../support/cluster.js';

/**
 * The shortcuts of src/recover/hash.ts against what they stand for, on a real server: a column
 * "differs" exactly when its two values print differently, and the fast row hash is equal
 * exactly when the row texts are (text hash as the reference). Each type gets values that are
 * equal by its `=` but print differently, and the reverse.
 */
const VALUES: Record<string, string[]> = {
  smallint: ['1', '-1', '0', 'null'],
  bigint: ['9223372036854775807', '-9223372036854775808', '0', 'null'],
  boolean: ['true', 'false', 'null'],
  uuid: [`'00000000-0000-0000-0000-000000000001'`, `'00000000-0000-0000-0000-000000000002'`, 'null'],
  date: [`'2024-02-29'`, `'infinity'`, `'2024-03-01'`, 'null'],
  bytea: [`'\\x00'`, `'\\x0000'`, `''`, 'null'],
  text: [`'a'`, `'A'`, `'a '`, `''`, `'é'`, `e'e\\u0301'`, 'null'],
  'character varying(10)': [`'a'`, `'a '`, `'b'`, 'null'],
  'timestamp without time zone': [`'2024-01-01 00:00:00'`, `'2024-01-01 00:00:00.000001'`, 'null'],
  'timestamp with time zone': [`'2024-01-01 00:00:00+00'`, `'2024-01-01 01:00:00+01'`, `'2024-01-01 00:00:00+01'`, 'null'],
  'numeric(12,2)': ['1.0', '1.00', '2', 'null'],
  numeric: ['1.0', '1.00', '1', `'NaN'`, 'null'],
  'double precision': ['0', `'-0'`, `'NaN'`, '1e300', 'null'],
  jsonb: [`'{"a":1,"b":2}'`, `'{"b":2,"a":1}'`, `'{"a":1.0}'`, `'{"a":1}'`, 'null'],
  mood: [`'sad'`, `'happy'`, 'null'],
};

let db: TestCluster;
let icu = false;

beforeAll(async () => {
  db = await startCluster();
  await db.query(`create type mood as enum ('sad', 'happy')`);
  icu = (await db.query<{ n: number }>(`select count(*)::int as n from pg_collation where collprovider = 'i'`))[0]!.n > 0;
  if (icu) await db.query(`create collation nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`);
}, 120_000);

afterAll(async () => {
  await db?.destroy();
});

async function typeOf(table: string): Promise<string> {
  return (await db.query<{ t: string }>(`select format_type(atttypid, atttypmod) as t from pg_attribute where attrelid = $1::regclass and attname = 'v'`, [table]))[0]!.t;
}

async function pairs(declared: string, values: string[]) {
  const table = `v_${Math.random().toString(36).slice(2, 8)}`;
  await db.query(`create table ${table} (id int, v ${declared})`);
  await db.query(`insert into ${table} values ${values.map((v, i) => `(${i}, ${v})`).join(', ')}`);
  const type = await typeOf(table);
  const column = { name: 'v', type };
  return db.query<{ a: number; b: number; differs: boolean; texts_differ: boolean; same_hash: boolean; same_text_hash: boolean }>(
    `select x.id as a, y.id as b,
            coalesce(${columnDiffers(column, 'x', 'y')}, true) as differs,
            x.v::text collate "C" is distinct from y.v::text collate "C" as texts_differ,
            ${fastRowHash([column], 'x')} = ${fastRowHash([column], 'y')} as same_hash,
            ${rowHash(['v'], 'x')} = ${rowHash(['v'], 'y')} as same_text_hash
       from ${table} x cross join ${table} y`,
  );
}

describe('recovery hashes and comparisons agree with the row text', () => {
  for (const [declared, values] of Object.entries(VALUES)) {
    it(`${declared}: a column differs exactly when its texts do; the fast hash is equal exactly when the text hash is`, async () => {
      for (const r of await pairs(declared, values)) {
        expect({ pair: [r.a, r.b], differs: r.differs }).toEqual({ pair: [r.a, r.b], differs: r.texts_differ });
        expect({ pair: [r.a, r.b], same: r.same_hash }).toEqual({ pair: [r.a, r.b], same: r.same_text_hash });
      }
    });
  }

  it('text under a nondeterministic collation: equal by = (and by ::text) but different bytes still differ', async () => {
    if (!icu) return;
    const rows = await pairs('text collate nocase', [`'a'`, `'A'`, `'b'`]);
    expect((await db.query<{ eq: boolean }>(`select 'a'::text collate nocase = 'A'::text collate nocase as eq`))[0]!.eq).toBe(true);
    expect(rows.find((r) => r.a === 0 && r.b === 1)).toMatchObject({ differs: true, texts_differ: true, same_hash: false });
    for (const r of rows) expect(r.differs).toBe(r.texts_differ);
  });
});

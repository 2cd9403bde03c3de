import { serverFacts } from './server-facts.js';

/**
 * The fast exact row hash shared by the diff and the recovery engines. Columns whose built-in
 * type prints one way per value (integers, booleans, uuid, dates, timestamps, bytea; text under
 * "C", byte for byte) are hashed in binary by hash_record_extended (PostgreSQL 14+), at a
 * fraction of the cost of printing them; every other column (numeric, whose scale only the text
 * shows; floats, where -0 = 0; enums, hashed by OID; user types) goes in as the row text of
 * those columns. So two rows hash equal exactly when their texts are equal, up to a 64-bit
 * collision, on any two servers of version 14 or later.
 *
 * hash_record_extended combines its columns' hashes linearly (31·h + next), so a sum of raw
 * record hashes over many rows would not see two rows swapping a column's values. Each row's
 * record hash is therefore mixed once more (hashint8extended) before anything adds it up.
 */

const EXACT_BINARY = /^(smallint|integer|bigint|boolean|uuid|date|bytea|text|character varying(\(\d+\))?|timestamp(\(\d\))? with(out)? time zone)$/;
const TEXTLIKE = /^(text|character varying(\(\d+\))?)$/;

/** Whether equal values of this type (as introspected: format_type under pg_catalog) always print the same and different ones never do, in binary. */
export const hashesExactlyInBinary = (type: string) => EXACT_BINARY.test(type);
export const isTextLike = (type: string) => TEXTLIKE.test(type);

/** SQL for a row's fast hash; `ref` gives a column's reference (quoted, maybe qualified). */
export function fastRowHashSql(columns: readonly { name: string; type: string }[], ref: (name: string) => string): string {
  const binary = columns.filter((c) => EXACT_BINARY.test(c.type));
  const printed = columns.filter((c) => !EXACT_BINARY.test(c.type));
  const fields = binary.map((c) => `${ref(c.name)}${TEXTLIKE.test(c.type) ? ' collate "C"' : ''}`);
  if (printed.length) fields.push(`row(${printed.map((c) => ref(c.name)).join(', ')})::text collate "C"`);
  return mixedRecordHash(fields);
}

/** The record hash of these fields, mixed once more so that sums over rows see swapped values. */
export const mixedRecordHash = (fields: readonly string[]) => `hashint8extended(hash_record_extended(row(${fields.join(', ')}), 0), 0)`;

/** Whether the server behind a connection has hash_record_extended (asked once per connection, see server-facts.ts). */
export const hasRecordHash = async (client: Parameters<typeof serverFacts>[0]): Promise<boolean> => (await serverFacts(client)).recordHash;

/** Whether both servers have hash_record_extended (PostgreSQL 14+). */
export async function bothHaveRecordHash(a: Parameters<typeof serverFacts>[0], b: Parameters<typeof serverFacts>[0]): Promise<boolean> {
  const [x, y] = await Promise.all([hasRecordHash(a), hasRecordHash(b)]);
  return x && y;
}

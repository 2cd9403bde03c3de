/**
 * What pitr needs to know about the server behind a connection before planning a diff, asked in
 * one round trip and once per connection: over a real network every round trip counts, and a
 * preview diffs table after table on the same two connections.
 */
export interface ServerFacts {
  /** hash_record_extended exists (PostgreSQL 14+). */
  recordHash: boolean;
  /** max_parallel_workers_per_gather when first asked (the default number of diff jobs follows it). */
  parallelWorkersPerGather: number;
  /** Seconds the question took: the connection's round trip, for the diff's cost model. */
  roundTrip: number;
}

type Queryable = { query(sql: string): Promise<{ rows: Record<string, unknown>[] }> };

const FACTS_SQL = `select current_setting('server_version_num')::int >= 140000 as record_hash, current_setting('max_parallel_workers_per_gather')::int as workers`;

const known = new WeakMap<object, Promise<ServerFacts>>();

export function serverFacts(client: Queryable): Promise<ServerFacts> {
  let facts = known.get(client);
  if (!facts) {
    const start = performance.now();
    facts = client.query(FACTS_SQL).then((r) => ({
      recordHash: r.rows[0]?.record_hash === true,
      parallelWorkersPerGather: Number(r.rows[0]?.workers ?? 0),
      roundTrip: (performance.now() - start) / 1000,
    }));
    known.set(client, facts);
    facts.catch(() => known.delete(client));
  }
  return facts;
}

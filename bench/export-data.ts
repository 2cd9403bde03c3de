import { rm } from 'node:fs/promises';
import { makeTempRoot, startCluster, type TestCluster } from '../test/support/cluster.js';
import { cleanupOnSignal, withClient } from './support.js';

/** The throw-away cluster and work directory of one export benchmark, removed at the end or on a signal. */
export class ExportBenchScratch {
  private cluster: TestCluster | undefined;
  private out: string | undefined;

  constructor() {
    cleanupOnSignal(() => this.cleanup());
  }

  async start(settings: Record<string, string>, tempPrefix: string): Promise<{ cluster: TestCluster; out: string }> {
    const [cluster, out] = await Promise.all([startCluster({ settings }), makeTempRoot(tempPrefix)]);
    this.cluster = cluster;
    this.out = out;
    return { cluster, out };
  }

  async cleanup(): Promise<void> {
    await this.cluster?.destroy().catch(() => undefined);
    if (this.out) await rm(this.out, { recursive: true, force: true });
  }
}

const MB = 1024 * 1024;

// The data set both export benchmarks dump and restore: orders and events of about `sizeMb`.
/** Rows per MB of database, measured on this schema (heap + indexes); refined after a first batch. */
export async function loadOrdersAndEvents(cluster: TestCluster, sizeMb: number): Promise<number> {
  await cluster.query('create database bench');
  const url = cluster.urlFor('bench');
  return withClient(url, async (c) => {
    await c.query(`create table orders (id bigint not null, customer_id int not null, status text not null, total numeric(12,2), note text, created_at timestamptz)`);
    await c.query(`create table events (id bigint not null, kind text not null, payload jsonb not null)`);
    const insertOrders = (from: number, to: number) =>
      c.query(`insert into orders select g, ((g * 7919) % 100000)::int, (array['new','paid','shipped','delivered','cancelled'])[1 + g % 5],
                 ((g * 37) % 1000000) / 100.0, case when g % 10 = 0 then null else 'note ' || md5(g::text) end,
                 timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds'
               from generate_series(${from}::int8, ${to}::int8) g`);
    const insertEvents = (from: number, to: number) =>
      c.query(`insert into events select g, (array['click','view','buy','login'])[1 + g % 4],
                 jsonb_build_object('user', g % 50000, 'path', '/p/' || (g % 997), 'ms', (g * 13) % 5000, 'tag', md5((g * 3)::text))
               from generate_series(${from}::int8, ${to}::int8) g`);
    // A first slice to measure bytes per row, then the rest in one go.
    const probe = 100_000;
    await insertOrders(1, probe);
    await insertEvents(1, Math.round(probe / 3));
    const probeBytes = Number((await c.query(`select pg_total_relation_size('orders') + pg_total_relation_size('events') as b`)).rows[0].b);
    // Indexes add roughly 45% on top of the heap for this schema.
    const perOrder = (probeBytes * 1.45) / probe;
    const orders = Math.max(probe, Math.round((sizeMb * MB) / perOrder));
    await insertOrders(probe + 1, orders);
    await insertEvents(Math.round(probe / 3) + 1, Math.round(orders / 3));
    await c.query('alter table orders add primary key (id)');
    await c.query('create index orders_customer_id_idx on orders (customer_id)');
    await c.query('create index orders_created_at_idx on orders (created_at)');
    await c.query('alter table events add primary key (id)');
    await c.query('vacuum (analyze)');
    await c.query('checkpoint');
    return Number((await c.query(`select pg_database_size('bench') as b`)).rows[0].b);
  });
}

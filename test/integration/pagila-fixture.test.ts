import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { tableChecksums } from '../support/checksums.js';
import { loadPagila, PAGILA_PAYMENT_PARTITIONS, PAGILA_TABLES } from '../support/pagila.js';

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

describe('pagila fixture', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster();
    for (const db of ['pagila_a', 'pagila_b']) {
      await cluster.query(`create database ${db}`);
      // A different session TimeZone for each load: the data must not depend on it.
      await withClient(cluster.urlFor(db), async (client) => {
        await client.query(db === 'pagila_a' ? `set TimeZone = 'UTC'` : `set TimeZone = 'America/New_York'`);
        await loadPagila(client);
      });
    }
  });
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('loads the same rows twice: identical per-table checksums', async () => {
    const a = await tableChecksums(cluster.urlFor('pagila_a'));
    const b = await tableChecksums(cluster.urlFor('pagila_b'));
    expect(Object.keys(a).sort()).toEqual([...PAGILA_TABLES].sort());
    expect(b).toEqual(a);
    const rowCounts = Object.fromEntries(Object.entries(a).map(([table, checksum]) => [table.replace('public.', ''), Number(checksum.split(':')[0])]));
    // Pinned so a change to data.sql that moves the counts is a visible decision, not an accident.
    expect(rowCounts).toEqual({
      actor: 200, address: 604, category: 16, city: 600, country: 32, customer: 600, film: 1000, film_actor: 5000,
      film_category: 1000, inventory: 4000, language: 6, payment: 16872, rental: 16000, staff: 2, store: 2,
    });
  });

  it('puts payments in every monthly partition and keeps customer and rental non-empty', async () => {
    await withClient(cluster.urlFor('pagila_a'), async (client) => {
      const { rows: partitions } = await client.query<{ t: string }>(
        `select c.oid::regclass::text as t from pg_inherits i join pg_class c on c.oid = i.inhrelid
          where i.inhparent = 'public.payment'::regclass order by 1`,
      );
      expect(partitions.map((p) => (p.t.startsWith('public.') ? p.t : `public.${p.t}`))).toEqual(PAGILA_PAYMENT_PARTITIONS);
      expect(PAGILA_PAYMENT_PARTITIONS).toHaveLength(55);
      for (const table of [...PAGILA_PAYMENT_PARTITIONS, 'public.customer', 'public.rental']) {
        const { rows } = await client.query<{ n: number }>(`select count(*)::int as n from ${table}`);
        expect(rows[0]!.n, table).toBeGreaterThan(0);
      }
    });
  });

  it('keeps references valid where the schema does not enforce them and fills the trigger-made fulltext', async () => {
    await withClient(cluster.urlFor('pagila_b'), async (client) => {
      const { rows } = await client.query<{ orphans: number; empty_fulltext: number; search_path: string }>(
        `select (select count(*)::int from public.payment p
                  where not exists (select from public.rental r where r.rental_id = p.rental_id and r.customer_id = p.customer_id and r.staff_id = p.staff_id))
                + (select count(*)::int from public.rental r where not exists (select from public.customer c where c.customer_id = r.customer_id)) as orphans,
                (select count(*)::int from public.film where fulltext = ''::tsvector) as empty_fulltext,
                current_setting('search_path') as search_path`,
      );
      expect(rows[0]).toEqual({ orphans: 0, empty_fulltext: 0, search_path: '"$user", public' });
    });
  });

  it('leaves the loading session as it found it', async () => {
    await cluster.query('create database pagila_small');
    await withClient(cluster.urlFor('pagila_small'), async (client) => {
      await client.query(`set TimeZone = 'Asia/Tokyo'`);
      await loadPagila(client, { scale: 0.05 });
      const { rows } = await client.query(
        `select current_setting('search_path') as search_path, current_setting('client_min_messages') as client_min_messages,
                current_setting('check_function_bodies') as check_function_bodies, current_setting('TimeZone') as tz,
                (select count(*)::int from customer) as customers, (select count(*)::int from rental) as rentals`,
      );
      expect(rows[0]).toEqual({
        search_path: '"$user", public',
        client_min_messages: 'notice',
        check_function_bodies: 'on',
        tz: 'Asia/Tokyo',
        customers: 30,
        rentals: 800,
      });
    });
  });
});

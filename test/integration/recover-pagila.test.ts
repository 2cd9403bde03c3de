import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import pg from 'pg';
import { makeTempRoot, startCluster, type TestCluster } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';
import { tableChecksums } from '../support/checksums.js';
import { copyDatabase, sql } from '../support/databases.js';
import { loadPagila } from '../support/pagila.js';

/**
 * Recovery on pagila, a public sample schema nobody on the project wrote: payments partitioned by
 * month with foreign keys declared on (some of) the partitions only, `last_updated` BEFORE UPDATE
 * triggers on most tables, enums, domains, composite keys. Checked against expected databases
 * built by hand from the same base.
 */
describe('recover on pagila', () => {
  let cluster: TestCluster;
  let work: string;
  let seq = 0;
  /** A customer whose payments fall in the partitions that declare foreign keys. */
  let customer: number;

  beforeAll(async () => {
    cluster = await startCluster();
    work = await makeTempRoot('pitr-pagila-');
    await cluster.query('create database pagila');
    const client = new pg.Client({ connectionString: cluster.urlFor('pagila') });
    await client.connect();
    try {
      await loadPagila(client);
      await client.query('analyze');
    } finally {
      await client.end();
    }
    const rows = await sql(
      cluster.urlFor('pagila'),
      `select customer_id from payment where tableoid = 'payment_p2022_02'::regclass group by customer_id
        having count(*) >= 2 order by customer_id limit 1`,
    );
    customer = Number(rows[0]!.customer_id);
  });

  afterAll(async () => {
    await cluster?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function scenario(incident: string, later: string) {
    const name = `p${++seq}`;
    const prodUrl = await copyDatabase(cluster, 'pagila', `${name}_prod`);
    const branchUrl = await copyDatabase(cluster, 'pagila', `${name}_branch`);
    const expectedUrl = await copyDatabase(cluster, 'pagila', `${name}_expected`);
    await sql(prodUrl, incident);
    await sql(prodUrl, later);
    await sql(expectedUrl, later);
    const env = { DATABASE_URL: prodUrl, PITR_WORK_DIR: `${work}/${name}` };
    return { prodUrl, branchUrl, expectedUrl, env, recover: (...args: string[]) => runPitr(['recover', ...args, '--branch', branchUrl, '--json'], env) };
  }

  // Life goes on after the incident: a new rental and its payment for another customer.
  const later = `insert into rental(rental_id, rental_date, inventory_id, customer_id, return_date, staff_id, last_update)
                   values (900001, '2026-07-10 10:00:00+00', 1, 3, null, 1, '2026-07-10 10:00:00+00');
                 insert into payment(payment_id, customer_id, staff_id, rental_id, amount, payment_date)
                   values (900001, 3, 1, 900001, 4.99, '2026-07-10 10:05:00+00')`;

  it('a customer deleted with their rentals and payments: put back across the partitions, later writes kept', async () => {
    const s = await scenario(
      `delete from payment where customer_id = ${customer}; delete from rental where customer_id = ${customer}; delete from customer where customer_id = ${customer}`,
      later,
    );
    // Recovering only the customer: the plan names the rentals and the payments (per partition) it would leave missing.
    const partial = await s.recover('customer', '--where', `customer_id = ${customer}`, '--triggers', 'skip', '--dry-run');
    expect(partial.code, partial.stderr).toBe(0);
    const gaps = partial.json.plan.incomplete as { table: string; partition: string | null; rows: number }[];
    const rentals = Number((await sql(s.branchUrl, `select count(*) as n from rental where customer_id = ${customer}`))[0]!.n);
    expect(gaps.find((g) => g.table === 'public.rental')?.rows).toBe(rentals);
    expect(gaps.some((g) => g.table === 'public.payment' && g.partition === 'public.payment_p2022_02')).toBe(true);

    const before = await tableChecksums(s.prodUrl);
    const started = Date.now();
    const r = await s.recover('customer', 'payment', '--where', `customer_id = ${customer}`, '--cascade', '--triggers', 'skip', '--yes');
    const seconds = (Date.now() - started) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.plan.incomplete).toEqual([]);
    expect(r.json.plan.tables.map((t: { table: string }) => t.table)).toEqual(['public.customer', 'public.rental', 'public.payment']);
    expect(await tableChecksums(s.prodUrl)).toEqual(await tableChecksums(s.expectedUrl));
    process.stdout.write(`pagila cascading recovery: ${r.json.totals.inserted} rows in ${seconds.toFixed(2)} s (CLI wall time)\n`);
    const undo = await runPitr(['undo', r.json.runId, '--yes', '--json'], s.env);
    expect(undo.code, undo.stderr).toBe(0);
    expect(await tableChecksums(s.prodUrl)).toEqual(before);
  });

  it('a bad UPDATE of customers with a last_updated trigger: restored exactly with --triggers skip', async () => {
    const s = await scenario(`update customer set email = null, activebool = false where store_id = 1`, later);
    const before = await tableChecksums(s.prodUrl);
    const started = Date.now();
    const r = await s.recover('customer', '--mode', 'changed', '--where', 'store_id = 1', '--triggers', 'skip', '--yes');
    const seconds = (Date.now() - started) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.plan.triggers.map((t: { name: string }) => t.name)).toEqual(['last_updated']);
    expect(r.json.totals.updated).toBeGreaterThan(100);
    expect(await tableChecksums(s.prodUrl)).toEqual(await tableChecksums(s.expectedUrl));
    process.stdout.write(`pagila corruption recovery: ${r.json.totals.updated} rows in ${seconds.toFixed(2)} s (CLI wall time)\n`);
    const undo = await runPitr(['undo', r.json.runId, '--yes', '--json'], s.env);
    expect(undo.code, undo.stderr).toBe(0);
    expect(await tableChecksums(s.prodUrl)).toEqual(before);
  });
});

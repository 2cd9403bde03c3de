import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { switchWalAndWait } from '../../src/providers/local/production.js';
import { startCluster, type TestCluster } from '../support/cluster.js';

/**
 * pitr switches WAL on production before every branch and snapshot, and waits for the archiver to
 * report the segment holding everything written before the switch. When nothing was written since
 * the previous switch, PostgreSQL 17 names the switch position as the next (empty) segment, which
 * is never archived: the wait must ask for the one before it, on every version.
 */
describe('the WAL switch waits for the right segment', () => {
  let prod: TestCluster;
  let client: pg.Client;
  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    client = new pg.Client({ connectionString: prod.url });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await prod?.destroy();
  });

  it('after writes, and again with nothing written in between', async () => {
    await client.query('create table t (x int); insert into t values (1)');
    const first = await switchWalAndWait(client, 20_000);
    expect(first.archived).toBe(true);
    const again = await switchWalAndWait(client, 5_000);
    expect(again).toMatchObject({ archived: true, segment: first.segment });
    await client.query('insert into t values (2)');
    const later = await switchWalAndWait(client, 20_000);
    expect(later.archived).toBe(true);
    expect(later.segment > first.segment).toBe(true);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { startWsProxy, type WsProxy } from '../support/ws-proxy.js';
import { connect, useDriver } from '../../src/db/connect.js';
import { applyRecovery, planRecovery } from '../../src/recover/engine.js';
import { RunStore } from '../../src/recover/runs.js';
import { undoRecovery } from '../../src/recover/undo.js';
import pg from 'pg';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('--driver ws (Neon serverless driver over a WebSocket)', () => {
  let cluster: TestCluster;
  let proxy: WsProxy;
  beforeAll(async () => {
    cluster = await startCluster();
    proxy = await startWsProxy();
  });
  afterAll(async () => {
    useDriver({ driver: 'pg' });
    await proxy?.close();
    await cluster?.destroy();
  });

  it('runs queries and transactions through the WebSocket proxy', async () => {
    useDriver({ driver: 'ws', wsProxy: proxy.template });
    const before = proxy.connections;
    const client = await connect(cluster.url);
    try {
      await client.query('create table public.w(id int primary key, t text)');
      await client.query('begin');
      await client.query('insert into public.w values ($1, $2), ($3, $4)', [1, 'a\tb', 2, 'ü']);
      await client.query('commit');
      const { rows } = await client.query('select * from public.w order by id');
      expect(rows).toEqual([
        { id: 1, t: 'a\tb' },
        { id: 2, t: 'ü' },
      ]);
    } finally {
      await client.end();
    }
    expect(proxy.connections).toBe(before + 1);
  });

  it('recover and undo work over the WebSocket driver (no COPY: cursor batches as JSON)', async () => {
    useDriver({ driver: 'pg' });
    await cluster.query('create database wsb');
    await cluster.query('create database wsp');
    const ddl = `create table t(id int primary key, f float8, n numeric, b bytea, a int[], j jsonb, ts timestamptz, txt text);
                 insert into t select g, case g % 3 when 0 then 'NaN' when 1 then '-0' else g / 7.0 end, g * 1.000001, decode(md5(g::text), 'hex'),
                   array[g, null], jsonb_build_object('g', g), '2026-01-01'::timestamptz + g * interval '1 s', E'tab\there ' || g
                 from generate_series(1, 12000) g`;
    for (const db of ['wsb', 'wsp']) {
      const c = new pg.Client({ connectionString: cluster.urlFor(db) });
      await c.connect();
      await c.query(ddl);
      if (db === 'wsp') await c.query('delete from t where id % 2 = 0; update t set txt = null where id = 1');
      await c.end();
    }
    const { tableChecksums } = await import('../support/checksums.js');
    const before = await tableChecksums(cluster.urlFor('wsp'));
    useDriver({ driver: 'ws', wsProxy: proxy.template });
    const work = await mkdtemp(join(tmpdir(), 'pitr-ws-runs-'));
    try {
      const store = new RunStore(work);
      const run = await store.create('recover');
      const req = { branchUrl: cluster.urlFor('wsb'), productionUrl: cluster.urlFor('wsp'), tables: ['t'], mode: 'all' as const, cascade: false, deleteExtra: false };
      const plan = await planRecovery(req, store, run);
      expect(plan.totals).toMatchObject({ insert: 6000, update: 1 });
      const result = await applyRecovery(req, plan, store, run);
      expect(result.totals).toMatchObject({ inserted: 6000, updated: 1, conflicts: 0 });
      useDriver({ driver: 'pg' });
      expect(await tableChecksums(cluster.urlFor('wsp'))).toEqual(await tableChecksums(cluster.urlFor('wsb')));
      useDriver({ driver: 'ws', wsProxy: proxy.template });
      const undo = await undoRecovery(cluster.urlFor('wsp'), store, await store.read(run.id), await store.create('undo'), { dryRun: false });
      expect(undo.totals).toMatchObject({ remove: 6000, restore: 1, conflicts: 0 });
      useDriver({ driver: 'pg' });
      expect(await tableChecksums(cluster.urlFor('wsp'))).toEqual(before);
    } finally {
      useDriver({ driver: 'pg' });
      await rm(work, { recursive: true, force: true });
    }
  });

  it('maps a refused connection to a one-line error', async () => {
    useDriver({ driver: 'ws', wsProxy: proxy.template });
    const err = await connect('postgresql://postgres@127.0.0.1:9/postgres', { timeoutMs: 2000 }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^cannot connect to 127\.0\.0\.1:9\/postgres: /);
  });
});

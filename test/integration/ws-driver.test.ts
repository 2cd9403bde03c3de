import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { startWsProxy, type WsProxy } from '../support/ws-proxy.js';
import { connect, useDriver } from '../../src/db/connect.js';

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
      await client.query('create table w(id int primary key, t text)');
      await client.query('begin');
      await client.query('insert into w values ($1, $2), ($3, $4)', [1, 'a\tb', 2, 'ü']);
      await client.query('commit');
      const { rows } = await client.query('select * from w order by id');
      expect(rows).toEqual([
        { id: 1, t: 'a\tb' },
        { id: 2, t: 'ü' },
      ]);
    } finally {
      await client.end();
    }
    expect(proxy.connections).toBe(before + 1);
  });

  it('maps a refused connection to a one-line error', async () => {
    useDriver({ driver: 'ws', wsProxy: proxy.template });
    const err = await connect('postgresql://postgres@127.0.0.1:9/postgres', { timeoutMs: 2000 }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^cannot connect to 127\.0\.0\.1:9\/postgres: /);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { startCluster, switchAndArchiveWal, type TestCluster } from '../support/cluster.js';
import { processAlive, serverPid } from '../../src/system/postgres-server.js';

describe('test harness', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ archive: true });
  });
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('starts a real server on a loopback port that answers queries', async () => {
    const [row] = await cluster.query<{ v: string }>('select current_setting($1) as v', ['listen_addresses']);
    expect(row?.v).toBe('127.0.0.1');
    expect(cluster.url).toMatch(/^postgresql:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
  });

  it('archives WAL into its own directory', async () => {
    await cluster.query('create table t(id int primary key)');
    const wal = await switchAndArchiveWal(cluster);
    expect(existsSync(`${cluster.archiveDir}/${wal}`)).toBe(true);
  });

  it('destroy() stops the server and removes every file', async () => {
    const other = await startCluster();
    const pid = await serverPid(other.dataDir);
    expect(pid).toBeGreaterThan(0);
    await other.destroy();
    expect(existsSync(other.root)).toBe(false);
    expect(await processAlive(pid!)).toBe(false);
  });
});

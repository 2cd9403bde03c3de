import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempRoot, startCluster, type TestCluster, localEnv } from '../support/cluster.js';
import { CLI, processesUsing, runPitr } from '../support/cli.js';

/** Starts `pitr --at` and sends `signal` as soon as stderr shows `when`. */
function interruptAt(args: string[], env: Record<string, string>, when: RegExp, signal: NodeJS.Signals) {
  return new Promise<{ code: number | null; stderr: string; signalled: boolean }>((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let signalled = false;
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (!signalled && when.test(stderr)) {
        signalled = true;
        child.kill(signal);
      }
    });
    child.stdout.resume();
    child.on('close', (code) => resolve({ code, stderr, signalled }));
  });
}

describe('interrupting pitr --at', () => {
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  const branchDirs = async () => readdir(join(work, 'pitr', 'branches')).catch(() => [] as string[]);

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-work-');
    env = localEnv(prod, work);
    await prod.query(`create table t(id int primary key); insert into t select generate_series(1, 50000)`);
    expect((await runPitr(['backup'], env)).code).toBe(0);
    await prod.query(`insert into t select generate_series(50001, 100000)`);
  });

  afterAll(async () => {
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('Ctrl-C while waiting for the archiver stops at once and creates nothing', async () => {
    await prod.query(`alter system set archive_command = 'false'`);
    await prod.query(`select pg_reload_conf()`);
    try {
      const started = Date.now();
      const r = await interruptAt(['--at', 'now'], { ...env, PITR_ARCHIVE_WAIT: '60s' }, /switching WAL/, 'SIGINT');
      expect(r.signalled, r.stderr).toBe(true);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('pitr: error: interrupted');
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(await branchDirs()).toEqual([]);
      expect(await processesUsing(join(work, 'pitr'))).toEqual([]);
    } finally {
      await prod.query(`alter system reset archive_command`);
      await prod.query(`select pg_reload_conf()`);
    }
  });

  it('SIGTERM during the restore cleans up the half-restored instance', async () => {
    // Every archived segment takes 3 s to fetch, so the signal always lands while WAL is replayed.
    const slowArchive = { ...env, PITR_WAL_ARCHIVE: '', PITR_RESTORE_COMMAND: `sleep 3; cp ${prod.archiveDir}/%f %p` };
    const r = await interruptAt(['--at', 'now'], slowArchive, /replaying WAL/, 'SIGTERM');
    expect(r.signalled, r.stderr).toBe(true);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('interrupted');
    expect((await runPitr(['branches', '--json'], env)).json.branches).toEqual([]);
    expect(await branchDirs()).toEqual([]);
    expect(await processesUsing(join(work, 'pitr'))).toEqual([]);
  });

  it('kill -9 mid-restore leaves leftovers that branches prune removes, server included', async () => {
    const r = await interruptAt(['--at', 'now'], env, /replaying WAL/, 'SIGKILL');
    expect(r.signalled, r.stderr).toBe(true);
    const prune = await runPitr(['branches', 'prune', '--json'], env);
    expect(prune.code, prune.stderr).toBe(0);
    const list = (await runPitr(['branches', '--json'], env)).json.branches;
    for (const b of list) await runPitr(['branches', 'delete', b.id], env);
    expect(prune.json.abandonedRemoved.length + list.length).toBe(1);
    expect(await branchDirs()).toEqual([]);
    expect(await processesUsing(join(work, 'pitr'))).toEqual([]);
  });
});

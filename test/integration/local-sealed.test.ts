import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { localEnv, makeTempRoot, startCluster, type TestCluster } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';
import { findPostgresBinaries } from '../../src/system/postgres-binaries.js';
import { stopServer } from '../../src/system/postgres-server.js';

async function rows(url: string, sql: string): Promise<Record<string, unknown>[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end();
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Finding 6 of the safety review (issue 13): a local recovery instance is a copy of production
 * and must not act like it: its logical replication subscriptions never run (they would consume
 * the publisher's changes and take production's slot), and pitr proves the server on a branch's
 * port is that branch before sending it production's credentials.
 */
describe('local recovery instances are sealed off from the world', () => {
  let publisher: TestCluster;
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  let branch: { id: string; name: string; connectionUrl: string; details: { port: number; dataDir: string } };
  let rogue: ChildProcess | undefined;

  beforeAll(async () => {
    publisher = await startCluster({ settings: { wal_level: 'logical' } });
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-sealed-');
    env = localEnv(prod, work);
    await publisher.query('create table public.src(id int primary key); insert into public.src select generate_series(1, 100); create publication pub for table public.src');
    await prod.query('create table public.src(id int primary key)');
    await prod.query(`create subscription sub connection 'host=127.0.0.1 port=${publisher.port} user=postgres dbname=postgres' publication pub`);
    await waitFor('the initial copy on production', async () => Number((await prod.query<{ n: string }>('select count(*) as n from public.src'))[0]!.n) === 100);
    expect((await runPitr(['backup'], env)).code).toBe(0);
    const t1 = (await prod.query<{ now: string }>('select now()::text as now'))[0]!.now;
    await new Promise((r) => setTimeout(r, 20));
    await prod.query('create table public.after_t1(x int); select pg_switch_wal()');
    const r = await runPitr(['--at', t1, '--json', '--show-password'], env);
    expect(r.code, r.stderr).toBe(0);
    branch = r.json;
  });

  afterAll(async () => {
    rogue?.kill('SIGKILL');
    const list = await runPitr(['branches', 'list', '--json'], env);
    for (const b of list.json?.branches ?? []) await runPitr(['branches', 'delete', b.id], env);
    await prod?.query('alter subscription sub disable').catch(() => undefined);
    await prod?.query('alter subscription sub set (slot_name = none)').catch(() => undefined);
    await prod?.query('drop subscription sub').catch(() => undefined);
    await prod?.destroy();
    await publisher?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('finding 6: a subscription on production does not run on the branch; production keeps receiving', async () => {
    await publisher.query('insert into public.src select generate_series(101, 150)');
    await waitFor('production to receive the new rows', async () => Number((await prod.query<{ n: string }>('select count(*) as n from public.src'))[0]!.n) === 150);
    // Give a (wrongly) running apply worker on the branch every chance to catch up too.
    await new Promise((r) => setTimeout(r, 1500));
    const onBranch = await rows(branch.connectionUrl, 'select count(*)::int as n from public.src');
    expect(onBranch[0]!.n).toBe(100);
    const workers = await rows(branch.connectionUrl, 'select count(*)::int as n from pg_stat_subscription where pid is not null');
    expect(workers[0]!.n).toBe(0);
    const settings = await rows(branch.connectionUrl, `select name, setting from pg_settings where name in ('max_logical_replication_workers', 'archive_cleanup_command', 'recovery_end_command', 'listen_addresses') order by name`);
    expect(settings).toEqual([
      { name: 'archive_cleanup_command', setting: '' },
      { name: 'listen_addresses', setting: '127.0.0.1' },
      { name: 'max_logical_replication_workers', setting: '0' },
      { name: 'recovery_end_command', setting: '' },
    ]);
  });

  it('finding 6: preview lists the subscription that is disabled on the branch', async () => {
    const r = await runPitr(['preview', branch.name, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.sealedOff).toEqual({ subscriptions: ['sub'], cronJobs: [] });
    const human = await runPitr(['preview', branch.name], env);
    expect(human.stdout).toMatch(/Disabled on the branch[\s\S]*subscription sub/);
  });

  it('finding 6: a process that takes a stopped branch\'s port never gets a connection (or production\'s password)', async () => {
    const { port, dataDir } = branch.details;
    const bin = await findPostgresBinaries();
    const pidFile = await readFile(join(dataDir, 'postmaster.pid'), 'utf8');
    await stopServer(bin, dataDir, 'fast');
    // The impostor listens on the branch's port and counts every connection it gets.
    rogue = spawn(process.execPath, ['-e', `let n=0;require('net').createServer(s=>{n++;console.log('conn',n);s.destroy()}).listen(${port},'127.0.0.1',()=>console.log('ready'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    rogue.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the impostor to listen', async () => out.includes('ready'));
    // Stopped branch: no live postmaster.pid.
    const stopped = await runPitr(['diff', 'public.src', '--branch', branch.name], env);
    expect(stopped.code).not.toBe(0);
    expect(stopped.stderr).toMatch(/not running/);
    // A postmaster.pid naming a live process (not the one holding the port) and the right port.
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    const lines = pidFile.split('\n');
    lines[0] = String(sleeper.pid);
    await writeFile(join(dataDir, 'postmaster.pid'), lines.join('\n'));
    const impostor = await runPitr(['diff', 'public.src', '--branch', branch.name], env);
    sleeper.kill('SIGKILL');
    await rm(join(dataDir, 'postmaster.pid'), { force: true });
    expect(impostor.code).not.toBe(0);
    expect(impostor.stderr).toMatch(/not held by recovery branch/);
    expect(out).not.toContain('conn');
  });
});

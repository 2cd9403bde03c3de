import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { makeTempRoot, startCluster, type TestCluster, localEnv } from '../support/cluster.js';
import { CLI, runPitr } from '../support/cli.js';
import { tableChecksums } from '../support/checksums.js';
import { copyDatabase, sql } from '../support/databases.js';
import { mulberry32 } from '../support/random.js';
import { readFile } from 'node:fs/promises';

/** Kill times are drawn from a seeded generator: PITR_KILL_SEED=<seed> replays a run's draws. */
const SEED = Number(process.env.PITR_KILL_SEED ?? Date.now() % 1_000_000);
const draw = mulberry32(SEED);

/** kill -9 of the CLI at random moments: production is always exactly as before, or exactly as after. */
describe('pitr recover survives kill -9', () => {
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  let before: Record<string, string>;
  let after: Record<string, string>;
  /** How long an uninterrupted run takes here: kills are drawn inside it. */
  let fullMs = 2000;
  const args = ['recover', 'items', '--where', 'id <= 40000', '--cascade', '--yes', '--json'];

  function killedRun(delayMs: number): Promise<{ code: number | null; signal: string | null }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: 'ignore' });
      const timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    });
  }

  async function lastRecoverRun(): Promise<{ id: string; status: string } | undefined> {
    const runs = (await runPitr(['runs', '--json'], env)).json.runs as { id: string; kind: string; status: string }[];
    return runs.filter((r) => r.kind === 'recover').at(-1);
  }

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-kill-');
    env = localEnv(prod, work);
    await prod.query(`
      create table items(id bigint primary key, payload text, n int);
      create table parts(id bigint primary key, item_id bigint not null references items on delete cascade, label text);
      create index on parts (item_id);
      insert into items select g, repeat('x', 50) || g, g % 97 from generate_series(1, 60000) g;
      insert into parts select g, 1 + g % 60000, 'part ' || g from generate_series(1, 60000) g;
      analyze;`);
    expect((await runPitr(['backup'], env)).code).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    const t1 = (await prod.query<{ now: string }>('select now()::text as now'))[0]!.now;
    await new Promise((r) => setTimeout(r, 20));
    await prod.query(`delete from items where id <= 40000`);
    await prod.query(`insert into items values (100001, 'after', 1)`);
    const branch = await runPitr(['--at', t1, '--name', 'kill-test'], env);
    expect(branch.code, branch.stderr).toBe(0);
    before = await tableChecksums(prod.url);
    const fullStarted = Date.now();
    const full = await runPitr(args, env);
    fullMs = Date.now() - fullStarted;
    expect(full.code, full.stderr).toBe(0);
    expect(full.json.totals.inserted).toBe(80000);
    after = await tableChecksums(prod.url);
    expect((await runPitr(['undo', full.json.runId, '--yes'], env)).code).toBe(0);
    expect(await tableChecksums(prod.url)).toEqual(before);
  });

  afterAll(async () => {
    await runPitr(['branches', 'delete', 'kill-test'], env);
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('12 random kills: every time, all tables equal either the state before or the state after', async () => {
    const outcomes: string[] = [];
    // Drawn over the length of a whole run: start-up, staging, planning, writing and commit.
    for (let trial = 0; trial < 12; trial++) {
      const delay = 200 + Math.floor(draw() * Math.max(200, fullMs - 200));
      const { signal } = await killedRun(delay);
      const now = await tableChecksums(prod.url);
      const state = JSON.stringify(now) === JSON.stringify(before) ? 'before' : JSON.stringify(now) === JSON.stringify(after) ? 'after' : 'MIXED';
      outcomes.push(`${delay}ms:${signal ?? 'exited'}:${state}`);
      expect(state, outcomes.join(' ')).not.toBe('MIXED');
      if (state === 'after') {
        const last = await lastRecoverRun();
        const undo = await runPitr(['undo', last!.id, '--yes'], env);
        expect(undo.code, undo.stderr).toBe(0);
        expect(await tableChecksums(prod.url)).toEqual(before);
      } else {
        // An interrupted run is settled as failed: production says its transaction never committed.
        const last = await lastRecoverRun();
        const show = await runPitr(['undo', last!.id, '--dry-run'], env);
        expect(show.code).toBe(2);
      }
    }
    process.stdout.write(`kill -9 outcomes (PITR_KILL_SEED=${SEED}): ${outcomes.join(', ')}\n`);
  });
});

/** The same on the trigger, keyless and --delete-extra paths, on copies of one database. */
describe('pitr recover survives kill -9 on the trigger, keyless and --delete-extra paths', () => {
  let cluster: TestCluster;
  let work: string;

  beforeAll(async () => {
    cluster = await startCluster();
    work = await makeTempRoot('pitr-kill2-');
    await cluster.query('create database base');
    await sql(cluster.urlFor('base'), await readFile(new URL('../fixtures/schemas/classes.sql', import.meta.url), 'utf8'));
    // Enough rows that a run lasts long enough to be killed in its middle.
    await sql(cluster.urlFor('base'), `insert into log_lines select 'k' || (g % 3), g % 50, 'line ' || (g % 100) from generate_series(1, 60000) g;
                                       insert into accounts(id, name) select g, 'account ' || g from generate_series(1000, 30000) g; analyze`);
  });

  afterAll(async () => {
    await cluster?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const cases: { name: string; incident: string; args: string[] }[] = [
    { name: 'trigger', incident: `update accounts set name = 'oops' where id % 3 = 0`, args: ['accounts', '--mode', 'changed', '--triggers', 'skip'] },
    { name: 'keyless', incident: `delete from log_lines where kind = 'k1'; insert into log_lines select * from log_lines where kind = 'k0' and account_id < 5`, args: ['log_lines', '--where', "kind in ('k0', 'k1')", '--delete-extra'] },
    { name: 'delete_extra', incident: `insert into accounts(id, name) select g, 'bad ' || g from generate_series(40000, 55000) g`, args: ['accounts', '--where', 'id >= 40000', '--delete-extra', '--triggers', 'skip'] },
  ];

  for (const c of cases) {
    it(`${c.name}: 4 random kills, each leaving production exactly before or after`, async () => {
      const prodUrl = await copyDatabase(cluster, 'base', `${c.name}_prod`);
      const branchUrl = await copyDatabase(cluster, 'base', `${c.name}_branch`);
      await sql(prodUrl, c.incident);
      const env = { DATABASE_URL: prodUrl, PITR_WORK_DIR: `${work}/${c.name}` };
      const args = ['recover', ...c.args, '--branch', branchUrl, '--yes', '--json'];
      const before = await tableChecksums(prodUrl);
      const started = Date.now();
      const full = await runPitr(args, env);
      const ms = Date.now() - started;
      expect(full.code, full.stderr).toBe(0);
      const after = await tableChecksums(prodUrl);
      expect(after).not.toEqual(before);
      expect((await runPitr(['undo', full.json.runId, '--yes'], env)).code).toBe(0);
      expect(await tableChecksums(prodUrl)).toEqual(before);
      const outcomes: string[] = [];
      for (let trial = 0; trial < 4; trial++) {
        const delay = 150 + Math.floor(draw() * Math.max(200, ms - 150));
        const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: 'ignore' });
        const timer = setTimeout(() => child.kill('SIGKILL'), delay);
        const signal = await new Promise<string | null>((resolve) => child.on('close', (_code, sig) => resolve(sig)));
        clearTimeout(timer);
        const now = await tableChecksums(prodUrl);
        const state = JSON.stringify(now) === JSON.stringify(before) ? 'before' : JSON.stringify(now) === JSON.stringify(after) ? 'after' : 'MIXED';
        outcomes.push(`${delay}ms:${signal ?? 'exited'}:${state}`);
        expect(state, `PITR_KILL_SEED=${SEED} ${outcomes.join(' ')}`).not.toBe('MIXED');
        const runs = (await runPitr(['runs', '--json'], env)).json.runs as { id: string; kind: string; status: string }[];
        const last = runs.filter((r) => r.kind === 'recover').at(-1)!;
        // The recorded state agrees with production: applied exactly when the rows are there.
        expect(last.status === 'applied', `${last.id} ${last.status} ${state}`).toBe(state === 'after');
        if (state === 'after') {
          expect((await runPitr(['undo', last.id, '--yes'], env)).code).toBe(0);
          expect(await tableChecksums(prodUrl)).toEqual(before);
        }
      }
      process.stdout.write(`kill -9 ${c.name} (PITR_KILL_SEED=${SEED}): ${outcomes.join(', ')}\n`);
    });
  }
});

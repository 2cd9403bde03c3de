import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, rm } from 'node:fs/promises';
import { makeTempRoot, startCluster, type TestCluster } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';
import { tableChecksums } from '../support/checksums.js';
import { copyDatabase, sql } from '../support/databases.js';
import { startCuttingProxy, type CuttingProxy } from '../support/cutting-proxy.js';

/**
 * The run state never lies: a recovery whose connection drops while COMMIT is acknowledged is
 * recorded `applied` (production says so) or `unknown` (production could not be asked), never
 * `failed`; `pitr runs` settles it, and `pitr undo` reverses it.
 */
describe('recover run state when the connection drops during COMMIT', () => {
  let cluster: TestCluster;
  let proxy: CuttingProxy;
  let work: string;
  let seq = 0;

  beforeAll(async () => {
    cluster = await startCluster();
    proxy = await startCuttingProxy(cluster.port);
    work = await makeTempRoot('pitr-runstate-');
    await cluster.query('create database base');
    await sql(cluster.urlFor('base'), `create table items(id int primary key, v text); insert into items select g, 'v' || g from generate_series(1, 5000) g`);
  });

  afterAll(async () => {
    await proxy?.close();
    await cluster?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function scenario() {
    const name = `r${++seq}`;
    const prodUrl = await copyDatabase(cluster, 'base', `${name}_prod`);
    const branchUrl = await copyDatabase(cluster, 'base', `${name}_branch`);
    await sql(prodUrl, `delete from items where id % 10 = 0`);
    const viaProxy = prodUrl.replace(`:${cluster.port}/`, `:${proxy.port}/`);
    return { prodUrl, branchUrl, env: { DATABASE_URL: viaProxy, PITR_WORK_DIR: `${work}/${name}` } };
  }

  it('production answers afterwards: the run is applied, the command succeeds with a warning, undo works', async () => {
    const s = await scenario();
    const before = await tableChecksums(s.prodUrl);
    proxy.armCommitCut();
    const r = await runPitr(['recover', 'items', '--branch', s.branchUrl, '--yes', '--json'], s.env);
    expect(proxy.commitsCut).toBe(1);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.warnings.join(' ')).toContain('production confirms the recovery committed');
    expect(Number((await sql(s.prodUrl, 'select count(*) as n from items'))[0]!.n)).toBe(5000);
    const runs = await runPitr(['runs', '--json'], s.env);
    expect(runs.json.runs.find((x: { id: string }) => x.id === r.json.runId).status).toBe('applied');
    const undo = await runPitr(['undo', r.json.runId, '--yes'], s.env);
    expect(undo.code, undo.stderr).toBe(0);
    expect(await tableChecksums(s.prodUrl)).toEqual(before);
  });

  it('production unreachable afterwards: the run is unknown, never failed; pitr runs settles it as applied; undo works', async () => {
    const s = await scenario();
    const before = await tableChecksums(s.prodUrl);
    proxy.armCommitCut();
    const cutsBefore = proxy.commitsCut;
    // The settle after the cut cannot connect.
    const watcher = setInterval(() => {
      if (proxy.commitsCut > cutsBefore) proxy.accepting = false;
    }, 1);
    let r;
    try {
      r = await runPitr(['recover', 'items', '--branch', s.branchUrl, '--yes', '--json'], s.env);
    } finally {
      clearInterval(watcher);
      proxy.accepting = true;
    }
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('could not say whether run');
    const id = /whether run (\S+) committed/.exec(r.stderr)![1]!;
    const recorded = JSON.parse(await readFile(`${s.env.PITR_WORK_DIR}/runs/${id}/state.json`, 'utf8'));
    expect(recorded.status).toBe('unknown');
    const runs = await runPitr(['runs', '--json'], s.env);
    expect(runs.json.runs.find((x: { id: string }) => x.id === id).status).toBe('applied');
    expect(Number((await sql(s.prodUrl, 'select count(*) as n from items'))[0]!.n)).toBe(5000);
    const undo = await runPitr(['undo', id, '--yes'], s.env);
    expect(undo.code, undo.stderr).toBe(0);
    expect(await tableChecksums(s.prodUrl)).toEqual(before);
  });
});

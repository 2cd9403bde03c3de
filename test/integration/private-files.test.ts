import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';
import { RunStore } from '../../src/recover/runs.js';

/** Every file and directory under `dir` with its permission bits. */
async function modes(dir: string): Promise<{ path: string; dir: boolean; mode: number }[]> {
  const out: { path: string; dir: boolean; mode: number }[] = [];
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const s = await stat(path);
    out.push({ path, dir: s.isDirectory(), mode: s.mode & 0o777 });
    if (s.isDirectory()) out.push(...(await modes(path)));
  }
  return out;
}

/**
 * Finding 4 of the safety review (issue 13): run data holds production rows, so everything pitr
 * writes is private (umask 077), and run ids are random and never used as paths unchecked.
 */
describe('run data and reports are private; run ids are safe paths', () => {
  let cluster: TestCluster;
  let work: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    cluster = await startCluster();
    work = await mkdtemp(join(tmpdir(), 'pitr-private-'));
    env = { DATABASE_URL: cluster.urlFor('prod'), PITR_WORK_DIR: join(work, 'pitr') };
    for (const db of ['branch', 'prod']) {
      await cluster.query(`create database ${db}`);
    }
    const setup = async (db: string, sql: string) => {
      const pg = (await import('pg')).default;
      const c = new pg.Client({ connectionString: cluster.urlFor(db) });
      await c.connect();
      await c.query(sql);
      await c.end();
    };
    await setup('branch', 'create table t(id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 100) g');
    await setup('prod', 'create table t(id int primary key, v text); insert into t select g, md5(g::text) from generate_series(11, 100) g; update t set v = $$changed$$ where id = 50');
  });
  afterAll(async () => {
    await cluster?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('finding 4: every file in a run directory is 0600 and every directory 0700', async () => {
    const r = await runPitr(['recover', 'public.t', '--mode', 'all', '--branch', cluster.urlFor('branch'), '--yes', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const all = await modes(join(work, 'pitr'));
    expect(all.some((f) => f.path.endsWith('.before.copy') || f.path.endsWith('.applied.copy'))).toBe(true);
    expect(all.some((f) => f.path.endsWith('report.md'))).toBe(true);
    for (const f of all) expect({ path: f.path, mode: f.mode.toString(8) }).toEqual({ path: f.path, mode: f.dir ? '700' : '600' });
  });

  it('finding 4: a playbook report directory is private too', async () => {
    const file = join(work, 'check.yaml');
    await writeFile(file, 'name: check\nsteps:\n  - type: check\n    with: { on: production, sql: "select count(*) > 0 from public.t", expect: true }\n  - type: report\n    with: { title: checked }\n');
    const r = await runPitr(['playbook', 'run', file, '--yes', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const reports = (await modes(join(work, 'pitr', 'playbook-runs'))).filter((f) => !f.dir);
    expect(reports.length).toBeGreaterThanOrEqual(4); // the run's report and the report step's
    for (const f of await modes(join(work, 'pitr', 'playbook-runs'))) expect(f.mode.toString(8)).toBe(f.dir ? '700' : '600');
  });

  it('finding 4: pitr undo ../x is exit 2 before anything is read or written, even when ../x exists', async () => {
    // A directory the old code would have read as a run: <work>/pitr/x/state.json.
    await mkdir(join(work, 'pitr', 'x'), { recursive: true });
    await writeFile(join(work, 'pitr', 'x', 'state.json'), JSON.stringify({ id: '../x', kind: 'recover', status: 'applied', createdAt: '', updatedAt: '', txid: null }));
    for (const args of [['undo', '../x'], ['undo', '../../etc'], ['runs', 'show', '../x'], ['undo', 'run-20260101T000000Z-abcd/../../x']]) {
      const r = await runPitr([...args, '--yes'], env);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/is not a run id/);
    }
  });

  it('finding 4: run ids carry 64 random bits and two runs in the same second never share a directory', async () => {
    const store = new RunStore(join(work, 'ids'));
    const runs = await Promise.all(Array.from({ length: 50 }, () => store.create('recover')));
    expect(new Set(runs.map((r) => r.id)).size).toBe(50);
    for (const r of runs) expect(r.id).toMatch(/^run-\d{8}T\d{6}Z-[0-9a-f]{16}$/);
  });
});

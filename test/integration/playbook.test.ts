import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { makeTempRoot, startCluster, type TestCluster, localEnv } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';
import { tableChecksums } from '../support/checksums.js';

/** The accidental-deletion playbook end to end on real clusters (local provider). */
describe('pitr playbook run accidental-deletion', () => {
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  let t1: string;
  const count = async (sql: string) => Number((await prod.query<{ n: string }>(sql))[0]!.n);

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-playbook-');
    env = localEnv(prod, work);
    await prod.query(`
      create table authors(id int primary key, name text not null);
      create table books(id int primary key, author_id int not null references authors on delete cascade, title text);
      create table reviews(id int primary key, book_id int not null references books on delete cascade, stars int);
      insert into authors select g, 'a' || g from generate_series(1, 50) g;
      insert into books select g, 1 + g % 50, 'b' || g from generate_series(1, 500) g;
      insert into reviews select g, 1 + g % 500, g % 5 from generate_series(1, 2000) g;`);
    expect((await runPitr(['backup'], env)).code).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    t1 = (await prod.query<{ now: string }>('select now()::text as now'))[0]!.now;
    await new Promise((r) => setTimeout(r, 20));
    await prod.query(`delete from authors where id = 7`);
    await prod.query(`update books set title = 'CORRUPTED' where id between 100 and 129`);
    await prod.query(`insert into authors values (100, 'after the incident'); insert into books values (1000, 1, 'new book')`);
  });

  afterAll(async () => {
    const list = await runPitr(['branches', '--json'], env);
    for (const b of list.json?.branches ?? []) await runPitr(['branches', 'delete', b.id], env);
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const args = () => ['playbook', 'run', 'accidental-deletion', '--set', `at=${t1}`, '--set', 'table=authors', '--set', 'where=id = 7'];

  it('refuses a missing input before doing anything (exit 2)', async () => {
    const r = await runPitr(['playbook', 'run', 'accidental-deletion', '--set', 'table=authors', '--no-input'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('needs --set at=<time>');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    // Nothing ran: no playbook run directory, no branch.
    expect(existsSync(join(work, 'playbook-runs'))).toBe(false);
    const d = await runPitr(['playbook', 'run', 'data-corruption', '--set', 'tables=books', '--no-input'], env);
    expect(d.code).toBe(2);
    expect(d.stderr).toContain('needs --set at=<time>');
  });

  it('stops at the confirm step without --yes and changes nothing (exit 3)', async () => {
    const before = await tableChecksums(prod.url);
    const r = await runPitr([...args(), '--no-input', '--json'], env);
    expect(r.code).toBe(3);
    // find (the given instant passed on), branch, preview, diff, then the confirm stops the run.
    expect(r.json.steps.map((s: { status: string }) => s.status)).toEqual(['ok', 'ok', 'ok', 'ok', 'failed', 'skipped', 'skipped', 'skipped']);
    expect(r.json.steps[0].outputs).toEqual({ at: t1, searched: false });
    expect(await tableChecksums(prod.url)).toEqual(before);
  });

  it('--yes: branch, preview, diff, recover with cascade, verify, report, with the measured RTO', async () => {
    const r = await runPitr([...args(), '--yes', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.status).toBe('ok');
    expect(r.json.steps.map((s: { status: string }) => s.status)).toEqual(Array(8).fill('ok'));
    const byId = Object.fromEntries(r.json.steps.filter((s: { id: string | null }) => s.id).map((s: { id: string }) => [s.id, s]));
    expect(byId.rows.outputs).toMatchObject({ missing: 1 });
    expect(byId.recover.outputs).toMatchObject({ inserted: 1 + 10 + 40, conflicts: 0, verified: true });
    expect(byId.verify.outputs).toMatchObject({ missing: 0 });
    // RTO: from the playbook's start to the end of its last production step (the verification).
    const verifyEnd = Date.parse(byId.verify.endedAt);
    const rto = (verifyEnd - Date.parse(r.json.startedAt)) / 1000;
    expect(Math.abs(r.json.rtoSeconds - rto)).toBeLessThan(0.05);
    expect(r.json.rtoSeconds).toBeGreaterThanOrEqual(byId.recover.seconds + byId.verify.seconds);
    expect(r.json.rtoSeconds).toBeLessThanOrEqual((Date.parse(r.json.endedAt) - Date.parse(r.json.startedAt)) / 1000);
    expect(existsSync(join(r.json.dir, 'report.md'))).toBe(true);
    // The report step writes the report of the steps before it, under its title.
    const reportStep = r.json.steps.at(-1);
    expect(reportStep.type).toBe('report');
    const interim = readFileSync(reportStep.outputs.report, 'utf8');
    expect(interim).toMatch(/^# Accidental deletion recovered\n\n# Playbook accidental-deletion: ok/);
    expect(interim).toContain('| 7 | verify (diff) | ok |');
    expect(interim).not.toContain('| 8 |');
    expect(await count(`select count(*) as n from reviews r join books b on b.id = r.book_id where b.author_id = 7`)).toBe(40);
    expect(await count(`select count(*) as n from authors where id = 100`)).toBe(1);
  });

  it('data-corruption: restores the changed rows of the listed tables, keeps later inserts', async () => {
    const r = await runPitr(['playbook', 'run', 'data-corruption', '--set', `at=${t1}`, '--set', 'tables=books', '--yes', '--json'], env);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const byId = Object.fromEntries(r.json.steps.filter((s: { id: string | null }) => s.id).map((s: { id: string }) => [s.id, s]));
    expect(byId.damage.outputs.changed).toBeGreaterThanOrEqual(29);
    expect(byId.recover.outputs).toMatchObject({ conflicts: 0, verified: true });
    expect(await count(`select count(*) as n from books where title = 'CORRUPTED'`)).toBe(0);
    expect(await count(`select count(*) as n from books where id = 1000`)).toBe(1);
  });

  it('--dry-run plans every step and changes nothing', async () => {
    const before = await tableChecksums(prod.url);
    const r = await runPitr(['playbook', 'run', 'data-corruption', '--set', `at=${t1}`, '--set', 'tables=authors', '--dry-run', '--json'], env);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.json.dryRun).toBe(true);
    expect(await tableChecksums(prod.url)).toEqual(before);
  });

  it('restore-drill: restores, checks a table holds rows, reports the time', async () => {
    const r = await runPitr(['playbook', 'run', 'restore-drill', '--set', 'table=books', '--yes', '--json'], env);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.json.steps.find((s: { id: string }) => s.id === 'readable').outputs).toEqual({ value: 'true' });
    expect(r.json.steps.find((s: { id: string }) => s.id === 'branch').outputs.secondsToQueryable).toBeGreaterThan(0);
  });

  it('failed-migration on the local provider explains that in-place restore needs Neon', async () => {
    const r = await runPitr(['playbook', 'run', 'failed-migration', '--set', `at=${t1}`, '--yes', '--json'], env);
    expect(r.code).toBe(1);
    expect(r.json.steps.find((s: { id: string }) => s.id === 'rollback').error).toContain('in-place restore is not available with the local provider');
  });
});

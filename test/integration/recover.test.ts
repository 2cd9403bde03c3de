import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { makeTempRoot, startCluster, type TestCluster, localEnv } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';
import { tableChecksums } from '../support/checksums.js';
import { applyRecovery, planRecovery } from '../../src/recover/engine.js';
import { RunStore } from '../../src/recover/runs.js';

/**
 * Selective recovery on real clusters: a branch at T1 (before the incidents), then recover
 * through the built CLI and check production table by table.
 */
describe('pitr recover', () => {
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  let branchUrl: string;

  const count = async (sql: string) => Number((await prod.query<{ n: string }>(sql))[0]!.n);

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-recover-');
    env = localEnv(prod, work);
    await prod.query(`
      create table users(id int generated always as identity primary key, handle text not null unique);
      create table comics(id int primary key, author_id int not null references users on delete cascade, title text not null,
                          title_upper text generated always as (upper(title)) stored);
      create table chapters(id serial primary key, comic_id int not null references comics on delete cascade, n int not null);
      create table comments(id bigint primary key, chapter_id int not null references chapters on delete cascade,
                            user_id int references users on delete set null, body text);
      insert into users (handle) select 'u' || g from generate_series(1, 100) g;
      insert into comics select g, 1 + g % 100, 'comic ' || g from generate_series(1, 1000) g;
      insert into chapters (comic_id, n) select 1 + g % 1000, g from generate_series(1, 5000) g;
      insert into comments select g, 1 + g % 5000, 1 + (g * 7) % 100, 'body ' || g from generate_series(1, 20000) g;
      analyze;`);
    expect((await runPitr(['backup'], env)).code).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    const t1 = (await prod.query<{ now: string }>('select now()::text as now'))[0]!.now;
    await new Promise((r) => setTimeout(r, 20));
    // Incident 1: a cascading delete, 3 levels deep, that also SET NULLs comments elsewhere.
    await prod.query(`delete from users where id = 7`);
    // Incident 2: a bad UPDATE.
    await prod.query(`update comics set title = 'oops' where id between 500 and 549`);
    // Life goes on after the incidents.
    await prod.query(`insert into users (handle) values ('newcomer'); insert into comics values (5001, 1, 'after the incident');
                      insert into comments values (90001, 1, 1, 'posted after the incident')`);
    const branch = await runPitr(['--at', t1, '--json', '--show-password'], env);
    expect(branch.code, branch.stderr).toBe(0);
    branchUrl = branch.json.connectionUrl;
  });

  afterAll(async () => {
    await runPitr(['branches', 'prune'], env);
    const list = await runPitr(['branches', '--json'], env);
    for (const b of list.json?.branches ?? []) await runPitr(['branches', 'delete', b.id], env);
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('refuses without confirmation and changes nothing on --dry-run', async () => {
    const before = await tableChecksums(prod.url);
    const dry = await runPitr(['recover', 'users', '--where', 'id = 7', '--cascade', '--dry-run', '--json'], env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.json.plan.tables.map((t: { table: string }) => t.table)).toEqual(['public.users', 'public.comics', 'public.chapters', 'public.comments']);
    const refused = await runPitr(['recover', 'users', '--where', 'id = 7', '--cascade', '--no-input'], env);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('needs confirmation');
    expect(await tableChecksums(prod.url)).toEqual(before);
  });

  it('accidental deletion: --cascade puts back the user, 3 levels of children and the SET NULL references; later writes survive', async () => {
    const lostComics = await count(`select count(*) as n from comics where author_id = 7`);
    expect(lostComics).toBe(0);
    const r = await runPitr(['recover', 'users', '--where', 'id = 7', '--cascade', '--yes', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.verified).toBe(true);
    const byTable = Object.fromEntries(r.json.tables.map((t: { table: string }) => [t.table, t]));
    expect(byTable['public.users']).toMatchObject({ inserted: 1, conflicts: 0 });
    expect(byTable['public.comics'].inserted).toBe(10);
    expect(byTable['public.chapters'].inserted).toBe(50);
    expect(byTable['public.comments'].inserted).toBe(200);
    // User 7's comments on other users' chapters survived with user_id SET NULL: the reference is put back.
    expect(byTable['public.comments'].updated).toBeGreaterThan(0);
    const branchCount = await runPitr(['diff', 'comments', '--branch', branchUrl, '--where', 'user_id = 7', '--json'], env);
    expect(branchCount.json.summary).toMatchObject({ missing: 0, changed: 0 });
    expect(await count(`select count(*) as n from comments where user_id = 7`)).toBe(branchCount.json.summary.branchRows);
    expect(await count(`select count(*) as n from users where handle = 'newcomer'`)).toBe(1);
    expect(await count(`select count(*) as n from comments where id = 90001`)).toBe(1);
    // Nothing of the deletion is left to recover; the bad UPDATE is untouched (not selected).
    const after = await runPitr(['diff', 'comments', '--branch', branchUrl, '--json'], env);
    expect(after.json.summary).toMatchObject({ missing: 0, changed: 0, extra: 1 });
    expect(await count(`select count(*) as n from comics where title = 'oops'`)).toBe(49); // 50 hit, one was user 7's (now back as it was)
    // Identity sequence did not move backwards: a new user still gets a fresh id.
    await prod.query(`insert into users (handle) values ('another')`);
    expect(existsSync(join(env.PITR_WORK_DIR!, 'runs', r.json.runId, 'report.md'))).toBe(true);
  });

  it('undo returns every table to exactly its state before the recovery', async () => {
    const before = await tableChecksums(prod.url);
    const corrupted = await count(`select count(*) as n from comics where title = 'oops'`);
    const r = await runPitr(['recover', 'comics', '--mode', 'changed', '--yes', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.totals).toMatchObject({ updated: corrupted, inserted: 0, conflicts: 0 });
    expect(await count(`select count(*) as n from comics where title = 'oops'`)).toBe(0);
    expect(await count(`select count(*) as n from comics where id = 5001`)).toBe(1);
    expect((await prod.query<{ u: string }>(`select title_upper as u from comics where id = 500`))[0]!.u).toBe('COMIC 500');
    expect(await tableChecksums(prod.url)).not.toEqual(before);
    const undo = await runPitr(['undo', r.json.runId, '--yes', '--json'], env);
    expect(undo.code, undo.stderr).toBe(0);
    expect(undo.json.totals).toMatchObject({ restore: corrupted, conflicts: 0 });
    expect(await tableChecksums(prod.url)).toEqual(before);
    const again = await runPitr(['undo', r.json.runId, '--yes'], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already undone');
    // Redo it for real: the corruption is repaired.
    expect((await runPitr(['recover', 'comics', '--mode', 'changed', '--yes'], env)).code).toBe(0);
  });

  it('undo removes the rows a recovery inserted, except one changed since', async () => {
    await prod.query(`delete from comics where id between 800 and 809`);
    const before = await tableChecksums(prod.url);
    const r = await runPitr(['recover', 'comics', '--where', 'id between 800 and 809', '--yes', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.totals).toMatchObject({ inserted: 10, conflicts: 0 });
    await prod.query(`update comics set title = 'edited after the recovery' where id = 805`);
    const undo = await runPitr(['undo', r.json.runId, '--yes', '--json'], env);
    expect(undo.code, undo.stderr).toBe(0);
    expect(undo.json.totals).toMatchObject({ remove: 9, conflicts: 1 });
    expect(await count(`select count(*) as n from comics where id between 800 and 809`)).toBe(1);
    await prod.query(`delete from comics where id = 805`);
    expect(await tableChecksums(prod.url)).toEqual(before);
  });

  it('puts back only the missing rows when some selected keys are back in production already', async () => {
    await prod.query(`delete from comics where id between 810 and 819; insert into comics values (815, 2, 're-created by hand')`);
    const r = await runPitr(['recover', 'comics', '--where', 'id between 810 and 819', '--yes', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.totals).toMatchObject({ inserted: 9, updated: 0, conflicts: 0 });
    expect((await prod.query<{ t: string }>(`select title as t from comics where id = 815`))[0]!.t).toBe('re-created by hand');
    expect(await count(`select count(*) as n from comics where id between 810 and 819 and title = 'comic ' || id`)).toBe(9);
  });

  it('a failing constraint mid-apply rolls everything back with a clear error', async () => {
    await prod.query(`delete from comics where id = 42`); // cascades to its chapters
    const before = await tableChecksums(prod.url);
    // Chapters without their comic: the foreign key fails inside the transaction.
    const r = await runPitr(['recover', 'chapters', '--where', 'comic_id = 42', '--yes'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/recovery rolled back, production unchanged: insert or update on table "chapters" violates foreign key constraint/);
    expect(await tableChecksums(prod.url)).toEqual(before);
    const runs = await runPitr(['runs', '--json'], env);
    expect(runs.json.runs.at(-1)).toMatchObject({ status: 'failed' });
  });

  it('rows changed after the plan are conflicts, never overwritten; a concurrent writer loses nothing', async () => {
    await prod.query(`update comics set title = 'oops again' where id between 600 and 609`);
    await prod.query(`delete from comics where id between 700 and 704`);
    const store = new RunStore(join(work, 'pitr-inproc'));
    const run = await store.create('recover');
    const req = { branchUrl, productionUrl: prod.url, tables: ['comics'], mode: 'all' as const, where: 'id between 600 and 704', cascade: false, deleteExtra: false };
    const plan = await planRecovery(req, store, run);
    expect(plan.totals).toMatchObject({ update: 10, insert: 5 });
    // Between plan and apply: someone fixes one row by hand differently, someone re-creates one deleted key.
    await prod.query(`update comics set title = 'fixed by hand' where id = 600`);
    await prod.query(`insert into comics values (700, 1, 'recreated by someone')`);
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await prod.query(`insert into comments values (${200000 + written}, 1, 1, 'concurrent'); update comics set title = title where id = 1`);
        written++;
      }
    })();
    const result = await applyRecovery(req, plan, store, run);
    writing = false;
    await writer;
    expect(result.totals).toMatchObject({ updated: 9, inserted: 4, conflicts: 2 });
    const reasons = result.tables[0]!.conflictSamples.map((c) => `${c.key.id}:${c.reason}`).sort();
    expect(reasons).toEqual(['600:the row changed in production after the plan', '700:a row with this key appeared in production after the plan']);
    expect((await prod.query<{ t: string }>(`select title as t from comics where id = 600`))[0]!.t).toBe('fixed by hand');
    expect((await prod.query<{ t: string }>(`select title as t from comics where id = 700`))[0]!.t).toBe('recreated by someone');
    expect(await count(`select count(*) as n from comments where body = 'concurrent'`)).toBe(written);
    expect(written).toBeGreaterThan(0);
  });

  it('a saved plan of deleted rows: copied straight in, and a key re-created since the plan is a conflict', async () => {
    await prod.query(`delete from comics where id between 900 and 919`);
    const store = new RunStore(join(work, 'pitr-inproc'));
    const req = { branchUrl, productionUrl: prod.url, tables: ['comics'], mode: 'missing' as const, where: 'id between 900 and 919', cascade: false, deleteExtra: false };
    const first = await store.create('recover');
    const plan = await planRecovery(req, store, first);
    expect(plan.totals).toMatchObject({ insert: 20, update: 0 });
    const clean = await applyRecovery(req, plan, store, first);
    expect(clean.totals).toMatchObject({ inserted: 20, conflicts: 0 });
    expect(await count(`select count(*) as n from comics where id between 900 and 919 and title = 'comic ' || id`)).toBe(20);

    await prod.query(`delete from comics where id between 900 and 919`);
    const second = await store.create('recover');
    const plan2 = await planRecovery(req, store, second);
    await prod.query(`insert into comics values (910, 3, 'recreated between plan and apply')`);
    const raced = await applyRecovery(req, plan2, store, second);
    expect(raced.totals).toMatchObject({ inserted: 19, conflicts: 1 });
    expect(raced.tables[0]!.conflictSamples[0]).toMatchObject({ key: { id: 910 }, reason: 'a row with this key appeared in production after the plan' });
    expect((await prod.query<{ t: string }>(`select title as t from comics where id = 910`))[0]!.t).toBe('recreated between plan and apply');
  });

  it('a malicious --where cannot change anything, on production or on the branch', async () => {
    const prodBefore = await tableChecksums(prod.url);
    const branchBefore = await tableChecksums(branchUrl);
    for (const where of [
      '1=1; DROP TABLE comics',
      'true); drop table comics; select (1',
      'true) to stdout; commit; drop table comics; copy (select 1',
      `id = (select 1 from (delete from comics returning 1) x)`,
      `id in (select id from comics for update)`,
    ]) {
      const r = await runPitr(['recover', 'comics', '--where', where, '--yes', '--delete-extra'], env);
      expect(r.code, where).toBe(2);
      expect(r.stderr).toContain('--where was rejected by Postgres');
    }
    const slow = await runPitr(['recover', 'comics', '--where', 'length(md5(title)) > 0 and id = 1', '--dry-run'], env);
    expect(slow.code, slow.stderr).toBe(0);
    expect(await tableChecksums(prod.url)).toEqual(prodBefore);
    expect(await tableChecksums(branchUrl)).toEqual(branchBefore);
  });

  it('a trigger that rewrites rows: no silent default; skip restores the exact row, fire reports the rewritten column', async () => {
    await prod.query(`delete from comics where id in (77, 78)`);
    await prod.query(`create function pitr_test_mangle() returns trigger language plpgsql as $$ begin new.title := 'mangled'; return new; end $$;
                      create trigger mangle before insert on comics for each row execute function pitr_test_mangle()`);
    try {
      const before = await tableChecksums(prod.url);
      const refused = await runPitr(['recover', 'comics', '--where', 'id = 77', '--yes'], env);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('public.comics.mangle (BEFORE INSERT ROW)');
      expect(refused.stderr).toContain('--triggers skip');
      expect(refused.stderr).toContain('--triggers fire');
      expect(await tableChecksums(prod.url)).toEqual(before);
      const dry = await runPitr(['recover', 'comics', '--where', 'id = 77', '--dry-run', '--json'], env);
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.json.plan.triggers).toEqual([expect.objectContaining({ relation: 'public.comics', name: 'mangle', rewritesRows: true })]);
      const skip = await runPitr(['recover', 'comics', '--where', 'id = 77', '--triggers', 'skip', '--yes', '--json'], env);
      expect(skip.code, skip.stderr).toBe(0);
      expect((await prod.query<{ title: string }>(`select title from comics where id = 77`))[0]!.title).toBe('comic 77');
      // Disabled only inside the recovery transaction.
      expect((await prod.query<{ e: string }>(`select tgenabled as e from pg_trigger where tgname = 'mangle'`))[0]!.e).toBe('O');
      const fire = await runPitr(['recover', 'comics', '--where', 'id = 78', '--triggers', 'fire', '--yes', '--json'], env);
      expect(fire.code, fire.stderr).toBe(0);
      expect(fire.json.tables[0].rewrittenColumns).toEqual({ title: 1 });
      expect((await prod.query<{ title: string }>(`select title from comics where id = 78`))[0]!.title).toBe('mangled');
    } finally {
      await prod.query(`drop trigger mangle on comics; drop function pitr_test_mangle()`);
    }
  });

  it('refuses unknown tables before any work', async () => {
    const r = await runPitr(['recover', 'nosuch', '--yes'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown table nosuch');
  });
});

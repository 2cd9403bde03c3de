import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, rm } from 'node:fs/promises';
import { makeTempRoot, startCluster, type TestCluster } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';
import { tableChecksums } from '../support/checksums.js';
import { copyDatabase, sql } from '../support/databases.js';

/**
 * Recovery on each class of schema that real applications have and pitr's own fixtures did not:
 * foreign keys declared only on partitions (two levels, differing per partition), a BEFORE UPDATE
 * touch trigger, an AFTER audit trigger, a keyless table with duplicates, ON DELETE CASCADE under
 * --delete-extra. Every case: incident, later legitimate writes, recovery, then every table's
 * checksum equals an expected database built by hand (base + the same legitimate writes), and
 * undo returns production to its checksums before the recovery.
 */
describe('recover on real-world schema classes', () => {
  let cluster: TestCluster;
  let work: string;
  let seq = 0;

  beforeAll(async () => {
    cluster = await startCluster();
    work = await makeTempRoot('pitr-schemas-');
    await cluster.query('create database base');
    await sql(cluster.urlFor('base'), await readFile(new URL('../fixtures/schemas/classes.sql', import.meta.url), 'utf8'));
  });

  afterAll(async () => {
    await cluster?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** prod = base + incident + later writes; branch = base (production before the incident); expected = base + later writes. */
  async function scenario(incident: string, later: string) {
    const name = `s${++seq}`;
    const [prodUrl, branchUrl, expectedUrl] = [
      await copyDatabase(cluster, 'base', `${name}_prod`),
      await copyDatabase(cluster, 'base', `${name}_branch`),
      await copyDatabase(cluster, 'base', `${name}_expected`),
    ];
    await sql(prodUrl, incident);
    if (later) {
      await sql(prodUrl, later);
      await sql(expectedUrl, later);
    }
    const env = { DATABASE_URL: prodUrl, PITR_WORK_DIR: `${work}/${name}` };
    const recover = (...args: string[]) => runPitr(['recover', ...args, '--branch', branchUrl, '--json'], env);
    return { prodUrl, branchUrl, expectedUrl, env, recover };
  }

  async function expectUndoneTo(s: Awaited<ReturnType<typeof scenario>>, runId: string, before: Record<string, string>) {
    const undo = await runPitr(['undo', runId, '--yes', '--json'], s.env);
    expect(undo.code, undo.stderr).toBe(0);
    expect(await tableChecksums(s.prodUrl)).toEqual(before);
  }

  it('foreign keys declared only on partitions: --cascade puts back the rows in every partition; without it the plan names them', async () => {
    const s = await scenario(
      `delete from events where account_id between 10 and 14; delete from accounts where id between 10 and 14`,
      `insert into accounts(id, name) values (1001, 'after the incident');
       insert into events values (90001, 1001, 'eu', '2026-03-01', 'later'), (90002, 20, 'us', '2025-07-01', 'later');
       insert into notes values (9001, 1001, 'later note')`,
    );
    const lost = Number((await sql(s.branchUrl, `select count(*) as n from events where account_id between 10 and 14`))[0]!.n);
    expect(lost).toBeGreaterThan(20);
    // Without --cascade: the children the plan leaves missing are listed per partition, before any write.
    const partial = await s.recover('accounts', '--where', 'id between 10 and 14', '--triggers', 'skip', '--dry-run');
    expect(partial.code, partial.stderr).toBe(0);
    const gaps = partial.json.plan.incomplete as { table: string; partition: string | null; rows: number }[];
    expect(gaps.filter((g) => g.table === 'public.events').reduce((a, g) => a + g.rows, 0)).toBe(lost);
    const perPartition = await sql(
      s.branchUrl,
      `select tableoid::regclass::text as p, count(*)::int as n from events where account_id between 10 and 14 group by 1 order by 1`,
    );
    expect(gaps.filter((g) => g.table === 'public.events').map((g) => [g.partition, g.rows])).toEqual(perPartition.map((r) => [`public.${r.p}`, r.n]));
    const lostNotes = Number((await sql(s.branchUrl, `select count(*) as n from notes where account_id between 10 and 14`))[0]!.n);
    expect(gaps.filter((g) => g.table === 'public.notes')).toEqual([{ table: 'public.notes', partition: null, parent: 'public.accounts', foreignKey: 'notes_account_id_fkey', rows: lostNotes }]);
    const before = await tableChecksums(s.prodUrl);
    const r = await s.recover('accounts', '--where', 'id between 10 and 14', '--cascade', '--triggers', 'skip', '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.plan.incomplete).toEqual([]);
    expect(r.json.plan.tables.map((t: { table: string }) => t.table).sort()).toEqual(['public.accounts', 'public.events', 'public.notes']);
    expect(await tableChecksums(s.prodUrl)).toEqual(await tableChecksums(s.expectedUrl));
    await expectUndoneTo(s, r.json.runId, before);
  });

  it('a BEFORE UPDATE touch trigger and an AFTER audit trigger: --triggers skip restores the exact rows; fire reports what they did', async () => {
    const incident = `update accounts set name = 'oops' where id % 7 = 0`;
    const later = `insert into accounts(id, name) values (1002, 'after the incident')`;
    const s = await scenario(incident, later);
    // The incident's audit rows are history: they stay, in production and in the expected database.
    await sql(s.expectedUrl, `insert into audit select 'accounts', 'UPDATE', id::text from accounts where id % 7 = 0 and id <= 200`);
    const refused = await s.recover('accounts', '--mode', 'changed', '--yes');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('accounts_touch (BEFORE UPDATE ROW)');
    expect(refused.stderr).toContain('accounts_audit (AFTER INSERT OR UPDATE ROW)');
    const before = await tableChecksums(s.prodUrl);
    const r = await s.recover('accounts', '--mode', 'changed', '--triggers', 'skip', '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.totals.updated).toBe(28);
    expect(await tableChecksums(s.prodUrl)).toEqual(await tableChecksums(s.expectedUrl));
    await expectUndoneTo(s, r.json.runId, before);

    const fire = await s.recover('accounts', '--mode', 'changed', '--triggers', 'fire', '--yes');
    expect(fire.code, fire.stderr).toBe(0);
    expect(fire.json.tables[0].rewrittenColumns, JSON.stringify(fire.json.tables)).toEqual({ updated_at: 28 });
    expect(fire.json.sideWrites).toEqual([{ table: 'public.audit', inserted: 28, updated: 0, deleted: 0 }]);
    const names = await sql(s.prodUrl, `select count(*) as n from accounts where name = 'oops'`);
    expect(Number(names[0]!.n)).toBe(0);
  });

  it('--triggers skip without owning the table: one line naming the privilege, nothing written', async () => {
    const s = await scenario(`update accounts set name = 'oops' where id = 5`, '');
    await sql(s.prodUrl, `create role pitr_not_owner login; grant usage on schema public to pitr_not_owner;
                          grant select, insert, update, delete on all tables in schema public to pitr_not_owner`);
    const before = await tableChecksums(s.prodUrl);
    const asNotOwner = { ...s.env, DATABASE_URL: s.prodUrl.replace('postgres@', 'pitr_not_owner@') };
    const r = await runPitr(['recover', 'accounts', '--mode', 'changed', '--triggers', 'skip', '--branch', s.branchUrl, '--yes'], asNotOwner);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('--triggers skip needs ownership of public.accounts (owned by postgres)');
    expect(await tableChecksums(s.prodUrl)).toEqual(before);
  });

  it('a column whose type differs between the sides is refused by name, never written as NULL', async () => {
    const s = await scenario(`delete from notes where id <= 5; alter table notes alter column body type varchar(200)`, '');
    const before = await tableChecksums(s.prodUrl);
    const r = await s.recover('notes', '--yes');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('body: text vs character varying(200)');
    expect(await tableChecksums(s.prodUrl)).toEqual(before);
  });

  // dense: every row's (key, hash) from both sides merged in key order; join: the same streamed into production and joined there; sparse: the segment diff engine.
  it.each(['dense', 'join', 'sparse'])('a uuid key (%s diff): corruption spread over the key space is repaired from the differing keys alone; later inserts kept', async (strategy) => {
    const s = await scenario(
      `update docs set body = 'corrupted', edited = null where abs(hashtext(id::text)) % 10 = 0`,
      `insert into docs values ('00000000-0000-0000-0000-000000000001', 'written after the incident', null)`,
    );
    const changed = Number((await sql(s.prodUrl, `select count(*) as n from docs where body = 'corrupted'`))[0]!.n);
    const before = await tableChecksums(s.prodUrl);
    const r = await runPitr(['recover', 'docs', '--mode', 'changed', '--yes', '--branch', s.branchUrl, '--json'], { ...s.env, PITR_RECOVER_DIFF: strategy });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.totals).toMatchObject({ updated: changed, inserted: 0, deleted: 0 });
    expect(r.json.plan.tables[0].candidates).toBe(changed);
    expect(await tableChecksums(s.prodUrl)).toEqual(await tableChecksums(s.expectedUrl));
    const undo = await runPitr(['undo', r.json.runId, '--yes'], s.env);
    expect(undo.code, undo.stderr).toBe(0);
    expect(await tableChecksums(s.prodUrl)).toEqual(before);
  });

  // Values equal by their type's = but printed differently: 'alice' = 'ALICE' under a nondeterministic collation, 1.5 = 1.500, 0 = -0.
  it.each(['dense', 'join', 'sparse'])('a corruption invisible to = (nondeterministic collation, numeric scale, -0) is repaired exactly (%s diff)', async (strategy) => {
    const s = await scenario('select 1', '');
    const icu = Number((await sql(s.prodUrl, `select count(*) as n from pg_collation where collprovider = 'i'`))[0]!.n) > 0;
    const collation = icu ? `create collation nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);` : '';
    for (const url of [s.prodUrl, s.branchUrl, s.expectedUrl]) {
      await sql(url, `${collation} create table people (id int primary key, handle text ${icu ? 'collate nocase' : ''} not null, score numeric not null, ratio float8 not null);
                      insert into people select g, 'user' || g, g + 0.5, 0 from generate_series(1, 300) g`);
    }
    await sql(s.prodUrl, `update people set handle = upper(handle), score = score::numeric(10, 3), ratio = '-0' where id % 3 = 0`);
    const r = await runPitr(['recover', 'people', '--mode', 'changed', '--yes', '--branch', s.branchUrl, '--json'], { ...s.env, PITR_RECOVER_DIFF: strategy });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.totals).toMatchObject({ updated: 100, inserted: 0, deleted: 0, conflicts: 0 });
    expect(r.json.plan.tables[0].updateColumns).toEqual({ handle: 100, score: 100, ratio: 100 });
    expect(await sql(s.prodUrl, `select count(*) as n from people where convert_to(handle, 'UTF8') = convert_to('user' || id, 'UTF8') and score::text = (id + 0.5)::text and ratio::text = '0'`)).toEqual([{ n: '300' }]);
    expect(await tableChecksums(s.prodUrl)).toEqual(await tableChecksums(s.expectedUrl));
  });

  it('a keyless table: missing copies put back, surplus copies removed with --delete-extra, undo exact; --mode changed refused', async () => {
    const s = await scenario(
      `delete from log_lines where kind = 'k1'; insert into log_lines select * from log_lines where kind = 'k0' and account_id < 10`,
      `insert into log_lines values ('k2', 1, 'line 1'), ('k2', 1, 'line 1'), ('k1', 7, 'brand new')`,
    );
    const changed = await s.recover('log_lines', '--mode', 'changed', '--yes');
    expect(changed.code).toBe(2);
    expect(changed.stderr).toContain('no primary key or non-null unique key');
    const before = await tableChecksums(s.prodUrl);
    const r = await s.recover('log_lines', '--where', "kind in ('k0', 'k1')", '--delete-extra', '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.totals.inserted).toBe(1000);
    // The legitimately new 'k1' line exists only in production: it is surplus too, and --delete-extra removes it with the duplicates.
    const surplus = Number((await sql(s.branchUrl, `select count(*) as n from log_lines where kind = 'k0' and account_id < 10`))[0]!.n);
    expect(r.json.totals.deleted).toBe(surplus + 1);
    await sql(s.expectedUrl, `delete from log_lines where kind = 'k1' and line = 'brand new'`);
    expect(await tableChecksums(s.prodUrl)).toEqual(await tableChecksums(s.expectedUrl));
    await expectUndoneTo(s, r.json.runId, before);
    // Without --delete-extra only the missing copies come back.
    const missing = await s.recover('log_lines', '--where', "kind = 'k1'", '--yes');
    expect(missing.code, missing.stderr).toBe(0);
    expect(missing.json.totals).toMatchObject({ inserted: 1000, deleted: 0 });
  });

  it('--delete-extra that would cascade to child rows is refused with the list; without children it deletes, and undo restores', async () => {
    const s = await scenario(
      `insert into accounts(id, name) select g, 'bad import ' || g from generate_series(300, 305) g;
       insert into notes values (8001, 300, 'child of a bad row'), (8002, 301, 'another');
       insert into accounts(id, name) select g, 'bad import ' || g from generate_series(400, 402) g`,
      '',
    );
    const before = await tableChecksums(s.prodUrl);
    const refused = await s.recover('accounts', '--where', 'id >= 300', '--delete-extra', '--triggers', 'skip', '--yes');
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('2 rows of public.notes reference them');
    expect(refused.stderr).toContain('ON DELETE CASCADE');
    expect(await tableChecksums(s.prodUrl)).toEqual(before);
    const r = await s.recover('accounts', '--where', 'id >= 400', '--delete-extra', '--triggers', 'skip', '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.totals.deleted).toBe(3);
    await expectUndoneTo(s, r.json.runId, before);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { startWsProxy, type WsProxy } from '../support/ws-proxy.js';
import { runPitr } from '../support/cli.js';
import { connect, useDriver } from '../../src/db/connect.js';
import { checkWhere } from '../../src/db/sql.js';
import { runUserQuery } from '../../src/db/user-sql.js';
import { runPlaybook, resolveInputs } from '../../src/playbooks/run.js';
import { loadPlaybook } from '../../src/playbooks/load.js';
import { runDrill } from '../../src/drill/index.js';
import type { Provider } from '../../src/providers/types.js';

/**
 * Findings 1–3 of the safety review (issue 13): user SQL (--where, playbook check steps, drill
 * checks) must never change the meaning of pitr's SQL, run a second statement, or write — on
 * --driver pg and on --driver ws alike. Every case checks production afterwards.
 */
describe('user SQL is parsed, single-statement and read-only on both drivers', () => {
  let cluster: TestCluster;
  let proxy: WsProxy;
  let work: string;
  const drivers = ['pg', 'ws'] as const;
  const setDriver = (d: (typeof drivers)[number]) => useDriver(d === 'ws' ? { driver: 'ws', wsProxy: proxy.template } : { driver: 'pg' });
  const prodCount = async () => Number((await cluster.query<{ n: string }>('select count(*) as n from t', [])).at(0)?.n ?? 0);
  const countIn = async (db: string) => {
    const c = await connect(cluster.urlFor(db), { driver: 'pg' });
    try {
      return Number((await c.query('select count(*)::int8 as n from public.t')).rows[0].n);
    } finally {
      await c.end();
    }
  };
  const cliEnv = (d: string): [string[], Record<string, string>] => [
    d === 'ws' ? ['--driver', 'ws', '--ws-proxy', proxy.template] : ['--driver', 'pg'],
    { DATABASE_URL: cluster.urlFor('prod'), PITR_WORK_DIR: join(work, 'pitr') },
  ];

  beforeAll(async () => {
    cluster = await startCluster();
    proxy = await startWsProxy();
    work = await mkdtemp(join(tmpdir(), 'pitr-user-sql-'));
    await cluster.query('create table t(id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 1000) g');
    await cluster.query('create database branch');
    await cluster.query('create database prod');
    for (const db of ['branch', 'prod']) {
      const c = await connect(cluster.urlFor(db), { driver: 'pg' });
      await c.query('create table public.t(id int primary key, v text); insert into public.t select g, md5(g::text) from generate_series(1, 1000) g; create sequence public.s');
      // Production lost 10 rows and gained 2: the --delete-extra case of the review.
      if (db === 'prod') await c.query('delete from public.t where id <= 10; insert into public.t values (1001, $$x$$), (1002, $$y$$)');
      await c.end();
    }
  });
  afterAll(async () => {
    useDriver({ driver: 'pg' });
    await proxy?.close();
    await cluster?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  describe.each(drivers)('--driver %s', (driver) => {
    it(`finding 1: --where "false) or true or (false" with --delete-extra is exit 2 and deletes nothing (${driver})`, async () => {
      const [flags, env] = cliEnv(driver);
      const r = await runPitr([...flags, 'recover', 'public.t', '--branch', cluster.urlFor('branch'), '--where', 'false) or true or (false', '--delete-extra', '--yes'], env);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/--where/);
      expect(await countIn('prod')).toBe(992);
    });

    it.each([
      ['a second statement', 'true; delete from public.t'],
      ['a commit and a delete', 'true) limit 0; commit; delete from public.t; select (1'],
      ['nextval', "nextval('public.s') > 0"],
      ['set_config of session_replication_role', "set_config('session_replication_role', 'replica', true) = 'replica'"],
      ['a trailing ORDER BY', 'true order by 1'],
      ['a line comment', 'id > 5 --'],
      ['a data-modifying CTE', 'exists (with d as (delete from public.t returning 1) select 1 from d)'],
    ])(`finding 1: --where with %s is exit 2 before any write (${driver})`, async (_what, where) => {
      const [flags, env] = cliEnv(driver);
      const r = await runPitr([...flags, 'recover', 'public.t', '--branch', cluster.urlFor('branch'), '--where', where, '--delete-extra', '--yes'], env);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(await countIn('prod')).toBe(992);
    });

    it(`a plain --where still works with --delete-extra --dry-run (${driver})`, async () => {
      const [flags, env] = cliEnv(driver);
      const r = await runPitr([...flags, 'recover', 'public.t', '--branch', cluster.urlFor('branch'), '--where', 'id <= 5 or id > 1000', '--delete-extra', '--dry-run', '--json'], env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.plan.totals).toMatchObject({ insert: 5, delete: 2 });
    });

    it(`finding 2: checkWhere refuses a break-out that the driver would send as a simple query (${driver})`, async () => {
      setDriver(driver);
      const client = await connect(cluster.url);
      try {
        const escape = 'true) limit 0; delete from public.t; select (1';
        await expect(checkWhere(client, 'public.t', escape)).rejects.toMatchObject({ code: 'bad_where' });
      } finally {
        await client.end();
        useDriver({ driver: 'pg' });
      }
      expect(await prodCount()).toBe(1000);
    });

    it(`finding 3: a check step "select 1; commit; delete …; select 1" is refused and deletes nothing (${driver})`, async () => {
      setDriver(driver);
      try {
        await expect(runUserQuery(cluster.url, 'select 1; commit; delete from public.t; select 1')).rejects.toMatchObject({ code: 'bad_check_sql' });
        await expect(runUserQuery(cluster.url, 'delete from public.t returning 1')).rejects.toMatchObject({ code: 'bad_check_sql' });
        await expect(runUserQuery(cluster.url, 'select public.t.id from public.t for update')).rejects.toMatchObject({ code: 'bad_check_sql' });
        expect(await runUserQuery(cluster.url, 'select count(*) from public.t')).toBe('1000');
      } finally {
        useDriver({ driver: 'pg' });
      }
      expect(await prodCount()).toBe(1000);
    });
  });

  it('finding 2 (the driver itself): @neondatabase/serverless sends queryMode "extended" without parameters as a simple query', async () => {
    await cluster.query('create table if not exists probe(x int)');
    for (const driver of drivers) {
      setDriver(driver);
      const client = await connect(cluster.url);
      const outcome = await client
        .query({ text: 'select 1; insert into public.probe values (1)', queryMode: 'extended' } as unknown as string)
        .then(() => 'ran both statements', (err: Error) => err.message);
      await client.end();
      useDriver({ driver: 'pg' });
      // pg refuses (extended protocol); the ws driver runs both: flags are no guarantee.
      if (driver === 'pg') expect(outcome).toMatch(/multiple commands/);
      else expect(outcome).toBe('ran both statements');
    }
  });

  it('finding 3: a playbook check step cannot leave its read-only transaction; an identifier input is quoted and checked', async () => {
    const provider = { kind: 'local', productionUrl: async () => cluster.url } as unknown as Provider;
    const file = join(work, 'p.yaml');
    await writeFile(
      file,
      `name: p
inputs:
  table: { type: identifier, required: true }
  sql: { type: string, required: true }
steps:
  - id: evil
    type: check
    with: { on: production, sql: "\${{ inputs.sql }}", expect: 1 }
  - id: counted
    type: check
    with: { on: production, sql: "select count(*) from \${{ inputs.table }}", expect: 1000 }
`,
    );
    const playbook = await loadPlaybook(file);
    const run = async (given: Record<string, string>) => runPlaybook(playbook, resolveInputs(playbook, given), { provider, workDir: join(work, 'pb'), dryRun: false, yes: true });
    const evil = await run({ table: 't', sql: 'select 1; commit; delete from public.t; select 1' });
    expect(evil.steps[0]).toMatchObject({ status: 'failed' });
    expect(evil.steps[0]!.error).toMatch(/exactly one statement/);
    expect(await prodCount()).toBe(1000);
    const ok = await run({ table: 't', sql: 'select 1' });
    expect(ok.status, JSON.stringify(ok.steps)).toBe('ok');
    // An identifier can only ever name a relation: SQL in it is a name that does not exist.
    const injected = await run({ table: 't where false; delete from public.t', sql: 'select 1' });
    expect(injected.steps[1]).toMatchObject({ status: 'failed' });
    expect(injected.steps[1]!.error).toMatch(/no table/);
    expect(await prodCount()).toBe(1000);
  });

  it('finding 3: a drill --check cannot delete rows on the restored copy', async () => {
    const provider = {
      kind: 'local',
      createRecoveryBranch: async () => ({ id: 'b', name: 'b', secondsToQueryable: 0 }),
      connectionString: async () => cluster.url,
      productionUrl: async () => cluster.url,
      deleteRecoveryBranch: async () => undefined,
    } as unknown as Provider;
    const result = await runDrill({
      provider,
      at: { kind: 'time', at: new Date() } as never,
      workDir: join(work, 'drill'),
      tolerance: 0.01,
      checks: [
        { name: 'evil', sql: 'select 1; commit; delete from public.t; select 1', expect: 1 },
        { name: 'count', sql: 'select count(*) from public.t', expect: 1000 },
      ],
      keep: false,
    });
    expect(result.checks).toEqual([
      expect.objectContaining({ name: 'evil', ok: false }),
      expect.objectContaining({ name: 'count', ok: true, got: '1000' }),
    ]);
    expect(result.checks[0]!.got).toMatch(/exactly one statement/);
    expect(await prodCount()).toBe(1000);
  });

  it('pins search_path in every pitr session: a public function cannot stand in for a built-in', async () => {
    await cluster.query(`create function public.lower(text) returns text language sql as $$ select 'hijacked' $$`);
    for (const driver of drivers) {
      setDriver(driver);
      const client = await connect(cluster.url);
      try {
        const { rows } = await client.query(`select current_setting('search_path') as p, lower('ABC') as l`);
        expect(rows[0]).toEqual({ p: 'pg_catalog, pg_temp', l: 'abc' });
      } finally {
        await client.end();
        useDriver({ driver: 'pg' });
      }
    }
  });
});

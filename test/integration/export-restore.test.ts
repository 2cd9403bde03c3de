import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signManifest } from '../../src/export/manifest.js';
import { tableChecksums } from '../support/checksums.js';
import { cliTranscript, processesUsing, runPitr, type CliRun } from '../support/cli.js';
import { localEnv, makeTempRoot, startCluster, type TestCluster } from '../support/cluster.js';
import { startS3, type TestS3 } from '../support/s3.js';
import { TEST_DB_PASSWORD } from '../support/secrets.js';

/**
 * `pitr export restore|list|prune` and `export:` branches on real clusters: the value classes
 * the diff tests use survive an export and a restore bit for bit; a deletion found "weeks" later
 * is put back from an export with `recover --branch export:…`, keeping every later write; and
 * every refusal leaves the target as empty as it was.
 */

const KEY = randomBytes(32);
const OTHER_KEY = randomBytes(32);
const AWS_SECRET = 'aws-Secret-do-not-print-5521zz';
const SECRETS = [KEY.toString('hex'), KEY.toString('base64'), OTHER_KEY.toString('hex'), AWS_SECRET, TEST_DB_PASSWORD];

const SCHEMA = `
create type mood as enum ('sad', 'ok', 'happy');
create table authors (id int generated always as identity primary key, name text not null);
create table typed (
  id int primary key, author_id int references authors(id) on delete cascade,
  f8 float8, n numeric, t text, b bytea, j jsonb, arr int[], ts timestamptz, e mood, u uuid,
  doubled int generated always as (id * 2) stored);
create table "Order Items" ("Order Id" int primary key, "Qty" int, "select" text, author_id int references authors(id) on delete cascade);
create table events (id int, at date, payload text, primary key (id, at)) partition by range (at);
create table events_2025 partition of events for values from ('2025-01-01') to ('2026-01-01');
create table events_2026 partition of events for values from ('2026-01-01') to ('2027-01-01');
create table nokey (a int, b text);
create schema "Odd ""Schema""";
create table "Odd ""Schema"""."ünï côde" (k text primary key, v int);
`;

const POPULATE = `
insert into authors (name) select 'author ' || g from generate_series(1, 50) g;
insert into typed select g, 1 + g % 50,
  case g % 7 when 0 then 'NaN'::float8 when 1 then '-0'::float8 when 2 then 'Infinity'::float8 when 3 then null else g / 3.0 end,
  case when g % 5 = 0 then null else g * 1.000001 end,
  case g % 4 when 0 then null when 1 then E'tab\\there\\nnewline ü ' || g when 2 then '' else 'plain ' || g end,
  case when g % 6 = 0 then null else decode(md5(g::text), 'hex') end,
  case when g % 3 = 0 then null else jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'x', 1.5e300)) end,
  case when g % 8 = 0 then null else array[g, g + 1, null] end,
  timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute 0.000001 second',
  (array['sad', 'ok', 'happy'])[1 + g % 3]::mood,
  md5(g::text)::uuid
from generate_series(1, 600) g;
insert into "Order Items" select g, g % 10, 'sel' || g, 1 + g % 50 from generate_series(1, 400) g;
insert into events select g, date '2025-06-01' + (g % 400), 'p' || g from generate_series(1, 500) g;
insert into nokey select g % 50, 'dup' || (g % 50) from generate_series(1, 400) g;
insert into "Odd ""Schema"""."ünï côde" select 'κλειδί ' || g, g from generate_series(1, 30) g;
analyze;
`;

/** Writes made after the export, long after the incident would have been noticed. */
const LATER = `
insert into authors (name) select 'later author ' || g from generate_series(1, 10) g;
insert into typed (id, author_id, t, f8) select 1000 + g, 51, 'later ' || g, 'NaN' from generate_series(1, 100) g;
update typed set t = 'updated later', j = '{"later": true}' where id % 10 = 3 and author_id not in (7, 8);
insert into "Order Items" select 1000 + g, 1, 'later', 52 from generate_series(1, 50) g;
insert into events select 1000 + g, date '2026-03-01' + g, 'later' from generate_series(1, 40) g;
delete from nokey where a = 3;
`;

const INCIDENT = `delete from authors where id in (7, 8);`;

let prod: TestCluster;
let s3: TestS3;
let work: string;
let out: string;
let env: Record<string, string>;
let appUrl: string;
let exported: { name: string; object: string; checksums: Record<string, string> };
let otherExport: { name: string; object: string };

const pitr = runPitr;
const withPassword = (url: string) => url.replace('postgres@', `postgres:${TEST_DB_PASSWORD}@`);

async function sql(url: string, text: string): Promise<pg.QueryResultRow[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text)).rows;
  } finally {
    await c.end();
  }
}

async function freshDatabase(name: string): Promise<string> {
  await prod.query(`create database "${name}" template template0`);
  return withPassword(prod.urlFor(name));
}

async function userTables(url: string): Promise<number> {
  const rows = await sql(url, `select count(*)::int as n from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_' and c.relkind in ('r', 'p', 'S', 'v')`);
  return rows[0]!.n as number;
}

function expectOneLineFailure(r: CliRun, code: string, exit = 1): void {
  expect(r.code, r.stderr).toBe(exit);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^pitr: (error|refused): /);
  expect(r.json?.error?.code, r.stdout).toBe(code);
}

/** Copies the main export under `name` into `dir` (the manifest still names the original). */
async function copyExport(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const suffix of ['.dump.enc', '.manifest.json']) await copyFile(join(out, exported.name + suffix), join(dir, exported.name + suffix));
  return join(dir, exported.name);
}

beforeAll(async () => {
  [prod, s3, work] = await Promise.all([startCluster(), startS3(), makeTempRoot('pitr-export-restore-')]);
  out = join(work, 'exports');
  await prod.query('create database app');
  appUrl = withPassword(prod.urlFor('app'));
  await sql(appUrl, SCHEMA + POPULATE);
  env = {
    ...localEnv(prod, work),
    DATABASE_URL: appUrl,
    PITR_ENCRYPTION_KEY: KEY.toString('hex'),
    PITR_S3_ENDPOINT: s3.endpoint,
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: AWS_SECRET,
    AWS_REGION: s3.region,
  };
  const r = await pitr(['export', '--to', out, '--name', 'weekly-1', '--json'], env);
  expect(r.code, r.stderr).toBe(0);
  exported = { name: r.json.name, object: join(out, r.json.name), checksums: await tableChecksums(appUrl) };
  const o = await pitr(['export', '--to', out, '--name', 'weekly-2', '--json'], env);
  expect(o.code, o.stderr).toBe(0);
  otherExport = { name: o.json.name, object: join(out, o.json.name) };
}, 120_000);

afterAll(async () => {
  const left = await runPitr(['branches', '--json'], env).catch(() => undefined);
  for (const b of left?.json?.branches ?? []) await runPitr(['branches', 'delete', b.id], env);
  await Promise.all([prod?.destroy(), s3?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

describe('pitr export restore', () => {
  it('restores every value class into a fresh database: every table checksum equals the source at export time', async () => {
    const into = await freshDatabase('fresh');
    const r = await pitr(['export', 'restore', exported.object, '--into', into, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ ok: true, name: 'weekly-1', mode: 'stream', database: 'fresh', owners: false, privileges: false });
    expect(r.json.tables.every((t: { expected: number; restored: number }) => t.expected === t.restored)).toBe(true);
    expect(r.json.rows).toBe(50 + 600 + 400 + 500 + 400 + 30);
    expect(r.json.into).not.toContain(TEST_DB_PASSWORD);
    expect(await tableChecksums(into)).toEqual(exported.checksums);
    expect(await readFile(join(r.json.reportDir, 'report.md'), 'utf8')).toMatch(/every row count equals the manifest/);
    // Identity and generated columns behave as in the source afterwards.
    const next = await sql(into, `insert into authors (name) values ('new') returning id`);
    expect(next[0]!.id).toBe(51);
    expect((await sql(into, `select doubled from typed where id = 21`))[0]!.doubled).toBe(42);
  });

  it('--jobs 2 restores in parallel from a private temporary file, and removes it', async () => {
    const into = await freshDatabase('fresh_parallel');
    const r = await pitr(['export', 'restore', join(out, `${exported.name}.manifest.json`), '--into', into, '--jobs', '2', '--json', '--no-report'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ mode: 'parallel', jobs: 2, reportDir: null });
    expect(await tableChecksums(into)).toEqual(exported.checksums);
    expect(await processesUsing('pitr-restore-')).toEqual([]);
  });

  it('restores from S3 and lists the exports there', async () => {
    const loc = `s3://${s3.bucket}/offsite`;
    const e = await pitr(['export', '--to', loc, '--name', 'nightly', '--json'], env);
    expect(e.code, e.stderr).toBe(0);
    const list = await pitr(['export', 'list', '--to', loc, '--json'], env);
    expect(list.code, list.stderr).toBe(0);
    expect(list.json.exports).toHaveLength(1);
    expect(list.json.exports[0]).toMatchObject({ name: 'nightly', object: `${loc}/nightly`, authenticated: true, problem: null, database: 'app' });
    const into = await freshDatabase('fresh_s3');
    const r = await pitr(['export', 'restore', `${loc}/nightly`, '--into', into, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.tables.length).toBe(e.json.tables);
  });

  it('lists a directory newest first with what each manifest says, and whether it authenticates', async () => {
    const r = await pitr(['export', 'list', '--to', out, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.exports.map((e: { name: string }) => e.name)).toEqual(['weekly-2', 'weekly-1']);
    expect(r.json.exports[1]).toMatchObject({ authenticated: true, tables: 7, rows: 1980, database: 'app', target: null });
    expect(r.json.exports[1].pgDump).toMatch(/^pg_dump \(PostgreSQL\) \d+/);
    const wrong = await pitr(['export', 'list', '--to', out, '--json'], { ...env, PITR_ENCRYPTION_KEY: OTHER_KEY.toString('hex') });
    expect(wrong.code, wrong.stderr).toBe(0);
    expect(wrong.json.exports.every((e: { authenticated: boolean; problem: string }) => !e.authenticated && /wrong encryption key/.test(e.problem))).toBe(true);
    const human = await pitr(['export', 'list', '--to', out], env);
    expect(human.stdout).toMatch(/weekly-2[\s\S]*weekly-1/);
  });

  it('refuses a target that is not empty: exit 3, naming what is there, nothing touched', async () => {
    const before = await tableChecksums(appUrl);
    const r = await pitr(['export', 'restore', exported.object, '--into', appUrl, '--json'], env);
    expectOneLineFailure(r, 'target_not_empty', 3);
    expect(r.stderr).toMatch(/public\.authors/);
    expect(r.stderr).toMatch(/never drops anything/);
    expect(await tableChecksums(appUrl)).toEqual(before);
  });

  it('a wrong key, a flipped byte, another export\'s dump: exit 1, one line, and the target stays empty', async () => {
    const into = await freshDatabase('victim');
    const wrong = await pitr(['export', 'restore', exported.object, '--into', into, '--json'], { ...env, PITR_ENCRYPTION_KEY: OTHER_KEY.toString('hex') });
    expectOneLineFailure(wrong, 'export_wrong_key');

    const flipped = await copyExport(join(work, 'flipped'));
    const size = (await readFile(`${flipped}.dump.enc`)).length;
    const fh = await open(`${flipped}.dump.enc`, 'r+');
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, Math.floor(size * 0.8));
    byte[0] = byte[0]! ^ 0x01;
    await fh.write(byte, 0, 1, Math.floor(size * 0.8));
    await fh.close();
    const bad = await pitr(['export', 'restore', flipped, '--into', into, '--json'], env);
    expect(bad.code, bad.stderr).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/nothing was restored/);
    expect(await userTables(into)).toBe(0);

    // Every chunk of another export authenticates with the same key: only the manifest's hashes
    // catch it, at the very end, and pg_restore must not have committed anything by then.
    const swapped = await copyExport(join(work, 'swapped-dump'));
    await copyFile(`${otherExport.object}.dump.enc`, `${swapped}.dump.enc`);
    const tampered = await pitr(['export', 'restore', swapped, '--into', into, '--json'], env);
    expectOneLineFailure(tampered, 'export_tampered');
    expect(await userTables(into)).toBe(0);
  });

  it('a manifest of another export swapped in is refused by restore and by verify', async () => {
    const dir = join(work, 'swapped-manifest');
    const copy = await copyExport(dir);
    await copyFile(`${otherExport.object}.manifest.json`, `${copy}.manifest.json`);
    const into = await freshDatabase('victim2');
    const r = await pitr(['export', 'restore', copy, '--into', into, '--json'], env);
    expectOneLineFailure(r, 'export_manifest_mismatch');
    expect(r.stderr).toMatch(/belongs to export weekly-2/);
    const v = await pitr(['export', 'verify', `${copy}.manifest.json`, '--json'], env);
    expectOneLineFailure(v, 'export_manifest_mismatch');
  });

  it('a pg_restore too old for the dump (none installed that can read it) is one line naming the program', async () => {
    const copy = await copyExport(join(work, 'future'));
    const manifest = JSON.parse(await readFile(`${copy}.manifest.json`, 'utf8'));
    delete manifest.hmac;
    manifest.pgDump = { version: 'pg_dump (PostgreSQL) 99.0', major: 99 };
    await writeFile(`${copy}.manifest.json`, signManifest(manifest, KEY).text);
    const r = await pitr(['export', 'restore', copy, '--into', await freshDatabase('victim3'), '--json'], env);
    expectOneLineFailure(r, 'pg_restore_not_found');
    expect(r.stderr).toMatch(/pg_restore 99 or newer is needed/);
  });
});

describe('exports as branches', () => {
  it('recover --branch export:<object> --cascade puts back exactly the deleted rows and keeps every later write; undo works', async () => {
    await sql(appUrl, INCIDENT);
    await sql(appUrl, LATER);
    const afterIncident = await tableChecksums(appUrl);
    // The expected database, built independently: everything but the incident.
    const expectedUrl = await freshDatabase('expected');
    await sql(expectedUrl, SCHEMA + POPULATE + LATER);

    const preview = await pitr(['preview', `export:${exported.object}`, '--json'], env);
    expect(preview.code, preview.stderr).toBeLessThanOrEqual(1);
    // The branch the preview made is reused: the diff names the export and its two lost authors.
    const diff = await pitr(['diff', 'authors', '--branch', `export:${exported.object}`, '--json'], env);
    expect(diff.code, diff.stderr).toBe(0);
    expect(diff.json.branch).toMatch(/^production as it was at .* \(from export weekly-1\)$/);
    expect(diff.json.summary).toMatchObject({ missing: 2 });
    const r = await pitr(['recover', 'authors', '--cascade', '--branch', `export:${exported.object}`, '--yes', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(TEST_DB_PASSWORD);
    expect(await tableChecksums(appUrl)).toEqual(await tableChecksums(expectedUrl));

    // The branch stays and is reused; it is listed like any branch, with the export's state.
    const list = await pitr(['branches', '--json'], env);
    const mine = list.json.branches.filter((b: { details?: { purpose?: string } }) => b.details?.purpose === 'export');
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ state: 'running', details: { exportName: 'weekly-1' } });
    expect(mine[0].connectionUrl).not.toContain(TEST_DB_PASSWORD);

    const undo = await pitr(['undo', r.json.runId, '--yes', '--json'], env);
    expect(undo.code, undo.stderr).toBe(0);
    expect(await tableChecksums(appUrl)).toEqual(afterIncident);

    const del = await pitr(['branches', 'delete', mine[0].name, '--json'], env);
    expect(del.code, del.stderr).toBe(0);
    expect(await processesUsing(mine[0].details.dataDir)).toEqual([]);
  }, 180_000);

  it('the accidental-deletion playbook takes at: export:<object>; disaster-restore restores the newest authenticating export', async () => {
    const expected = await tableChecksums(withPassword(prod.urlFor('expected')));
    const r = await pitr(['playbook', 'run', 'accidental-deletion', '--set', `at=export:${exported.object}`, '--set', 'table=authors', '--yes', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.status).toBe('ok');
    expect(await tableChecksums(appUrl)).toEqual(expected);
    const branchId = r.json.steps.find((s: { id: string | null }) => s.id === 'branch').outputs.id;
    expect((await pitr(['branches', 'delete', branchId], env)).code).toBe(0);

    // A broken newer export is skipped (and named in the report); the newest good one is restored.
    await writeFile(join(out, 'weekly-3.manifest.json'), '{"format":"pitr-export","version":1}');
    await writeFile(join(out, 'weekly-3.dump.enc'), 'x');
    const into = await freshDatabase('disaster');
    const d = await pitr(['playbook', 'run', 'disaster-restore', '--set', `from=${out}`, '--set', `into=${into}`, '--yes', '--json'], env);
    expect(d.code, d.stderr).toBe(0);
    expect(d.json.status).toBe('ok');
    expect(d.json.steps[1].outputs).toMatchObject({ export: 'weekly-2', countsVerified: true, rows: 1980 });
    expect(d.json.steps[1].outputs.skippedNewer[0]).toMatch(/^weekly-3: /);
    expect(d.json.rtoSeconds).toBeGreaterThan(0);
    expect(await readFile(join(d.json.dir, 'report.md'), 'utf8')).not.toContain(TEST_DB_PASSWORD);
    await rm(join(out, 'weekly-3.manifest.json'));
    await rm(join(out, 'weekly-3.dump.enc'));
  }, 180_000);

  it('branch create --from export:<object> and pitr --at export:<object> make queryable branches; prune removes expired ones', async () => {
    const b = await pitr(['branch', 'create', '--from', `export:${exported.object}`, '--ttl', '1s', '--json'], env);
    expect(b.code, b.stderr).toBe(0);
    expect(b.json).toMatchObject({ provider: 'local', state: 'running', details: { purpose: 'export', exportName: 'weekly-1' } });
    const cs = await pitr(['connection-string', b.json.name], env);
    expect(cs.code, cs.stderr).toBe(0);
    expect(await tableChecksums(cs.stdout.trim())).toEqual(exported.checksums);
    const human = await pitr(['--at', `export:${otherExport.object}`], env);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/from export weekly-2/);
    await new Promise((r) => setTimeout(r, 1100));
    const pruned = await pitr(['branches', 'prune', '--json'], env);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.json.deleted.map((d: { name: string }) => d.name)).toContain(b.json.name);
    expect(await processesUsing(b.json.details.dataDir)).toEqual([]);
  }, 120_000);
});

describe('pitr export prune', () => {
  it('keeps what the GFS policy keeps, never the newest, and an export that does not authenticate only goes with --force', async () => {
    const dir = join(work, 'prune');
    await mkdir(dir);
    const base = JSON.parse(await readFile(`${exported.object}.manifest.json`, 'utf8'));
    const day = 86_400_000;
    const make = async (name: string, ageDays: number, key: Buffer) => {
      const { hmac: _h, ...m } = { ...base, name, createdAt: new Date(Date.now() - ageDays * day).toISOString(), dump: { ...base.dump, object: `${name}.dump.enc` } };
      await writeFile(join(dir, `${name}.manifest.json`), signManifest(m, key).text);
      await writeFile(join(dir, `${name}.dump.enc`), 'x');
    };
    await make('d0', 0, KEY);
    await make('d1', 1, KEY);
    await make('d5', 5, KEY);
    await make('d40', 40, KEY);
    await make('foreign', 60, OTHER_KEY);
    const policy = ['--keep-daily', '2', '--keep-weekly', '0', '--keep-monthly', '0', '--keep-yearly', '0'];
    const dry = await pitr(['export', 'prune', '--to', dir, ...policy, '--dry-run', '--json'], env);
    expect(dry.code, dry.stderr).toBe(0);
    const keep = Object.fromEntries(dry.json.exports.map((v: { name: string; keep: boolean }) => [v.name, v.keep]));
    expect(keep).toEqual({ d0: true, d1: true, d5: false, d40: false, foreign: true });
    const real = await pitr(['export', 'prune', '--to', dir, ...policy, '--json'], env);
    expect(real.json.deleted).toEqual(['d40', 'd5']);
    const forced = await pitr(['export', 'prune', '--to', dir, ...policy, '--force', '--json'], env);
    expect(forced.json.deleted).toEqual(['foreign']);
    const none = await pitr(['export', 'prune', '--to', dir, '--keep-daily', '0', '--keep-weekly', '0', '--keep-monthly', '0', '--keep-yearly', '0', '--json'], env);
    expect(none.json.deleted).toEqual(['d1']);
    expect(none.json.exports.find((v: { name: string }) => v.name === 'd0')).toMatchObject({ keep: true });
  });

  it('never prints the key, the AWS secret or the database password', () => {
    for (const run of cliTranscript) {
      const all = run.stdout + run.stderr;
      for (const secret of SECRETS) expect(all.includes(secret), `${secret.slice(0, 6)}… in pitr ${run.args.join(' ')}`).toBe(false);
    }
  });
});

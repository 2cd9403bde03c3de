import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { libpqEnvironment } from '../../src/db/libpq-env.js';
import { countDifferences } from '../../src/export/index.js';
import { signManifest } from '../../src/export/manifest.js';
import { openExportStore } from '../../src/export/store/index.js';
import { cliTranscript, processesUsing, runPitr, type CliRun } from '../support/cli.js';
import { localEnv, makeTempRoot, startCluster, type TestCluster } from '../support/cluster.js';
import { startS3, type TestS3 } from '../support/s3.js';
import { TEST_DB_PASSWORD } from '../support/secrets.js';

/**
 * `pitr export` and `pitr export verify` through the built CLI, on a real cluster (a 50k-row
 * table, a partitioned table, an inheritance pair, odd names, a table with row-level security)
 * and a local S3 server (s3rver). Every failure must be one line and exit 1; the key, the AWS
 * secret and the database password must never show.
 */

const KEY = randomBytes(32);
const OTHER_KEY = randomBytes(32).toString('hex');
const AWS_SECRET = 'aws-Secret-do-not-print-7731xq';
const SECRETS = [KEY.toString('hex'), KEY.toString('hex').toUpperCase(), KEY.toString('base64'), KEY.toString('base64url'), OTHER_KEY, AWS_SECRET, TEST_DB_PASSWORD];

let prod: TestCluster;
let s3: TestS3;
let work: string;
let out: string;
let env: Record<string, string>;
const pitr = runPitr;
let dirExport: { dump: string; manifest: string; json: any };

const TABLES = `
  create table big(id int primary key, payload text not null);
  insert into big select g, md5(g::text) from generate_series(1, 50000) g;
  create table events(id int, day date not null, what text) partition by range (day);
  create table events_2026_01 partition of events for values from ('2026-01-01') to ('2026-02-01');
  create table events_2026_02 partition of events for values from ('2026-02-01') to ('2026-03-01');
  create table events_other partition of events default;
  insert into events select g, date '2026-01-01' + (g % 75), 'e' || g from generate_series(1, 3000) g;
  create table animals(id int, name text);
  create table dogs(breed text) inherits (animals);
  insert into animals values (1, 'cat'), (2, 'cow');
  insert into dogs values (3, 'rex', 'collie'), (4, 'fido', 'pug'), (5, 'ace', 'lab');
  create schema "Weird Schema";
  create table "Weird Schema"."Mixed Case ""quoted"" table" ("select" int, "ünï côde" text);
  insert into "Weird Schema"."Mixed Case ""quoted"" table" select g, 'ü' || g from generate_series(1, 77) g;
  create table "empty table"(id int);
  create table z_rls(id int, owner text);
  insert into z_rls select g, 'o' || (g % 3) from generate_series(1, 10) g;
  alter table z_rls enable row level security;
  create policy z_rls_all on z_rls using (true);
  create role limited login;
  grant usage on schema public, "Weird Schema" to limited;
  grant select on all tables in schema public, "Weird Schema" to limited;
  analyze;`;

/** Exact counts in production, keyed like the manifest. */
async function productionCounts(): Promise<Record<string, number>> {
  const tables = await queryApp<{ s: string; n: string }>(env.DATABASE_URL!, `
    select n.nspname as s, c.relname as n from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'`);
  const out: Record<string, number> = {};
  for (const t of tables) {
    const q = `"${t.s.replace(/"/g, '""')}"."${t.n.replace(/"/g, '""')}"`;
    out[`${t.s}.${t.n}`] = Number((await queryApp<{ c: string }>(env.DATABASE_URL!, `select count(*) as c from only ${q}`))[0]!.c);
  }
  return out;
}

const manifestCounts = (m: { tables: { schema: string; name: string; rows: number }[] }) =>
  Object.fromEntries(m.tables.map((t) => [`${t.schema}.${t.name}`, t.rows]));

/** A failed run: exit 1, exactly one line on stderr, the JSON error code. */
function expectOneLineFailure(r: CliRun, code: string): void {
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^pitr: error: /);
  expect(r.json?.error?.code, r.stdout).toBe(code);
}

/** Copies one export into its own directory so a test can damage it. */
async function copyExport(to: string): Promise<{ dump: string; manifest: string }> {
  await mkdir(to, { recursive: true });
  // Same file names: a manifest names its dump, so a renamed export no longer verifies.
  const dump = join(to, basename(dirExport.dump));
  const manifest = join(to, basename(dirExport.manifest));
  await copyFile(dirExport.dump, dump);
  await copyFile(dirExport.manifest, manifest);
  return { dump, manifest };
}

beforeAll(async () => {
  [prod, s3, work] = await Promise.all([startCluster({ archive: true }), startS3(), makeTempRoot('pitr-export-')]);
  out = join(work, 'exports');
  await prod.query('create database app');
  const app = prod.urlFor('app').replace('postgres@', `postgres:${TEST_DB_PASSWORD}@`);
  await queryApp(app, TABLES);
  env = {
    ...localEnv(prod, work),
    DATABASE_URL: app,
    PITR_ENCRYPTION_KEY: KEY.toString('hex'),
    PITR_S3_ENDPOINT: s3.endpoint,
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: AWS_SECRET,
    AWS_REGION: s3.region,
  };
});

afterAll(async () => {
  await Promise.all([prod?.destroy(), s3?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

async function queryApp<R extends Record<string, unknown> = Record<string, unknown>>(url: string, sql: string): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(sql)).rows;
  } finally {
    await c.end();
  }
}

describe('pitr export', () => {
  it('exports production to a directory: encrypted dump, then an HMACed manifest with exact per-table counts', async () => {
    const r = await pitr(['export', '--to', out, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json;
    expect(j.name).toMatch(/^pitr-app-\d{8}T\d{6}Z$/);
    expect(j.consistent).toBe(true);
    expect(j.target).toBeNull();
    expect(j.source).toContain('********');
    expect((await readdir(out)).sort()).toEqual([`${j.name}.dump.enc`, `${j.name}.manifest.json`]);
    const dump = await readFile(j.dumpObject);
    expect(dump.subarray(0, 7).toString('latin1')).toBe('PITRENC');
    expect(dump.includes(Buffer.from('PGDMP'))).toBe(false);
    const manifest = JSON.parse(await readFile(j.manifestObject, 'utf8'));
    expect(manifest).toMatchObject({ format: 'pitr-export', version: 1, database: 'app', target: null, consistent: true, tool: { name: 'pitr' } });
    expect(manifest.dump).toMatchObject({ bytes: j.bytes, encryptedBytes: dump.length, cipher: 'aes-256-gcm', chunkBytes: 1 << 20 });
    expect(manifest.server.version).toMatch(/^\d+/);
    expect(manifest.pgDump.version).toMatch(/^pg_dump \(PostgreSQL\)/);
    expect(manifest.hmac).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    const counts = manifestCounts(manifest);
    expect(counts).toEqual(await productionCounts());
    // Leaf partitions once, parents with ONLY semantics, odd names intact.
    expect(counts['public.big']).toBe(50000);
    expect(counts['public.events_2026_01']! + counts['public.events_2026_02']! + counts['public.events_other']!).toBe(3000);
    expect(counts['public.events']).toBeUndefined();
    expect(counts['public.animals']).toBe(2);
    expect(counts['public.dogs']).toBe(3);
    expect(counts['Weird Schema.Mixed Case "quoted" table']).toBe(77);
    expect(counts['public.empty table']).toBe(0);
    dirExport = { dump: j.dumpObject, manifest: j.manifestObject, json: j };
    // A name that exists is refused, and nothing is overwritten.
    const again = await pitr(['export', '--to', out, '--name', j.name], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists/);
  });

  it('verifies a directory export: authenticated, hashes equal, pg_restore --list reads it', async () => {
    for (const object of [dirExport.manifest, dirExport.dump]) {
      const v = await pitr(['export', 'verify', object, '--json'], env);
      expect(v.code, v.stderr).toBe(0);
      expect(v.json.authenticated).toMatchObject({ encryptedBytes: dirExport.json.encryptedBytes, bytes: dirExport.json.bytes, sha256: dirExport.json.sha256 });
      expect(v.json.list.tableData).toBeGreaterThanOrEqual(dirExport.json.tables);
      expect(v.json.restore).toBeNull();
    }
    const human = await pitr(['export', 'verify', dirExport.manifest], env);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/verified: every chunk authenticated/);
  });

  it('verify --restore restores into a throw-away cluster, every count equal, and removes it', async () => {
    const v = await pitr(['export', 'verify', dirExport.manifest, '--restore', '--json'], env);
    expect(v.code, v.stderr).toBe(0);
    expect(v.json.restore).toMatchObject({ tables: dirExport.json.tables, rows: dirExport.json.rows, database: 'app' });
    expect(await processesUsing('pitr-verify-')).toEqual([]);
  });

  it('exports to S3 through the configured endpoint and verifies from there', async () => {
    const r = await pitr(['export', '--to', `s3://${s3.bucket}/nightly/app`, '--name', 'app-s3', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.dumpObject).toBe(`s3://${s3.bucket}/nightly/app/app-s3.dump.enc`);
    const saved = { ...process.env };
    Object.assign(process.env, s3.env);
    try {
      const store = openExportStore(`s3://${s3.bucket}/nightly/app`, { s3Endpoint: s3.endpoint });
      expect((await store.list()).map((o) => o.key)).toEqual(['app-s3.dump.enc', 'app-s3.manifest.json']);
      store.close();
    } finally {
      process.env = saved;
    }
    const v = await pitr(['export', 'verify', r.json.dumpObject, '--json'], env);
    expect(v.code, v.stderr).toBe(0);
    expect(v.json.manifest.tables.length).toBe(r.json.tables);
    const wrong = await pitr(['export', 'verify', `s3://${s3.bucket}/nightly/app/app-s3.manifest.json`, '--json'], { ...env, PITR_ENCRYPTION_KEY: OTHER_KEY });
    expectOneLineFailure(wrong, 'export_wrong_key');
  });

  it('a wrong key is one line, exit 1, export_wrong_key; a key file wins over the environment', async () => {
    const wrong = await pitr(['export', 'verify', dirExport.dump, '--json'], { ...env, PITR_ENCRYPTION_KEY: OTHER_KEY });
    expectOneLineFailure(wrong, 'export_wrong_key');
    expect(wrong.stderr).toMatch(/^pitr: error: wrong encryption key/);
    const keyFile = join(work, 'key');
    await writeFile(keyFile, `${KEY.toString('base64')}\n`, { mode: 0o600 });
    const viaFile = await pitr(['export', 'verify', dirExport.dump, '--key-file', keyFile], { ...env, PITR_ENCRYPTION_KEY: OTHER_KEY });
    expect(viaFile.code, viaFile.stderr).toBe(0);
    const noKey = await pitr(['export', 'verify', dirExport.dump], { ...env, PITR_ENCRYPTION_KEY: '' });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/PITR_ENCRYPTION_KEY/);
  });

  it('a truncated dump, a flipped byte in the middle, a modified or missing manifest: one line, exit 1', async () => {
    const size = dirExport.json.encryptedBytes as number;
    const cut = await copyExport(join(work, 'cut'));
    await truncate(cut.dump, Math.floor(size * 0.6));
    expectOneLineFailure(await pitr(['export', 'verify', cut.dump, '--json'], env), 'export_truncated');

    const flipped = await copyExport(join(work, 'flipped'));
    const bytes = await readFile(flipped.dump);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await writeFile(flipped.dump, bytes);
    const f = await pitr(['export', 'verify', flipped.dump, '--restore', '--json'], env);
    expectOneLineFailure(f, 'export_tampered');
    expect(f.stderr).toMatch(/authentication failed at chunk \d+/);
    expect(await processesUsing('pitr-verify-')).toEqual([]);

    const edited = await copyExport(join(work, 'edited'));
    const m = JSON.parse(await readFile(edited.manifest, 'utf8'));
    m.tables[0].rows += 1;
    await writeFile(edited.manifest, JSON.stringify(m, null, 2));
    expectOneLineFailure(await pitr(['export', 'verify', edited.manifest, '--json'], env), 'export_manifest_tampered');
    // Even a changed key id is called what it is: the dump itself accepts the key.
    m.tables[0].rows -= 1;
    m.key.id = '0123456789abcdef';
    await writeFile(edited.manifest, JSON.stringify(m, null, 2));
    expectOneLineFailure(await pitr(['export', 'verify', edited.manifest, '--json'], env), 'export_manifest_tampered');

    const orphan = await copyExport(join(work, 'orphan'));
    await rm(orphan.manifest);
    expectOneLineFailure(await pitr(['export', 'verify', orphan.dump, '--json'], env), 'export_incomplete');
  });

  it('verify --restore fails with export_counts_differ when a count in a (validly signed) manifest is not what restores', async () => {
    const lying = await copyExport(join(work, 'lying'));
    const { hmac: _hmac, ...body } = JSON.parse(await readFile(lying.manifest, 'utf8'));
    const big = body.tables.find((t: { name: string }) => t.name === 'big');
    big.rows -= 1;
    await writeFile(lying.manifest, signManifest(body, KEY).text);
    expect((await pitr(['export', 'verify', lying.manifest], env)).code).toBe(0); // the listing cannot tell
    const r = await pitr(['export', 'verify', lying.manifest, '--restore', '--json'], env);
    expectOneLineFailure(r, 'export_counts_differ');
    expect(r.stderr).toContain('public.big 50000 rows (manifest 49999)');
    expect(await processesUsing('pitr-verify-')).toEqual([]);
    expect(
      countDifferences(
        [{ schema: 's', name: 'a', rows: 1 }, { schema: 's', name: 'b', rows: 2 }],
        [{ schema: 's', name: 'a', rows: 1 }, { schema: 's', name: 'c', rows: 3 }],
      ),
    ).toEqual(['s.b missing (manifest 2 rows)', 's.c 3 rows (not in the manifest)']);
  });

  it('pg_dump failing half-way is one line with its reason, and leaves no object behind', async () => {
    // pg_dump (row_security off) refuses a table whose policy would apply to this role, after
    // it has already written other tables' data.
    const dir = join(work, 'failed');
    const limited = prod.urlFor('app').replace('postgres@', `limited:${TEST_DB_PASSWORD}@`);
    const r = await pitr(['export', '--branch', limited, '--to', dir, '--json'], env);
    expectOneLineFailure(r, 'pg_dump_failed');
    expect(r.stderr).toMatch(/^pitr: error: pg_dump failed: .*row-level security/);
    expect(existsSync(dir) ? await readdir(dir) : []).toEqual([]);
  });

  it('--at exports production as it was then through a temporary branch, deleted afterwards', async () => {
    expect((await runPitr(['backup'], env)).code).toBe(0);
    await new Promise((r) => setTimeout(r, 30));
    const t1 = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 30));
    await queryApp(env.DATABASE_URL!, 'delete from big where id <= 1000; insert into animals values (9, \'late\')');
    const r = await pitr(['export', '--at', t1, '--to', out, '--name', 'before-delete', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const manifest = JSON.parse(await readFile(r.json.manifestObject, 'utf8'));
    expect(manifest.target).toBe(t1.replace('.000Z', 'Z'));
    expect(manifest.source).toMatch(/^production at .* \(temporary recovery branch /);
    expect(manifestCounts(manifest)['public.big']).toBe(50000);
    expect(manifestCounts(manifest)['public.animals']).toBe(2);
    expect((await productionCounts())['public.big']).toBe(49000);
    const branches = await runPitr(['branches', '--json'], env);
    expect(branches.json.branches).toEqual([]);
  });

  it('hands pg_dump its connection in the environment only', () => {
    const e = libpqEnvironment('postgresql://u%40x:p%2Fw@[::1]:6543/my%20db?sslmode=require&application_name=a&channel_binding=require');
    const saved = process.env.PGSERVICE;
    process.env.PGSERVICE = 'elsewhere';
    const stray = libpqEnvironment('postgresql://127.0.0.1/x');
    if (saved === undefined) delete process.env.PGSERVICE;
    else process.env.PGSERVICE = saved;
    expect(stray.PGSERVICE).toBeUndefined();
    expect(stray.PGPASSWORD).toBeUndefined();
    expect(e).toMatchObject({ PGHOST: '::1', PGPORT: '6543', PGUSER: 'u@x', PGPASSWORD: 'p/w', PGDATABASE: 'my db', PGSSLMODE: 'require', PGAPPNAME: 'a', PGCHANNELBINDING: 'require' });
  });

  it('never prints the key, the AWS secret or the database password', () => {
    expect(cliTranscript.length).toBeGreaterThan(10);
    for (const run of cliTranscript) {
      const all = run.stdout + run.stderr;
      for (const secret of SECRETS) expect(all.includes(secret), `${secret.slice(0, 6)}… in pitr ${run.args.join(' ')}`).toBe(false);
    }
  });
});

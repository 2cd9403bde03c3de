import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const path = join(dir, name);
    if ((await stat(path)).isDirectory()) {
      if (name !== 'data' && name !== 'branches') out.push(...(await listFiles(path)));
    } else out.push(path);
  }
  return out;
}
import { makeTempRoot, startCluster, type TestCluster, localEnv } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';

/** pitr drill on real clusters, with a local webhook receiver for failures. */
describe('pitr drill', () => {
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  let server: Server;
  let webhook: string;
  const received: { text: string }[] = [];

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-drill-');
    env = localEnv(prod, work);
    await prod.query(`create table accounts(id int primary key, balance numeric); insert into accounts select g, g from generate_series(1, 1000) g;
                      create table events(id bigint primary key, at timestamptz); insert into events select g, now() from generate_series(1, 500) g;`);
    expect((await runPitr(['backup'], env)).code).toBe(0);
    await prod.query(`insert into accounts values (1001, 0)`);
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        received.push(JSON.parse(body));
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = server.address() as { port: number };
    webhook = `http://127.0.0.1:${address.port}/hook`;
  });

  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('passes: every table readable, counts within tolerance, assertions hold; the branch is removed', async () => {
    await new Promise((r) => setTimeout(r, 20));
    const r = await runPitr(['drill', '--check', 'select count(*) from public.accounts where balance < 0=0', '--notify', webhook, '--json'], env);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json).toMatchObject({ ok: true, failures: [] });
    expect(r.json.tables.map((t: { table: string }) => t.table).sort()).toEqual(['public.accounts', 'public.events']);
    expect(r.json.secondsToQueryable).toBeGreaterThan(0);
    expect(received).toHaveLength(0);
    expect((await runPitr(['branches', '--json'], env)).json.branches).toHaveLength(0);
  });

  it('a failing check (from the config) exits 1 and posts the webhook', async () => {
    const checks = JSON.stringify([{ name: 'five accounts', sql: 'select count(*) from public.accounts', expect: 5 }]);
    const r = await runPitr(['drill', '--notify', webhook, '--json'], { ...env, PITR_DRILL_CHECKS: checks });
    expect(r.code).toBe(1);
    expect(r.json.failures.join('\n')).toMatch(/five accounts: expected 5, got 1001/);
    expect(received.at(-1)!.text).toMatch(/restore drill FAILED .*\n• five accounts: expected 5, got 1001/);
  });

  it('an unqualified table in a check fails with a hint about the pinned search_path', async () => {
    const r = await runPitr(['drill', '--check', 'select count(*) from accounts=1001', '--json'], env);
    expect(r.code).toBe(1);
    expect(r.json.failures.join('\n')).toMatch(/relation "accounts" does not exist \(pitr runs user SQL with search_path pg_catalog, pg_temp/);
  });

  it('finding 8: the webhook comes from PITR_NOTIFY_URL or the config file, never the command line, and appears in no output or report', async () => {
    const secretHook = `${webhook}/services/T0PITR/B0PITR/s3cr3tW3bh00kT0k3n`;
    const checks = JSON.stringify([{ name: 'five accounts', sql: 'select count(*) from public.accounts', expect: 5 }]);
    const fromEnv = await runPitr(['drill', '--json'], { ...env, PITR_DRILL_CHECKS: checks, PITR_NOTIFY_URL: secretHook });
    const configFile = join(work, 'pitr.config.json');
    await writeFile(configFile, JSON.stringify({ notifyUrl: secretHook }));
    const fromConfig = await runPitr(['drill', '--config', configFile], { ...env, PITR_DRILL_CHECKS: checks });
    const before = received.length;
    const fromFlag = await runPitr(['drill', '--notify', secretHook, '--log-level', 'debug'], { ...env, PITR_DRILL_CHECKS: checks });
    for (const r of [fromEnv, fromConfig, fromFlag]) {
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout + r.stderr).not.toContain('s3cr3tW3bh00kT0k3n');
    }
    expect(fromEnv.args.join(' ')).not.toContain('s3cr3t');
    expect(fromConfig.args.join(' ')).not.toContain('s3cr3t');
    expect(received.length).toBe(before + 1);
    expect(received.filter((m) => /five accounts: expected 5/.test(m.text)).length).toBeGreaterThanOrEqual(3);
    for (const file of await listFiles(join(work, 'pitr'))) expect(await readFile(file, 'utf8'), file).not.toContain('s3cr3tW3bh00kT0k3n');
  });

  it('a branch that cannot be created exits 1 and posts the webhook', async () => {
    const before = received.length;
    const r = await runPitr(['drill', '--notify', webhook, '--json'], { ...env, PITR_BACKUP_DIR: join(work, 'no-backups') });
    expect(r.code).toBe(1);
    expect(r.json.failures[0]).toMatch(/^restore failed: no base backups/);
    expect(received.length).toBe(before + 1);
  });
});

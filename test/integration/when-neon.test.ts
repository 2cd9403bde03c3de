import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { makeTempRoot, startCluster, switchAndArchiveWal, type TestCluster } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';
import { TEST_NEON_API_KEY } from '../support/secrets.js';
import { startFakeNeon, type FakeNeon } from '../fakes/neon/index.js';
import { loadInitial, runIncident, type Incident } from '../support/incident-workload.js';

/** `pitr when` on Neon: Time Travel reads through the fake (real data), never a branch. */
describe('pitr when on Neon (against the fake API)', () => {
  let prod: TestCluster;
  let work: string;
  let fake: FakeNeon;
  let env: Record<string, string>;
  let incident: Incident;
  let since: string;

  beforeAll(async () => {
    prod = await startCluster({ archive: true, settings: { track_commit_timestamp: 'on' } });
    work = await makeTempRoot('pitr-when-neon-');
    const local = { DATABASE_URL: prod.url, PITR_BACKUP_DIR: join(work, 'backups'), PITR_WAL_ARCHIVE: prod.archiveDir, PITR_WORK_DIR: join(work, 'fake-pitr') };
    await loadInitial(prod);
    expect((await runPitr(['backup'], local)).code).toBe(0);
    await new Promise((r) => setTimeout(r, 50));
    since = (await prod.query<{ now: string }>('select now()::text as now'))[0]!.now;
    incident = await runIncident(prod);
    await switchAndArchiveWal(prod);
    fake = await startFakeNeon({
      apiKey: TEST_NEON_API_KEY,
      production: { url: prod.url, backupDir: local.PITR_BACKUP_DIR, walArchive: prod.archiveDir, workDir: local.PITR_WORK_DIR },
      operationMs: 100,
    });
    env = { NEON_API_KEY: TEST_NEON_API_KEY, NEON_PROJECT_ID: fake.projectId, NEON_API_HOST: fake.apiHost, PITR_WORK_DIR: join(work, 'pitr') };
  }, 180_000);

  afterAll(async () => {
    await fake?.close();
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('--at xid: is refused with one line suggesting lsn:, before any write', async () => {
    const before = fake.requests.length;
    const r = await runPitr(['--at', `xid:${incident.badXid}`], env);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('pitr: error')), r.stderr).toHaveLength(1);
    expect(r.stderr).toContain('lsn:');
    expect(fake.requests.slice(before).filter((q: { method: string }) => q.method !== 'GET')).toEqual([]);
  });

  it('when --count names an instant within the precision before the bad transaction, by Time Travel reads only', async () => {
    const before = fake.requests.length;
    const until = new Date(Date.parse(incident.badCommit) + 2000).toISOString();
    // --until must be in the past when the command reads it.
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(until) - Date.now() + 200)));
    const r = await runPitr(['when', '--count', 'items', '--since', since, '--until', until, '--json'], env, { timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    const bad = Date.parse(incident.badCommit);
    expect(Date.parse(r.json.lastGood)).toBeLessThanOrEqual(bad);
    expect(bad - Date.parse(r.json.lastGood)).toBeLessThanOrEqual(1000);
    expect(Date.parse(r.json.firstBad)).toBeGreaterThanOrEqual(bad - 1);
    expect(r.json.provider).toBe('neon');
    const made = fake.requests.slice(before);
    // Never a branch; the API calls are bounded by the probes, not by the window.
    expect(made.filter((q: { method: string }) => q.method === 'POST')).toEqual([]);
    expect(r.json.probes.length).toBeLessThanOrEqual(3 + Math.ceil(Math.log2((Date.parse(until) - Date.parse(since)) / 1000)) + 1);
    expect(made.length, JSON.stringify(made.map((q: { path: string }) => q.path))).toBeLessThanOrEqual(4 + 6 * r.json.probes.length);
  }, 300_000);

  it('refuses an empty window and a result that changes and changes back, one line each, without a branch', async () => {
    const before = fake.requests.length;
    const at = new Date(Date.now() - 1000).toISOString();
    const empty = await runPitr(['when', '--count', 'items', '--since', at, '--until', at, '--json'], env);
    expect(empty.code, empty.stderr).toBe(2);
    expect(empty.stderr.trim().split('\n')).toHaveLength(1);
    expect(empty.json.error.code).toBe('empty_window');

    // A flag that flips and flips back: the reads at --since and --until agree, the middle does not.
    await prod.query(`create table flag(v int not null); insert into flag values (1)`);
    await new Promise((r) => setTimeout(r, 300));
    const from = (await prod.query<{ now: string }>('select now()::text as now'))[0]!.now;
    await new Promise((r) => setTimeout(r, 1200));
    await prod.query(`update flag set v = 2`);
    await new Promise((r) => setTimeout(r, 1500));
    await prod.query(`update flag set v = 1`);
    await new Promise((r) => setTimeout(r, 1200));
    const to = (await prod.query<{ now: string }>('select now()::text as now'))[0]!.now;
    await switchAndArchiveWal(prod);
    const flips = await runPitr(['when', '--sql', 'select v from public.flag', '--since', from, '--until', to, '--json'], env, { timeoutMs: 300_000 });
    expect(flips.code, flips.stderr).toBe(2);
    expect(flips.stderr.trim().split('\n')).toHaveLength(1);
    expect(flips.json.error.code).toBe('non_monotonic');
    // The probes it saw are in the message: good at both ends, bad in the middle.
    expect(flips.stderr).toMatch(/good \[\{"v":1\}\].*bad \[\{"v":2\}\].*good \[\{"v":1\}\]/);
    expect(fake.requests.slice(before).filter((q: { method: string }) => q.method === 'POST')).toEqual([]);
  }, 300_000);
});
